"""Export real vision models with seeded random weights, plus Paddle Inference reference outputs.

Each (model, format) is exported by ``paddle.jit.save`` in a fresh subprocess (Paddle reads
``FLAGS_enable_pir_api`` once at start-up and keeps global parameter names), into::

    <out>/<fmt>/<name>/model.json | model.pdmodel    the program (PIR or legacy ProgramDesc)
    <out>/<fmt>/<name>/model.pdiparams               the weights
    <out>/<fmt>/<name>/ref.npz                       inputs x_b1, x_b4 (seeded normal);
                                                     Paddle Inference outputs out_b1_<i>, ...;
                                                     float64 eager outputs exact_b1_<i>, ...
    <out>/<fmt>/<name>/status.json                   {"ok", "error", "export_s", "ref_s", ...}

Weights: ``paddle.seed(0)`` and the model's constructor, then BatchNorm layers get seeded scales,
shifts and running statistics calibrated on a seeded batch (see ``build_model``), so the outputs
depend on the input and fp32 noise stays near 1e-6 (Paddle Inference vs float64: <= 3.4e-6).

A model Paddle cannot export in a format (legacy ``pdmodel`` mode fails on models that call
tensor methods) gets ``"ok": false`` and the error in ``status.json``; that is reported, not fatal.
Existing exports are reused (``--force`` redoes them).

Usage::

    python tools/export_models.py --formats pir,pdmodel --models resnet50,mobilenet_v2 --refs
    python tools/export_models.py --models all --refs          # the whole list, both formats
    python tools/export_models.py --list

PaddleClas models come from the installed ``paddleclas`` package (``pip install --no-deps
paddleclas==2.6.0`` plus pyyaml, scipy, scikit-learn, tqdm): only its ``ppcls.arch.backbone`` is
imported, never ``paddleclas/__init__.py`` (which needs faiss and more).
"""

from __future__ import annotations

import argparse
import fcntl
import importlib.util
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_OUT = Path(os.environ.get("FLUIDRT_MODEL_CACHE", REPO / ".cache" / "models"))
FORMATS = ("pir", "pdmodel")
BATCHES = (1, 4)
# Bump when the export recipe changes, so cached exports are redone.
RECIPE = 4
# Added to each BN variance, times the layer's mean variance (see build_model).
VAR_FLOOR = 0.2

# name -> (source, constructor, input height/width)
MODELS: dict[str, tuple[str, str, int]] = {
    "resnet50": ("vision", "resnet50", 224),
    "resnet101": ("vision", "resnet101", 224),
    "mobilenet_v1": ("vision", "mobilenet_v1", 224),
    "mobilenet_v2": ("vision", "mobilenet_v2", 224),
    "mobilenet_v3_large": ("vision", "mobilenet_v3_large", 224),
    "vgg16": ("vision", "vgg16", 224),
    "alexnet": ("vision", "alexnet", 224),
    "googlenet": ("vision", "googlenet", 224),
    "inception_v3": ("vision", "inception_v3", 299),
    "resnext50_32x4d": ("vision", "resnext50_32x4d", 224),
    "SE_ResNeXt50_32x4d": ("ppcls", "SE_ResNeXt50_32x4d", 224),
    "DPN68": ("ppcls", "DPN68", 224),
    "PPLCNet_x1_0": ("ppcls", "PPLCNet_x1_0", 224),
    "ResNet50_vd": ("ppcls", "ResNet50_vd", 224),
    "ViT_small_patch16_224": ("ppcls", "ViT_small_patch16_224", 224),
}


def model_dir(name: str, fmt: str, out: Path | str = DEFAULT_OUT) -> Path:
    return Path(out) / fmt / name


def model_files(name: str, fmt: str, out: Path | str = DEFAULT_OUT) -> tuple[Path, Path]:
    d = model_dir(name, fmt, out)
    return d / ("model.json" if fmt == "pir" else "model.pdmodel"), d / "model.pdiparams"


def read_status(name: str, fmt: str, out: Path | str = DEFAULT_OUT) -> dict | None:
    p = model_dir(name, fmt, out) / "status.json"
    try:
        return json.loads(p.read_text())
    except (OSError, ValueError):
        return None


