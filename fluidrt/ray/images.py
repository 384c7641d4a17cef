"""Image preprocessing for batch inference: decode, resize and normalize a column of images.

A column may hold decoded images (HWC uint8 arrays, as ``ray.data.read_images`` gives), encoded
files (bytes, as ``ray.data.read_binary_files`` gives) or paths. Each image becomes RGB, is resized
to ``size`` with PIL's bilinear filter (skipped when it already has that size) and normalized with
the ImageNet mean/std, like ``fluidrt.data.load_image_dir``: the result is [n, 3, H, W] float32.
"""

from __future__ import annotations

import io
import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from fluidrt.data import normalize
from fluidrt.errors import InputError


def decode_image(item: Any) -> np.ndarray:
    """One image (HWC/HW array, encoded bytes, or a path) as an HWC uint8 RGB array."""
    from PIL import Image

    if isinstance(item, (bytes, bytearray, memoryview)):
        with Image.open(io.BytesIO(bytes(item))) as im:
            return np.asarray(im.convert("RGB"))
    if isinstance(item, (str, os.PathLike)):
        with Image.open(item) as im:
            return np.asarray(im.convert("RGB"))
    if isinstance(item, np.ndarray) and item.dtype == np.uint8:
        if item.ndim == 2:
            return np.repeat(item[:, :, None], 3, axis=2)
        if item.ndim == 3 and item.shape[2] == 3:
            return item
        if item.ndim == 3 and item.shape[2] == 4:
            return np.ascontiguousarray(item[:, :, :3])
        raise InputError(
            f"image array: expected HxW or HxWx3/4 uint8, got shape {list(item.shape)}"
        )
    got = f"{item.dtype} array" if isinstance(item, np.ndarray) else type(item).__name__
    raise InputError(
        "image: expected a uint8 HWC array, encoded image bytes or a file path, got " + got
    )


def preprocess_images(items: Sequence[Any] | np.ndarray, size: Sequence[int]) -> np.ndarray:
    """Decode, resize to ``size`` (height, width) and normalize: [n, 3, H, W] float32."""
    from PIL import Image

    height, width = (int(d) for d in size)
    # a uniform batch of decoded images arrives as one [n, H, W, C] array: iterate its rows
    rows = list(items) if not isinstance(items, np.ndarray) or items.dtype == object else items
    out = np.empty((len(rows), 3, height, width), dtype=np.float32)
    for i, item in enumerate(rows):
        rgb = decode_image(item)
        if rgb.shape[:2] != (height, width):
            rgb = np.asarray(Image.fromarray(rgb).resize((width, height), Image.BILINEAR))
        out[i] = normalize(rgb)
    return out
