"""Synthetic Earth scenes with labelled file names: terrain, biomes, seasons and looks measured
on real tiles (realstats). ``python -m biomeseason synth``."""
