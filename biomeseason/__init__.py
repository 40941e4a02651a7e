"""biomeseason: classify photos of the Earth by biome and month, and name their colours."""
__version__ = "0.1.0"
