"""The Ray Data example on a local Ray instance, checked row by row against a plain Predictor.

``examples/ray_batch_inference.py`` scores a few hundred natural-image crops (JPEG and PNG, varied
sizes) with a real paddle.vision model (MobileNetV3-Large, PIR export with calibrated seeded
weights from ``tools/export_models.py``) on 2 actors with engines on, and writes Parquet. Every
row is then compared with ``fluidrt.create_predictor`` on the same file decoded and preprocessed
by ``fluidrt.ray.preprocess_images``: logits within fp32 tolerance (relative L2 <= 1e-5), the
same top-5 labels. Each actor must have built or loaded its engines exactly once, and the two
actors together built them once (the second waited on the plan lock, then loaded the plan).
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("PIL", reason="pillow is not installed")

import fluidrt  # noqa: E402
from fluidrt.ray import FluidPredictor, preprocess_images, top_k  # noqa: E402
from tests.models import export_tool  # noqa: E402
from tests.ray.images import write_images  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
MODEL = "mobilenet_v3_large"
NUM_IMAGES = 200
BATCH = 16


def _example():
    spec = importlib.util.spec_from_file_location(
        "ray_batch_inference", REPO / "examples" / "ray_batch_inference.py"
    )
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def model_file() -> str:
    tool = export_tool()
    status = tool.ensure_model(MODEL, "pir", tool.DEFAULT_OUT, refs=True)
    if not status.get("ok"):
        pytest.skip(f"{MODEL} could not be exported: {status.get('error')}")
    return str(tool.model_files(MODEL, "pir", tool.DEFAULT_OUT)[0])


@pytest.fixture(scope="module")
def local_ray():
    ray = pytest.importorskip("ray", reason="needs ray (pip install -r requirements-ray.txt)")
    if ray.is_initialized():
        ray.shutdown()
    # workers import the fluidrt of this checkout, whatever is installed
    path = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p)
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        log_to_driver=False,
        runtime_env={"env_vars": {"PYTHONPATH": path}},
    )
    yield
    ray.shutdown()


def _rel_l2(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-30))


@pytest.mark.slow
def test_example_matches_plain_predictor(model_file: str, local_ray: None, tmp_path: Path) -> None:
    pq = pytest.importorskip("pyarrow.parquet", reason="pyarrow is not installed")
    images = write_images(tmp_path / "images", NUM_IMAGES)
    cache = tmp_path / "plans"
    out = tmp_path / "scores"
    result = _example().score_images(
        model_file,
        str(tmp_path / "images"),
        str(out),
        num_actors=2,
        batch_size=BATCH,
        cpus_per_actor=0.5,  # two actors on 2 CPUs leave room for the read and write tasks
        threads_per_actor=1,
        optim_cache_dir=str(cache),
        read_blocks=8,
    )
    assert result["images"] == NUM_IMAGES

    table = pq.read_table(out).to_pydict()
    rows = {p: i for i, p in enumerate(table["path"])}
    assert sorted(rows) == sorted(images), "every image scored exactly once"

    config = fluidrt.Config(model_file)
    config.enable_engine(max_batch_size=BATCH, use_static=True)
    config.set_optim_cache_dir(str(cache))
    config.set_cpu_math_library_num_threads(1)
    plain = fluidrt.create_predictor(config)
    worst = 0.0
    for start in range(0, NUM_IMAGES, BATCH):
        paths = images[start : start + BATCH]
        (ref,) = plain.run([preprocess_images(paths, (224, 224))])
        ref_top = top_k(ref, 5, "ref")["top_k_labels"]
        for j, path in enumerate(paths):
            i = rows[path]
            got = np.asarray(table["logits"][i], dtype=np.float32).reshape(ref[j].shape)
            worst = max(worst, _rel_l2(got, ref[j]))
            assert list(table["top_k_labels"][i]) == list(ref_top[j]), path
    assert worst <= 1e-5, f"worst relative L2 {worst:.2e}"

    actors = {}
    for actor, builds, loads in zip(
        table["fluidrt_actor"],
        table["fluidrt_engine_builds"],
        table["fluidrt_plan_loads"],
        strict=True,
    ):
        assert actors.setdefault(actor, (builds, loads)) == (builds, loads)
    assert len(actors) == 2, f"expected rows from both actors, got {actors}"
    assert all(b + l == 1 for b, l in actors.values()), f"one predictor per actor: {actors}"
    assert sum(b for b, _ in actors.values()) == 1, f"one engine build in all: {actors}"
    assert len(list(cache.glob("fluidrt_*.plan"))) == 1


def test_predictor_columns_without_ray_actors(model_file: str, tmp_path: Path) -> None:
    """The callable outside Ray: columns in and out, chunking above max_batch_size, errors."""
    write_images(tmp_path / "images", 5, seed=1)
    paths = sorted(str(p) for p in (tmp_path / "images").iterdir())
    udf = FluidPredictor(model_file, use_engine=False, max_batch_size=2, top_k=3)
    batch = {"image": np.array(paths, dtype=object), "path": np.array(paths)}
    row = udf(batch)
    assert row["logits"].shape == (5, 1000)
    assert row["top_k_labels"].shape == (5, 3) and row["top_k_scores"].shape == (5, 3)
    assert list(row["path"]) == paths and "image" not in row
    assert (row["fluidrt_engine_builds"] >= 1).all()
    (ref,) = udf.predictor.run([preprocess_images(paths, (224, 224))])
    assert _rel_l2(row["logits"], ref) <= 1e-5
    assert np.all(np.diff(row["top_k_scores"], axis=1) <= 0)
    with pytest.raises(fluidrt.InputError, match="reads column 'image'"):
        udf({"bytes": batch["image"]})
    with pytest.raises(fluidrt.ConfigError, match="input_columns"):
        FluidPredictor(model_file, use_engine=False, input_columns={"nope": "image"})
