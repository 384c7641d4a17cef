"""Partitioning: the op teller and subgraph detection."""

from fluidrt.partition.subgraph import find_clusters
from fluidrt.partition.teller import tell

__all__ = ["find_clusters", "tell"]
