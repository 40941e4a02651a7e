"""Dominant colours of an image and their names: k-means in CIELAB, a nearest-neighbour
colour-name table. Imports nothing of ours but io."""
