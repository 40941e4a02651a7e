"""Clean data/raw into data/processed: ``python dataset_preproc.py --help``.

The same as ``python -m biomeseason preprocess``; the work, and the full
description of what is written and printed, is in biomeseason/preprocess.py.
"""
import sys

from biomeseason.preprocess import get_args_parser, main

if __name__ == "__main__":
    sys.exit(main(get_args_parser().parse_args()))