def _is_done(name: str, fmt: str, out: Path, refs: bool) -> bool:
    st = read_status(name, fmt, out)
    if st is None or st.get("recipe") != RECIPE:
        return False
    if not st["ok"]:
        # paddle.jit.save could not export it: recorded, not retried every run. Anything else
        # (a missing package, a crash, a timeout, a failed reference run) is retried.
        return st.get("stage") == "export"
    prog, params = model_files(name, fmt, out)
    if not (prog.is_file() and params.is_file()):
        return False
    return not refs or (model_dir(name, fmt, out) / "ref.npz").is_file()


def ensure_model(
    name: str,
    fmt: str,
    out: Path | str = DEFAULT_OUT,
    refs: bool = True,
    force: bool = False,
    timeout: float = 900,
) -> dict:
    """Export ``name`` in ``fmt`` (and its references) unless cached; returns its status dict."""
    if name not in MODELS:
        raise KeyError(f"unknown model {name!r}; known: {', '.join(MODELS)}")
    if fmt not in FORMATS:
        raise KeyError(f"unknown format {fmt!r}; known: {', '.join(FORMATS)}")
    out = Path(out)
    if not force and _is_done(name, fmt, out, refs):
        return read_status(name, fmt, out)
    d = model_dir(name, fmt, out)
    d.parent.mkdir(parents=True, exist_ok=True)
    # one exporter per model at a time, across processes (test runs may overlap)
    with open(d.parent / f".{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not force and _is_done(name, fmt, out, refs):
            return read_status(name, fmt, out)
        return _export(name, fmt, out, refs, timeout)


def _export(name: str, fmt: str, out: Path, refs: bool, timeout: float) -> dict:
    d = model_dir(name, fmt, out)
    d.mkdir(parents=True, exist_ok=True)
    for stale in d.iterdir():
        stale.unlink()
    env = dict(os.environ, FLAGS_enable_pir_api="1" if fmt == "pir" else "0")
    env.setdefault("GLOG_minloglevel", "2")
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", name, "--formats", fmt]
    cmd += ["--out", str(out)] + (["--refs"] if refs else [])
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
        tail = (proc.stdout + proc.stderr)[-4000:]
        rc = proc.returncode
    except subprocess.TimeoutExpired:
        tail, rc = f"timed out after {timeout:.0f}s", -1
    st = read_status(name, fmt, out)
    if st is None:  # the worker died before it could write its status (crash, OOM, timeout)
        st = {
            "model": name,
            "format": fmt,
            "recipe": RECIPE,
            "ok": False,
            "stage": "worker",
            "error": f"export worker exited with {rc}:\n{tail}",
        }
        (d / "status.json").write_text(json.dumps(st, indent=1))
    st["wall_s"] = round(time.perf_counter() - t0, 2)
    return st


# ---- the worker (runs in a fresh process per model and format) -------------------------------
def _ppcls_backbone():
    spec = importlib.util.find_spec("paddleclas")  # locates the package without importing it
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(
            "PaddleClas models need paddleclas: pip install --no-deps paddleclas==2.6.0; "
            "pip install pyyaml scipy scikit-learn tqdm"
        )
    root = list(spec.submodule_search_locations)[0]
    if root not in sys.path:
        sys.path.insert(0, root)
    from ppcls.utils import logger

    logger.init_logger()
    import ppcls.arch.backbone as backbone

    return backbone


def build_model(name: str):
    """The model with seeded random weights and randomised BatchNorm statistics, in eval mode."""
    import numpy as np
    import paddle

    source, ctor, _ = MODELS[name]
    paddle.seed(0)
    if source == "vision":
        import paddle.vision.models as vm

        model = getattr(vm, ctor)()
    else:
        model = getattr(_ppcls_backbone(), ctor)()
    size = MODELS[name][2]
    calib = np.random.RandomState(99).standard_normal((4, 3, size, size)).astype("float32")
    randomize_batchnorm(model, lambda: model(paddle.to_tensor(calib)))
    return model


def randomize_batchnorm(model, calibrate: Callable[[], object]) -> None:
    """Seeded BN scales/shifts, running statistics from ``calibrate()`` (a forward pass on a
    seeded batch) plus a variance floor; leaves ``model`` in eval mode."""
    import numpy as np
    import paddle

    # Fresh BatchNorm layers are identities (mean 0, var 1, scale 1, shift 0). With the default
    # initialisers the signal then fades with depth and the outputs barely depend on the input
    # (mobilenets: 1e-7 of the output norm), and a wrong BN fold would go unnoticed. So give each
    # BN seeded scales and shifts, then set its running statistics to the batch statistics of a
    # seeded calibration batch (momentum 0, BN layers alone in training mode). Exact batch
    # statistics make deep nets chaotic (near-dead channels get divided by ~0: fp32 rounding grows
    # 100x through resnet101, so Paddle Inference itself lands 8e-5 from the float64 result);
    # adding 0.2 x the mean variance to every channel's variance keeps fp32 noise near 1e-6 while
    # the outputs still vary across images by 3-40% of their norm ("input_sensitivity").
    bns = [
        m
        for m in model.sublayers(include_self=True)
        if isinstance(m, (paddle.nn.layer.norm._BatchNormBase, paddle.nn.BatchNorm))
    ]
    model.eval()
    if bns:
        rng = np.random.RandomState(0)
        momenta = [bn._momentum for bn in bns]
        for bn in bns:
            c = bn._mean.shape[0]
            if bn.weight is not None:
                bn.weight.set_value(rng.uniform(0.5, 1.5, c).astype("float32"))
            if bn.bias is not None:
                bn.bias.set_value(rng.normal(0, 0.2, c).astype("float32"))
            bn._momentum = 0.0
            bn.train()
        with paddle.no_grad():
            calibrate()
        for bn, momentum in zip(bns, momenta, strict=True):
            bn._momentum = momentum
            var = bn._variance.numpy()
            bn._variance.set_value((var + VAR_FLOOR * var.mean()).astype("float32"))
    model.eval()


def reference_inputs(name: str) -> dict[str, object]:
    """The fixed inputs: ``x_b4`` (4 images, seeded normal) and ``x_b1`` (its first image)."""
    import numpy as np

    size = MODELS[name][2]
    x = np.random.RandomState(1234).standard_normal((max(BATCHES), 3, size, size))
    x = x.astype("float32")
    return {f"x_b{b}": np.ascontiguousarray(x[:b]) for b in BATCHES}


def _paddle_infer(prog: str, params: str, x):
    sys.path.insert(0, str(REPO))
    from tests.support.paddle_ref import paddle_infer

    return paddle_infer(prog, params, [x])


def worker(name: str, fmt: str, out: Path, refs: bool) -> int:
    import traceback

    import numpy as np

    d = model_dir(name, fmt, out)
    d.mkdir(parents=True, exist_ok=True)
    status: dict = {"model": name, "format": fmt, "recipe": RECIPE, "ok": False}

    def save() -> None:
        (d / "status.json").write_text(json.dumps(status, indent=1))

    stage = "import"
    try:
        import paddle

        status["paddle"] = paddle.__version__
        stage = "build"
        t0 = time.perf_counter()
        model = build_model(name)
        stage = "export"
        size = MODELS[name][2]
        spec = [paddle.static.InputSpec([None, 3, size, size], "float32", "x")]
        paddle.jit.save(model, str(d / "model"), input_spec=spec)
        prog, params = model_files(name, fmt, out)
        if not prog.is_file():
            found = sorted(p.name for p in d.iterdir())
            raise RuntimeError(f"paddle.jit.save wrote {found}, expected {prog.name}")
        status["export_s"] = round(time.perf_counter() - t0, 2)
        status["program_bytes"] = prog.stat().st_size
        status["params_bytes"] = params.stat().st_size if params.is_file() else 0
        if refs:
            stage = "reference"
            t0 = time.perf_counter()
            data = reference_inputs(name)
            for b in BATCHES:
                outs = _paddle_infer(str(prog), str(params), data[f"x_b{b}"])
                for i, o in enumerate(outs):
                    data[f"out_b{b}_{i}"] = o
                status["num_outputs"] = len(outs)
                status[f"out_shapes_b{b}"] = [list(o.shape) for o in outs]
            try:  # float64 eager outputs: how far Paddle Inference itself is from exact
                t1 = time.perf_counter()
                model.to(dtype="float64")
                with paddle.no_grad():
                    for b in BATCHES:
                        outs = model(paddle.to_tensor(data[f"x_b{b}"].astype("float64")))
                        outs = outs if isinstance(outs, (list, tuple)) else [outs]
                        for i, o in enumerate(outs):
                            data[f"exact_b{b}_{i}"] = o.numpy()
                status["exact_s"] = round(time.perf_counter() - t1, 2)
            except Exception as exc:  # noqa: BLE001 - optional diagnostics only
                status["exact_error"] = f"{type(exc).__name__}: {exc}"[:500]
            np.savez(d / "ref.npz", **data)
            # How much the first output varies across the 4 images, relative to its norm: the
            # part of a rel-L2 budget that input-dependent errors can hide in.
            o = data[f"out_b{max(BATCHES)}_0"].astype("float64")
            centered = np.linalg.norm(o - o.mean(0)) / max(np.linalg.norm(o), 1e-30)
            status["input_sensitivity"] = float(f"{centered:.3g}")
            status["ref_s"] = round(time.perf_counter() - t0, 2)
        status["ok"] = True
    except BaseException as exc:  # noqa: BLE001 - record everything, including SystemExit
        status["stage"] = stage
        status["error"] = f"{type(exc).__name__}: {exc}"
        status["traceback"] = traceback.format_exc(limit=6)[-6000:]
    save()
    return 0 if status["ok"] else 1


# ---- CLI ------------------------------------------------------------------------------------
def error_line(st: dict) -> str:
    """One line for a failed status: the stage and the innermost ``...Error: ...`` line."""
    lines = [ln.strip() for ln in (st.get("error") or "").splitlines() if ln.strip()]
    hits = [ln for ln in lines if re.match(r"^[\w.]*(Error|Exception)\b.*:", ln)]
    line = hits[-1] if hits else (lines[0] if lines else "?")
    return f"{st.get('stage', '?')}: {line[:200]}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", default="all", help="comma-separated names, or 'all'")
    ap.add_argument("--formats", default="pir,pdmodel", help="comma-separated: pir,pdmodel")
    ap.add_argument("--out", default=str(DEFAULT_OUT), help=f"cache dir (default {DEFAULT_OUT})")
    ap.add_argument("--refs", action="store_true", help="also write Paddle Inference references")
    ap.add_argument("--force", action="store_true", help="export again even when cached")
    ap.add_argument("--list", action="store_true", help="list the models and exit")
    ap.add_argument("--worker", metavar="MODEL", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)

    if args.list:
        for n, (src, ctor, size) in MODELS.items():
            print(f"{n:24s} {src:7s} {ctor}  {size}x{size}")
        return 0
    formats = [f.strip() for f in args.formats.split(",") if f.strip()]
    if args.worker:
        return worker(args.worker, formats[0], Path(args.out), args.refs)

    names = list(MODELS) if args.models == "all" else [m.strip() for m in args.models.split(",")]
    unknown = [n for n in names if n not in MODELS] + [f for f in formats if f not in FORMATS]
    if unknown:
        ap.error(f"unknown model(s)/format(s) {unknown}; see --list")
    t_all = time.perf_counter()
    failures = 0
    for name in names:
        for fmt in formats:
            t0 = time.perf_counter()
            st = ensure_model(name, fmt, args.out, refs=args.refs, force=args.force)
            took = time.perf_counter() - t0
            if st["ok"]:
                detail = f"export {st.get('export_s', '?')}s"
                if "ref_s" in st:
                    detail += f", refs {st['ref_s']}s"
                cached = " (cached)" if "wall_s" not in st else ""
                print(f"ok    {fmt:8s} {name:24s} {took:6.1f}s  {detail}{cached}", flush=True)
            else:
                failures += 1
                print(f"FAIL  {fmt:8s} {name:24s} {took:6.1f}s  {error_line(st)}", flush=True)
    print(
        f"{len(names) * len(formats) - failures} exported, {failures} failed "
        f"(details in <out>/<fmt>/<model>/status.json) in {time.perf_counter() - t_all:.0f}s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
