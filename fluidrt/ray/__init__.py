"""Batch inference on Ray Data: ``FluidPredictor`` for ``Dataset.map_batches``.

Ray itself is imported only where it is used (``pip install -r requirements-ray.txt``).
"""

from fluidrt.ray.images import decode_image, preprocess_images
from fluidrt.ray.predictor import FluidPredictor, load_or_build, top_k

__all__ = ["FluidPredictor", "decode_image", "load_or_build", "preprocess_images", "top_k"]
