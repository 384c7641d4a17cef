"""Canonical ops: nn family."""
