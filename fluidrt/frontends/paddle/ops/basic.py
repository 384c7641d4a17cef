"""Importers of structural Paddle ops: parameters and no-op plumbing."""

from __future__ import annotations
