"""Paddle importers: nn family."""
