"""Plumbing every job uses: reading images, atomic writes, output folders and locks, errors,
worker processes. Nothing here knows of biomes, models or training."""
