"""Data preparation: data/raw -> data/processed (scan, labels from names, clean, deduplicate,
split, manifest, image store). ``python -m biomeseason preprocess`` or dataset_preproc.py."""
