"""Natural-ish test images on disk: random crops of the bundled sample photographs.

Crops of random position, size (48-320 px on the longer side) and aspect, from the photographs
``fluidrt.data.sample_photos`` bundles (scikit-image and scikit-learn), saved alternately as JPEG
and PNG, so decoding and resizing are exercised on real pictures of varied sizes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from fluidrt.data import sample_photos


def write_images(directory: str | Path, n: int, seed: int = 0) -> list[str]:
    """Write ``n`` images into ``directory``; returns their paths (sorted)."""
    from PIL import Image

    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    photos = sample_photos()
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(n):
        img = photos[int(rng.integers(len(photos)))]
        h, w = img.shape[:2]
        ch = int(rng.integers(48, min(h, 320) + 1))
        cw = int(min(w, max(48, ch * np.exp(rng.uniform(np.log(3 / 4), np.log(4 / 3))))))
        y, x = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
        crop = Image.fromarray(np.ascontiguousarray(img[y : y + ch, x : x + cw]))
        if i % 2 == 0:
            path = out / f"img{i:04d}.jpg"
            crop.save(path, quality=90)
        else:
            path = out / f"img{i:04d}.png"
            crop.save(path)
        paths.append(str(path))
    return sorted(paths)
