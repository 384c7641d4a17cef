"""The deployment recipe (``deploy/``) stays consistent with the server it deploys.

Docker and Kubernetes are not available here, so the image is not built and the manifest is not
applied; these checks parse what can be parsed: the Dockerfile's entrypoint and arguments and the
KServe runtime's arguments go through ``fluidrt serve``'s own argument parser, the manifest's
resources reference each other, and the sample ``config.pbtxt`` loads with the server's parser.
"""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import pytest

from fluidrt.cli.main import make_parser

yaml = pytest.importorskip("yaml", reason="needs pyyaml")

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"


def _dockerfile() -> dict[str, list[str]]:
    """Instruction -> the argument texts of each use, continuation lines joined, no comments."""
    text = (DEPLOY / "Dockerfile").read_text()
    lines = [ln for ln in text.splitlines() if not ln.lstrip().startswith("#")]
    joined = re.sub(r"\\\n", " ", "\n".join(lines))
    out: dict[str, list[str]] = {}
    for ln in joined.splitlines():
        if ln.strip():
            word, _, rest = ln.strip().partition(" ")
            out.setdefault(word.upper(), []).append(rest.strip())
    return out


def test_dockerfile_runs_fluidrt_serve_with_real_flags() -> None:
    d = _dockerfile()
    entry, cmd = json.loads(d["ENTRYPOINT"][-1]), json.loads(d["CMD"][-1])
    assert entry == ["fluidrt", "serve"]
    args = make_parser().parse_args(entry[1:] + cmd)
    assert args.model_repository == ["/models"]
    assert args.host == "0.0.0.0", "in a container the server must listen on every interface"
    ports = {args.http_port, args.grpc_port, args.metrics_port}
    assert ports == {8000, 8001, 8002} == {int(p) for p in d["EXPOSE"][-1].split()}
    (base,) = d["FROM"]
    assert base.startswith("nvidia/cuda:") and "runtime" in base


def test_dockerfile_torch_pin_matches_requirements() -> None:
    pin = re.search(r"^torch==(\S+)", (REPO / "requirements-dev.txt").read_text(), re.M)
    run = " ".join(_dockerfile()["RUN"])
    assert pin and f"torch=={pin.group(1)}" in shlex.split(run)


def test_kserve_manifest() -> None:
    docs = list(yaml.safe_load_all((DEPLOY / "kserve-inferenceservice.yaml").read_text()))
    runtime = next(x for x in docs if x["kind"] == "ServingRuntime")
    isvc = next(x for x in docs if x["kind"] == "InferenceService")
    assert runtime["apiVersion"] == "serving.kserve.io/v1alpha1"
    assert isvc["apiVersion"] == "serving.kserve.io/v1beta1"

    (container,) = runtime["spec"]["containers"]
    assert container["name"] == "kserve-container"
    args = make_parser().parse_args(["serve", *container["args"]])
    assert args.model_repository == ["/mnt/models"]  # where KServe puts storageUri
    assert args.host == "0.0.0.0"
    assert [p["containerPort"] for p in container["ports"]] == [args.http_port]
    assert container["readinessProbe"]["httpGet"]["port"] == args.http_port
    annotations = runtime["spec"]["annotations"]
    assert int(annotations["prometheus.kserve.io/port"]) == args.metrics_port
    assert "v2" in runtime["spec"]["protocolVersions"]

    model = isvc["spec"]["predictor"]["model"]
    assert model["runtime"] == runtime["metadata"]["name"]
    assert model["protocolVersion"] == "v2"
    assert model["modelFormat"] in [
        {"name": f["name"], "version": f["version"]}
        for f in runtime["spec"]["supportedModelFormats"]
    ]
    assert model["storageUri"]
    assert model["resources"]["limits"]["nvidia.com/gpu"] == "1"


def test_sample_repository_config_loads() -> None:
    pytest.importorskip("tritonclient", reason="needs requirements-server.txt")
    from fluidrt.server.config import fluidrt_options, load_config_file
    from fluidrt.settings import PrecisionType

    cfg, explicit = load_config_file(str(DEPLOY / "model-repository" / "resnet50"), "resnet50")
    assert explicit and cfg.max_batch_size == 32
    assert [g.kind for g in cfg.instance_group] == [cfg.instance_group[0].KIND_GPU]
    opts = fluidrt_options(cfg)
    assert opts.enable_engine and opts.precision == PrecisionType.Half and opts.use_static
