"""One server for most tests: a repository with every kind of model the tests need."""

from __future__ import annotations

import pytest

from tests.server.helpers import ServerProcess, add_model, exported, model_files

pytest.importorskip("tritonclient.grpc")
pytest.importorskip("aiohttp")

AFFINE_CFG = """
name: "affine"
max_batch_size: 16
input [ { name: "x" data_type: TYPE_FP32 dims: [ 4 ] } ]
output [ { name: "v5" data_type: TYPE_FP32 dims: [ 4 ] } ]
dynamic_batching { max_queue_delay_microseconds: 1000 }
instance_group [ { count: 2 kind: KIND_CPU } ]
"""

CONCAT_CFG = """
max_batch_size: 8
dynamic_batching {
  preferred_batch_size: [ 4, 8 ]
  max_queue_delay_microseconds: 2000
}
instance_group [ { count: 2 kind: KIND_CPU } ]
"""

SMALL_CFG = """
max_batch_size: 8
version_policy: { latest { num_versions: 2 } }
output [ { name: "v15" data_type: TYPE_FP32 dims: [ 5 ] label_filename: "labels.txt" } ]
"""

# 1.5 s of batching delay and room for 2 queued requests: a third one is rejected
QUEUED_CFG = """
max_batch_size: 8
dynamic_batching {
  max_queue_delay_microseconds: 1500000
  default_queue_policy { max_queue_size: 2 }
}
"""

NOBATCH_CFG = """
max_batch_size: 0
input [ { name: "x" data_type: TYPE_FP32 dims: [ -1, 4 ] } ]
"""

LABELS = "cat\ndog\nbird\nfish\nfrog\n"


@pytest.fixture(scope="session")
def models() -> dict[str, str]:
    pytest.importorskip("paddle")  # exports the test layers
    return exported()


@pytest.fixture(scope="session")
def repo(tmp_path_factory, models):
    root = tmp_path_factory.mktemp("repo")
    add_model(root, "affine", model_files(models["affine"]), AFFINE_CFG)
    add_model(root, "int_math", model_files(models["int_math"]))
    add_model(root, "half", model_files(models["half"]))
    add_model(
        root,
        "concat",
        model_files(models["concat_relu"]),
        CONCAT_CFG,
        rename={"model.json": "concat.json", "model.pdiparams": "concat.pdiparams"},
    )
    add_model(
        root,
        "small",
        model_files(models["small_net"]),
        SMALL_CFG,
        versions=(1, 2, 3),
        extra={"labels.txt": LABELS},
    )
    add_model(root, "queued", model_files(models["affine"]), QUEUED_CFG)
    add_model(root, "nobatch", model_files(models["affine"]), NOBATCH_CFG)
    add_model(root, "affine_copy", model_files(models["affine"]))
    broken = root / "broken" / "1"
    broken.mkdir(parents=True)
    (broken / "model.json").write_text("{ not a program")
    return root


@pytest.fixture(scope="session")
def server(repo):
    with ServerProcess(
        repo,
        "--model-control-mode",
        "explicit",
        "--load-model",
        "*",
        "--strict-readiness",
        "false",
        "--http-max-input-size",
        "1MB",
    ) as s:
        yield s
