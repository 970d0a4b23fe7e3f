"""Nearest-neighbour search and hard-negative mining."""
