"""A real segmentation model (PaddleSeg PP-LiteSeg) with dynamic H/W through one predictor.

Exported once with ``InputSpec([1, 3, None, None])`` by ``tools/export_detection_models.py``'s
own model builder (seeded weights, calibrated batch norms) in a fresh process; fluidrt runs it
with ``set_trt_dynamic_shape_info`` at three sizes in the range with one build, each against
Paddle Inference, and an out-of-range size gets the clear error.
"""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

import fluidrt
from fluidrt.errors import InputError
from tests.models import REPO
from tests.support.paddle_ref import paddle_infer, rel_l2

pytestmark = pytest.mark.slow
CACHE = REPO / ".cache" / "models" / "pir" / "pp_liteseg_stdc1_dynamic_hw"
SIZES = [(256, 256), (320, 384), (384, 320)]

_EXPORT = """
import sys
from pathlib import Path
sys.path.insert(0, sys.argv[1])
import tools.export_detection_models as t
from paddle.static import InputSpec
out = Path(sys.argv[2])
out.mkdir(parents=True, exist_ok=True)
model = t.build_model("pp_liteseg_stdc1", 256, out)
t._save_pruned(model, str(out / "model"), [InputSpec([1, 3, None, None], "float32", "x")])
"""


@pytest.fixture(scope="module")
def model() -> tuple[str, str]:
    pytest.importorskip("paddleseg")
    prog, params = CACHE / "model.json", CACHE / "model.pdiparams"
    if not prog.exists():
        env = dict(os.environ, FLAGS_enable_pir_api="1")
        r = subprocess.run(
            [sys.executable, "-c", _EXPORT, str(REPO), str(CACHE)],
            capture_output=True,
            text=True,
            env=env,
            timeout=600,
        )
        if r.returncode != 0 or not prog.exists():
            pytest.fail(f"PP-LiteSeg export failed:\n{r.stderr[-3000:]}")
    return str(prog), str(params)


def _x(h: int, w: int) -> np.ndarray:
    return np.random.default_rng(h * 1000 + w).standard_normal((1, 3, h, w)).astype(np.float32)


def test_three_sizes_one_build_match_paddle(model, monkeypatch) -> None:
    import fluidrt.engine.model as engine_model

    builds = []
    real = engine_model.build_engine
    monkeypatch.setattr(
        engine_model, "build_engine", lambda *a, **k: builds.append(1) or real(*a, **k)
    )
    cfg = fluidrt.Config(*model)
    cfg.set_cpu_math_library_num_threads(2)
    cfg.enable_engine(max_batch_size=1)
    cfg.set_trt_dynamic_shape_info(
        {"x": [1, 3, 224, 224]}, {"x": [1, 3, 416, 416]}, {"x": [1, 3, 320, 320]}
    )
    pred = fluidrt.create_predictor(cfg)
    built = len(builds)
    assert built >= 1
    assert "engine" in pred.summary()
    for h, w in SIZES:
        x = _x(h, w)
        (out,) = pred.run([x])
        (ref,) = paddle_infer(*model, [x], onednn=False)
        assert out.shape == ref.shape == (1, 19, h, w)
        assert rel_l2(out, ref) <= 1e-5, (h, w, rel_l2(out, ref))
    assert len(builds) == built  # no rebuild for shapes inside the range
    with pytest.raises(InputError, match="outside the dynamic shape range"):
        pred.run([_x(448, 256)])
