"""Paddle importers: elementwise family."""
