"""Natural images to calibrate and evaluate with, no download needed.

The photographs bundled with scikit-image (``skimage.data``) and scikit-learn
(``load_sample_images``) are cut into crops of random position, size (10-100% of the shorter
side) and aspect, optionally flipped, resized to ``size`` and normalized with the ImageNet
mean/std, NCHW float32. Crops come from one seeded stream: ``split="calib"`` takes the even draws
and ``split="eval"`` the odd ones, so the two splits never share a crop.
"""

from __future__ import annotations

import functools
import os

import numpy as np

from fluidrt.errors import ConfigError

MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)
_SKIMAGE = (
    "astronaut",
    "chelsea",
    "coffee",
    "rocket",
    "cat",
    "immunohistochemistry",
    "hubble_deep_field",
    "retina",
    "colorwheel",
    "logo",
)


@functools.lru_cache(maxsize=1)
def sample_photos() -> tuple[np.ndarray, ...]:
    """The bundled RGB uint8 photographs (HWC)."""
    photos: list[np.ndarray] = []
    try:
        import skimage.data
    except ImportError as exc:
        raise ConfigError(
            "calibration_images needs scikit-image (pip install scikit-image)"
        ) from exc
    for name in _SKIMAGE:
        img = np.asarray(getattr(skimage.data, name)())
        if img.ndim == 3 and img.shape[2] == 4:
            img = img[..., :3]
        if img.ndim == 3 and img.shape[2] == 3 and min(img.shape[:2]) >= 128:
            photos.append(img.astype(np.uint8))
    try:
        from sklearn.datasets import load_sample_images

        photos.extend(np.asarray(i, dtype=np.uint8) for i in load_sample_images().images)
    except ImportError:
        pass
    return tuple(photos)


def normalize(rgb: np.ndarray) -> np.ndarray:
    """HWC uint8 RGB -> CHW float32, ImageNet mean/std."""
    x = rgb.astype(np.float32) / 255.0
    return ((x - MEAN) / STD).transpose(2, 0, 1).copy()


def _resize(img: np.ndarray, size: int) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.fromarray(img).resize((size, size), Image.BILINEAR))


def _crop(img: np.ndarray, rng: np.random.Generator, size: int) -> np.ndarray:
    h, w = img.shape[:2]
    side = min(h, w) * rng.uniform(0.1, 1.0)
    aspect = np.exp(rng.uniform(np.log(3 / 4), np.log(4 / 3)))
    ch = int(min(h, max(16, side / np.sqrt(aspect))))
    cw = int(min(w, max(16, side * np.sqrt(aspect))))
    y = int(rng.integers(0, h - ch + 1))
    x = int(rng.integers(0, w - cw + 1))
    out = img[y : y + ch, x : x + cw]
    if rng.random() < 0.5:
        out = out[:, ::-1]
    return _resize(np.ascontiguousarray(out), size)


def calibration_images(n: int, size: int = 224, seed: int = 0, split: str = "calib") -> np.ndarray:
    """``n`` normalized natural-image crops, [n, 3, size, size] float32."""
    if split not in ("calib", "eval"):
        raise ConfigError(f"calibration_images: split must be 'calib' or 'eval', got {split!r}")
    if n < 0:
        raise ConfigError(f"calibration_images: n must be >= 0, got {n}")
    photos = sample_photos()
    rng = np.random.default_rng(seed)
    offset = 0 if split == "calib" else 1
    out = np.empty((n, 3, size, size), dtype=np.float32)
    for i in range(2 * n):
        img = photos[int(rng.integers(len(photos)))]
        sub = np.random.default_rng(rng.integers(2**63))
        if i % 2 != offset:
            continue  # the other split's crop: its draws are consumed, not used
        out[i // 2] = normalize(_crop(img, sub, size))
    return out


def load_image_dir(path: str, size: int = 224) -> np.ndarray:
    """Every image (PIL-readable) or ``.npy`` array in ``path``, as [n, C, H, W] float32.

    Images are resized to ``size`` and normalized like ``calibration_images``; ``.npy`` files
    hold one [C, H, W] input or a [n, C, H, W] batch, used as they are (loaded without pickle)."""
    from PIL import Image, UnidentifiedImageError

    if not os.path.isdir(path):
        raise ConfigError(f"calibration data: {path!r} is not a directory")
    arrays: list[np.ndarray] = []
    for name in sorted(os.listdir(path)):
        full = os.path.join(path, name)
        if name.endswith(".npy"):
            a = np.load(full, allow_pickle=False).astype(np.float32)
            arrays.extend(a if a.ndim == 4 else a[None])
            continue
        try:
            with Image.open(full) as im:
                rgb = np.asarray(im.convert("RGB"))
        except (UnidentifiedImageError, IsADirectoryError):
            continue
        arrays.append(normalize(_resize(rgb, size)))
    if not arrays:
        raise ConfigError(f"calibration data: no images or .npy arrays in {path!r}")
    shapes = {a.shape for a in arrays}
    if len(shapes) != 1:
        raise ConfigError(f"calibration data in {path!r}: inputs of different shapes {shapes}")
    return np.stack(arrays)
