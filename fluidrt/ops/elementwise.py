"""Canonical ops: elementwise family."""
