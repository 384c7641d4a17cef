"""Canonical ops: tensor family."""
