"""Clean data/raw into data/processed: ``python dataset_preproc.py --help``.

The same as ``python -m biomeseason preprocess``; the work, and the full
description of what is written and printed, is in biomeseason/prepare/preprocess.py.
"""
import sys

from biomeseason.__main__ import main

if __name__ == "__main__":
    sys.exit(main(["preprocess", *sys.argv[1:]]))
