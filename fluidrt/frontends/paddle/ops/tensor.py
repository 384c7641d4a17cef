"""Paddle importers: tensor family."""
