"""The seed's benchmark table, today: fluidrt vs PyTorch eager / CUDA graph / torch.compile.

Three steps, because Paddle lives on the CPU machine and the GPU machine has no Paddle:

  python bench/seed_table.py prepare            # here: programs + Paddle references
  python bench/seed_table.py run --out DIR      # on the GPU machine (device tool)
  python bench/seed_table.py report PART.json.. # here: bench/results + docs/benchmarks.md + PNG

``prepare`` exports each model's program (PIR ``.json``) from ``paddle.vision.models``, makes
fluidrt's seeded random weights for it, writes them as ``.pdiparams`` and runs Paddle Inference
on a seeded input: the GPU run regenerates the same weights from the seed, so Paddle's output
is the reference for fluidrt's fp32 engine there. Only the small programs travel.

``run`` measures, in one process on one GPU, per model and batch: ``torch-eager`` fp32 (the seed's
PyTorch column; torchvision model of the same architecture), ``torch-cudagraph`` fp16
channels-last, ``torch-compile`` (mode reduce-overhead) fp16 channels-last, and ``fluidrt`` fp32
and fp16 engines. Latency = median / p90 of CUDA-event timings of one forward (inputs and
outputs stay on the GPU for every runner), build time and peak GPU memory.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / ".cache" / "gpu-bench"
IMAGES = DATA / "images"  # natural-image crops for the accuracy check
# fluidrt model (paddle.vision) -> (torchvision peer, input size)
MODELS = {
    "resnet50": ("resnet50", 224),
    "mobilenet_v1": ("mobilenet_v2", 224),  # torchvision has no MobileNetV1
    "resnet101": ("resnet101", 224),
    "inception_v3": ("inception_v3", 299),
}
LATENCY_BATCHES = (1, 5, 10)
THROUGHPUT_BATCHES = (64, 256)
SEED = 0

_EXPORT = """
import sys, paddle
name, out, size = sys.argv[1], sys.argv[2], int(sys.argv[3])
paddle.seed(0)
m = getattr(paddle.vision.models, name)()
m.eval()
spec = [paddle.static.InputSpec([None, 3, size, size], "float32", "x")]
paddle.jit.save(m, out, input_spec=spec)
"""


# ---------------------------------------------------------------------------------------------
def prepare(models: list[str]) -> None:
    sys.path.insert(0, str(REPO))
    import paddle.inference as pi

    from fluidrt.frontends.paddle.loader import read_source_program
    from fluidrt.frontends.paddle.random_weights import random_params, write_params

    _prepare_images()
    for name in models:
        size = MODELS[name][1]
        folder = DATA / name
        folder.mkdir(parents=True, exist_ok=True)
        prefix = folder / "model"
        if not (folder / "model.json").exists():
            print(f"[prepare] exporting {name}", flush=True)
            subprocess.run(
                [sys.executable, "-c", _EXPORT, name, str(prefix), str(size)],
                check=True,
                capture_output=True,
            )
            (folder / "model.pdiparams").unlink(missing_ok=True)  # Paddle's own weights: unused
        program = read_source_program(str(folder / "model.json"))
        params = Path("/tmp") / f"fluidrt-bench-{name}.pdiparams"
        write_params(str(params), program, random_params(program, SEED))
        x = np.random.default_rng(1).standard_normal((4, 3, size, size)).astype(np.float32)
        cfg = pi.Config(str(folder / "model.json"), str(params))
        cfg.disable_gpu()
        cfg.disable_glog_info()
        cfg.set_cpu_math_library_num_threads(2)
        pred = pi.create_predictor(cfg)
        h = pred.get_input_handle(pred.get_input_names()[0])
        h.reshape(x.shape)
        h.copy_from_cpu(x)
        pred.run()
        ref = pred.get_output_handle(pred.get_output_names()[0]).copy_to_cpu()
        np.save(folder / "input.npy", x)
        np.save(folder / "paddle_ref.npy", ref)
        params.unlink()
        print(f"[prepare] {name}: reference {ref.shape}", flush=True)


def _prepare_images(n: int = 256, size: int = 320) -> None:
    """Natural-image crops (``fluidrt.data``: scikit-image / scikit-learn sample photos) as JPEG
    files, for the reduced-precision accuracy check on the GPU machine, which lacks those."""
    from PIL import Image

    from fluidrt.data import MEAN, STD, calibration_images

    IMAGES.mkdir(parents=True, exist_ok=True)
    if len(list(IMAGES.glob("*.jpg"))) == n:
        return
    for i, x in enumerate(calibration_images(n, size=size, split="eval")):
        rgb = np.clip(np.rint((x.transpose(1, 2, 0) * STD + MEAN) * 255.0), 0, 255)
        Image.fromarray(rgb.astype(np.uint8)).save(IMAGES / f"{i:04d}.jpg", quality=95)
    print(f"[prepare] {n} natural-image crops in {IMAGES}", flush=True)


# ---------------------------------------------------------------------------------------------
def _cuda_time(fn, iters: int = 100, warmup: int = 20) -> tuple[float, float]:
    import torch

    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(iters):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end))
    times.sort()
    return times[len(times) // 2], times[int(len(times) * 0.9)]


def _torchvision_model(tv_name: str, calibrate_bn: bool = False):
    """The PyTorch peer, seeded: the ONNX column runs an export of this very model.

    torchvision's default init leaves every BatchNorm at identity (mean 0, var 1), so deep
    random networks do not keep their activations normalized: MobileNetV2's shrink to 1e-9 at
    the logits and ResNet101's grow to 7e4, both outside fp16. ``calibrate_bn`` estimates the
    BatchNorm statistics from random inputs instead (as fluidrt's Paddle weight generator does),
    which normalizes every layer but leaves a network far more sensitive to rounding than a
    trained one. The accuracy check reports both; timing does not depend on the weights.
    """
    import torch
    import torchvision

    kwargs = {"aux_logits": False, "init_weights": False} if tv_name == "inception_v3" else {}
    torch.manual_seed(0)
    model = getattr(torchvision.models, tv_name)(weights=None, **kwargs)
    if calibrate_bn:
        size = 299 if tv_name == "inception_v3" else 224
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.reset_running_stats()
                m.momentum = None  # cumulative average over the calibration batches
        model.train()
        gen = torch.Generator().manual_seed(1)
        with torch.no_grad():
            for _ in range(4):
                model(torch.randn(16, 3, size, size, generator=gen))
    return model.eval()


def _onnx_file(tv_name: str, size: int, calibrate_bn: bool = False) -> str:
    """``torch.onnx.export`` (TorchScript exporter, dynamic batch) of the seeded peer."""
    import torch

    tag = "-bncal" if calibrate_bn else ""
    path = Path("/tmp") / f"fluidrt-bench-{tv_name}{tag}.onnx"
    if not path.exists():
        torch.onnx.export(
            _torchvision_model(tv_name, calibrate_bn),
            (torch.randn(1, 3, size, size),),
            str(path),
            opset_version=17,
            input_names=["x"],
            dynamic_axes={"x": {0: "batch"}},
            dynamo=False,
        )
    return str(path)


def _torch_runner(kind: str, tv_name: str, batch: int, size: int):
    import torch

    model = _torchvision_model(tv_name).cuda()
    x = torch.randn(batch, 3, size, size, device="cuda")
    if kind == "torch-eager":
        return (lambda: model(x)), "fp32"
    model = model.half().to(memory_format=torch.channels_last)
    xh = x.half().contiguous(memory_format=torch.channels_last)
    if kind == "torch-cudagraph":
        static = xh.clone()
        s = torch.cuda.Stream()
        s.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(s), torch.inference_mode():
            for _ in range(3):
                model(static)
        torch.cuda.current_stream().wait_stream(s)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph), torch.inference_mode():
            model(static)
        return graph.replay, "fp16"
    compiled = torch.compile(model, mode="reduce-overhead")
    with torch.inference_mode():
        for _ in range(3):
            compiled(xh)

    def run():
        with torch.inference_mode():
            return compiled(xh)

    return run, "fp16"


def _params_file(name: str) -> str:
    """The seeded weights as a .pdiparams file, made once per model (not part of build time)."""
    from fluidrt.frontends.paddle.loader import read_source_program
    from fluidrt.frontends.paddle.random_weights import random_params, write_params

    path = Path("/tmp") / f"fluidrt-bench-{name}.pdiparams"
    if not path.exists():
        program = read_source_program(str(DATA / name / "model.json"))
        write_params(str(path), program, random_params(program, SEED))
    return str(path)


def fluidrt_config(
    name: str,
    batch: int,
    precision: str,
    timing_cache: str,
    onnx: str | None = None,
    device: str = "cuda",
):
    """The fluidrt Config every runner of this benchmark uses (seeded weights, engines on)."""
    import fluidrt

    if onnx is not None:
        cfg = fluidrt.Config(onnx)
    else:
        cfg = fluidrt.Config(str(DATA / name / "model.json"), _params_file(name))
    if device == "cuda":
        cfg.enable_use_gpu(256, 0)
    else:
        cfg.disable_gpu()
    prec = {
        "fp32": fluidrt.PrecisionType.Float32,
        "fp16": fluidrt.PrecisionType.Half,
        "bf16": fluidrt.PrecisionType.Bfloat16,
    }[precision]
    # workspace: room for batch-256 activations (the default 1 GiB is Paddle's, for bs <= 64)
    cfg.enable_engine(workspace_size=1 << 35, max_batch_size=batch, precision_mode=prec)
    cfg.set_timing_cache(timing_cache)
    return cfg


def _fluidrt_predictor(
    name: str, batch: int, precision: str, timing_cache: str, onnx: str | None = None
):
    import fluidrt

    return fluidrt.create_predictor(fluidrt_config(name, batch, precision, timing_cache, onnx))


def timed_call(pred, batch: int, size: int):
    """One predictor call as the table times it: a GPU input shared, then run()."""
    import torch

    x = torch.randn(batch, 3, size, size, device="cuda")
    h = pred.get_input_handle(pred.get_input_names()[0])

    def run():
        h.share_external_data(x)
        pred.run()

    return run


def _fluidrt_runner(
    name: str, batch: int, size: int, precision: str, timing_cache: str, onnx: str | None = None
):
    pred = _fluidrt_predictor(name, batch, precision, timing_cache, onnx)
    return timed_call(pred, batch, size), pred


def accuracy(name: str, timing_cache: str) -> dict:
    """fp32 engine vs Paddle (CPU) reference; fp16/bf16 vs fp32 over 256 natural-image crops
    (and, for the record, over 256 Gaussian-noise inputs, which random networks are far more
    sensitive to)."""
    import torch

    from fluidrt.data import load_image_dir
    from fluidrt.frontends.paddle import load_paddle_model
    from fluidrt.ops.executor import NativeExecutor

    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    x = np.load(DATA / name / "input.npy")
    ref = np.load(DATA / name / "paddle_ref.npy")
    p32 = _fluidrt_predictor(name, 64, "fp32", timing_cache)
    out = p32.run([x])[0]
    row = {
        "model": name,
        "fp32_vs_paddle_rel_l2": float(np.linalg.norm(out - ref) / np.linalg.norm(ref)),
    }
    size = MODELS[name][1]
    images = load_image_dir(str(IMAGES), size)
    gen = np.random.default_rng(7)
    inputs = {
        "": [images[i : i + 64] for i in range(0, len(images), 64)],
        "gaussian_": [
            gen.standard_normal((64, 3, size, size)).astype(np.float32) for _ in range(4)
        ],
    }
    row["inputs"] = f"{len(images)} natural-image crops (fluidrt.data) and 256 N(0, 1) inputs"
    # baseline: the same network run natively under PyTorch's own mixed precision (autocast)
    native = NativeExecutor(
        load_paddle_model(str(DATA / name / "model.json"), _params_file(name)), "cuda"
    )
    preds = {prec: _fluidrt_predictor(name, 64, prec, timing_cache) for prec in ("fp16", "bf16")}
    for tag, batches in inputs.items():
        base = [p32.run([b])[0] for b in batches]
        for prec, dtype in (("fp16", torch.float16), ("bf16", torch.bfloat16)):
            with torch.autocast("cuda", dtype=dtype):
                outs = [
                    native.run([torch.from_numpy(b).cuda()])[0].float().cpu().numpy()
                    for b in batches
                ]
            row[f"{tag}autocast_{prec}_vs_fp32_rel_l2"] = _rel_l2(outs, base)
            row[f"{tag}autocast_{prec}_top1_agreement"] = _top1(outs, base)
            outs = [preds[prec].run([b])[0] for b in batches]
            row[f"{tag}{prec}_vs_fp32_rel_l2"] = _rel_l2(outs, base)
            row[f"{tag}{prec}_top1_agreement"] = _top1(outs, base)
    return row


def _rel_l2(outs: list, refs: list) -> float:
    return float(
        max(np.linalg.norm(o - r) / np.linalg.norm(r) for o, r in zip(outs, refs, strict=True))
    )


def _top1(outs: list, refs: list) -> float:
    return float(
        np.mean(
            np.concatenate([o.argmax(1) == r.argmax(1) for o, r in zip(outs, refs, strict=True)])
        )
    )


def onnx_accuracy(tv_name: str, size: int) -> list[dict]:
    """fluidrt on the ONNX export (backend API, CUDA) against PyTorch's own output of the model,
    for torchvision's default init and for BN-calibrated weights; PyTorch's own fp16 (autocast)
    on the same inputs shows what fp16 costs the network itself."""
    import torch

    import fluidrt.onnx.backend as backend

    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    gen = torch.Generator().manual_seed(11)
    xs = [torch.randn(64, 3, size, size, generator=gen) for _ in range(4)]
    rows = []
    for calibrate_bn in (False, True):
        row = {
            "model": tv_name,
            "init": "bn-calibrated" if calibrate_bn else "torchvision-default",
            "exporter": "torch.onnx.export (TorchScript), opset 17",
        }
        model = _torchvision_model(tv_name, calibrate_bn).cuda()
        with torch.inference_mode():
            refs = [model(x.cuda()).float().cpu().numpy() for x in xs]
            with torch.autocast("cuda", dtype=torch.float16):
                a16 = [model(x.cuda()).float().cpu().numpy() for x in xs]
        del model
        row["torch_logit_abs_max"] = float(max(np.abs(r).max() for r in refs))
        row["torch_autocast_fp16_vs_fp32_rel_l2"] = _rel_l2(a16, refs)
        row["torch_autocast_fp16_top1_agreement"] = _top1(a16, refs)
        onnx = _onnx_file(tv_name, size, calibrate_bn)
        for prec in ("fp32", "fp16"):
            rep = backend.prepare(onnx, device="CUDA:0", precision=prec)
            outs = [np.asarray(rep.run([x.numpy()])[0]) for x in xs]
            row[f"backend_{prec}_vs_torch_rel_l2"] = _rel_l2(outs, refs)
            # the same ONNX file through Config / create_predictor
            pred = _fluidrt_predictor(tv_name, 64, prec, "/tmp/onnx-acc-tc.json", onnx)
            outs = [pred.run([x.numpy()])[0] for x in xs]
            row[f"{prec}_vs_torch_rel_l2"] = _rel_l2(outs, refs)
            row[f"{prec}_top1_agreement"] = _top1(outs, refs)
        rows.append(row)
    return rows


def run(args: argparse.Namespace) -> None:
    import torch

    # fp32 means fp32 for every runner: PyTorch's default lets cuDNN use TF32
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False

    sys.path.insert(0, str(REPO))
    os.makedirs(args.out, exist_ok=True)
    cache = os.path.join(args.out, "timing_cache.json")
    dev = torch.cuda.get_device_name()
    result = {
        "command": " ".join(["python", *sys.argv]),
        "device": dev,
        "date": datetime.date.today().isoformat(),
        "versions": {"torch": torch.__version__, "python": sys.version.split()[0]},
        "rows": [],
        "accuracy": [],
        "builds": [],
        "onnx_accuracy": [],
    }
    try:
        import triton

        result["versions"]["triton"] = triton.__version__
    except ImportError:
        pass
    out_file = os.path.join(args.out, f"seed-table-{args.part}.json")

    def save() -> None:
        with open(out_file, "w") as f:
            json.dump(result, f, indent=1)

    for name in args.models:
        tv_name, size = MODELS[name]
        if args.accuracy:
            row = accuracy(name, cache)
            print("[accuracy]", row, flush=True)
            result["accuracy"].append(row)
            save()
        if args.onnx_accuracy:
            for row in onnx_accuracy(tv_name, size):
                print("[onnx-accuracy]", row, flush=True)
                result["onnx_accuracy"].append(row)
            save()
        batches = [b for b in args.batches if b in LATENCY_BATCHES + THROUGHPUT_BATCHES]
        _params_file(name)
        for batch in batches:
            for runner in args.runners:
                torch.cuda.empty_cache()
                torch.cuda.reset_peak_memory_stats()
                base_mem = torch.cuda.memory_allocated()
                t0 = time.perf_counter()
                tactics: list[str] = []
                try:
                    if runner.startswith("fluidrt-onnx"):
                        prec = runner.split("-")[2]
                        fn, _ = _fluidrt_runner(
                            name, batch, size, prec, cache, _onnx_file(tv_name, size)
                        )
                        label, precision = "fluidrt-onnx", prec
                    elif runner.startswith("fluidrt"):
                        prec = runner.split("-")[1]
                        fn, pred = _fluidrt_runner(name, batch, size, prec, cache)
                        label, precision = "fluidrt", prec
                        tactics = [
                            s.strip()
                            for s in pred.summary().splitlines()
                            if "tactics" in s or s.startswith("segment")
                        ]
                    else:
                        fn, precision = _torch_runner(runner, tv_name, batch, size)
                        label = runner
                    fn()
                    torch.cuda.synchronize()
                    build_s = time.perf_counter() - t0
                    med, p90 = _cuda_time(fn, iters=args.iters)
                except Exception as exc:  # record and go on: one failing cell keeps the table
                    print(f"[run] {name} bs{batch} {runner} FAILED: {exc}", flush=True)
                    result["rows"].append(
                        {"model": name, "batch": batch, "runner": runner, "error": str(exc)[:500]}
                    )
                    save()
                    continue
                peak = (torch.cuda.max_memory_allocated() - base_mem) / 2**20
                row = {
                    "model": name,
                    "batch": batch,
                    "runner": label,
                    "precision": precision,
                    "median_ms": round(med, 4),
                    "p90_ms": round(p90, 4),
                    "build_s": round(build_s, 2),
                    "peak_mem_mb": round(peak, 1),
                    "peer_model": tv_name if label != "fluidrt" else name,
                }
                if label == "fluidrt":
                    row["tactics"] = tactics
                print(f"[run] {row}", flush=True)
                result["rows"].append(row)
                save()
                del fn
    if args.build_times:
        result["builds"] = build_times(args.out)
        save()


def build_times(out: str) -> list[dict]:
    """ResNet50 fp16 engine build: cold (empty timing cache) and warm (cache from the cold)."""
    import torch

    rows = []
    cache = os.path.join(out, "build_timing_cache.json")
    if os.path.exists(cache):
        os.unlink(cache)
    _params_file("resnet50")
    for kind in ("cold", "warm"):
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        _fluidrt_predictor("resnet50", 1, "fp16", cache)
        rows.append(
            {
                "model": "resnet50",
                "precision": "fp16",
                "batch": 1,
                "cache": kind,
                "build_s": round(time.perf_counter() - t0, 2),
            }
        )
        print("[build]", rows[-1], flush=True)
    return rows


# ---------------------------------------------------------------------------------------------
def report(parts: list[str]) -> None:
    merged: dict = {"command": " ".join(["python", *sys.argv])}
    merged.update({"rows": [], "accuracy": [], "builds": [], "onnx_accuracy": []})
    for p in parts:
        with open(p) as f:
            d = json.load(f)
        for k in ("device", "date", "versions"):
            merged.setdefault(k, d.get(k))
        part = Path(p).stem
        for k in ("rows", "accuracy", "builds", "onnx_accuracy"):
            merged[k] += [dict(r, part=part) for r in d.get(k, [])]
    # accuracy checks measured again in a later part replace the earlier ones
    for k, key in (("accuracy", ("model",)), ("onnx_accuracy", ("model", "init"))):
        last = {tuple(r.get(f) for f in key): r for r in merged[k]}
        merged[k] = list(last.values())
    gpu = merged["device"].lower().replace("nvidia ", "").split()[0]
    out = REPO / "bench" / "results" / f"{gpu}-seed-table.json"
    out.write_text(json.dumps(merged, indent=1))
    lines = _markdown(merged)
    pins = REPO / "bench" / "results" / f"{gpu}-precision-pins.json"
    if pins.exists():
        lines += _pins_markdown(json.loads(pins.read_text()))
    doc = REPO / "docs" / "benchmarks.md"
    png = f"{gpu}-seed-table.png"
    _chart(merged, REPO / "docs" / png)
    doc.write_text("\n".join(lines + ["", f"![latency chart]({png})", ""]))
    print("\n".join(lines))
    print(f"wrote {out}, {doc}")


def _markdown(d: dict) -> list[str]:
    runners = [
        "torch-eager/fp32",
        "torch-cudagraph/fp16",
        "torch-compile/fp16",
        "fluidrt/fp32",
        "fluidrt/fp16",
        "fluidrt-onnx/fp16",
    ]
    cells: dict = {}
    for r in d["rows"]:  # parts merge in order; a cell measured twice keeps its first value
        if "median_ms" in r:
            cells.setdefault((r["model"], r["batch"], f"{r['runner']}/{r['precision']}"), r)
    lines = [
        "# Benchmarks",
        "",
        f"The seed's table on {d['device']} ({d['date']}; {json.dumps(d['versions'])}), made by "
        "`bench/seed_table.py run` on one GPU in parts (`bench/results/raw/seed-table-*.json`, "
        "each with its command; `part` in the JSON names each cell's part). The fluidrt/fp16 "
        "and torch-compile/fp16 columns, whose ratio is the last column, come from the same "
        "process for every cell (the latest parts, on the current code); the other columns "
        "from earlier parts. Median latency in ms "
        "(CUDA events, 100 runs; inputs and outputs on the GPU). fp32 runs have TF32 off for "
        "every runner. torch.compile's own latency moves 10-40% between processes (ResNet50 "
        "batch 5: 0.65-0.93 ms over the session's runs); the raw parts keep every run. "
        "MobileNet: fluidrt runs Paddle's MobileNetV1, the PyTorch columns "
        "torchvision's MobileNetV2 (torchvision has no V1); the fluidrt-onnx column runs the ONNX "
        "export of that same torchvision model (an earlier session, before the Triton "
        "convolution tactics). fluidrt uses seeded random weights "
        "(batch-norm statistics calibrated, see `fluidrt/frontends/paddle/random_weights.py`); "
        "PyTorch its random init. Build time and peak memory per cell are in the JSON.",
        "",
        "| model | batch | " + " | ".join(runners) + " | fluidrt fp16 vs compile |",
        "|---|---|" + "---|" * (len(runners) + 1),
    ]
    models = list(dict.fromkeys(r["model"] for r in d["rows"]))
    for m in models:
        for b in sorted({r["batch"] for r in d["rows"] if r["model"] == m}):
            vals = []
            for run in runners:
                c = cells.get((m, b, run))
                vals.append(f"{c['median_ms']:.3f}" if c else "—")
            comp, ours = cells.get((m, b, "torch-compile/fp16")), cells.get((m, b, "fluidrt/fp16"))
            ratio = f"{comp['median_ms'] / ours['median_ms']:.2f}x" if comp and ours else "—"
            lines.append(f"| {m} | {b} | " + " | ".join(vals) + f" | {ratio} |")
    if d.get("accuracy"):
        lines += [
            "",
            "## Accuracy",
            "",
            "fp32 engine (TF32 off) against Paddle Inference on the CPU machine; reduced "
            "precision against the fp32 engine over 256 natural-image crops (`fluidrt.data`; "
            "in brackets: over 256 Gaussian-noise inputs, to which these random-weight "
            "networks are far more sensitive). The autocast columns run the same network "
            "natively under PyTorch's own mixed precision: the error a half-precision run of "
            "this network has anyway.",
            "",
            "| model | fp32 vs Paddle rel L2 | fp16 rel L2 / top-1 | autocast fp16 rel L2 / "
            "top-1 | bf16 rel L2 / top-1 | autocast bf16 rel L2 / top-1 |",
            "|---|---|---|---|---|---|",
        ]

        def pair(a: dict, key: str) -> str:
            if f"{key}_vs_fp32_rel_l2" not in a:
                return "—"
            text = f"{a[f'{key}_vs_fp32_rel_l2']:.2e} / {100 * a[f'{key}_top1_agreement']:.1f}%"
            if f"gaussian_{key}_vs_fp32_rel_l2" in a:
                g = f"gaussian_{key}"
                text += f" ({a[f'{g}_vs_fp32_rel_l2']:.2e} / {100 * a[f'{g}_top1_agreement']:.1f}%)"
            return text

        for a in d["accuracy"]:
            lines.append(
                f"| {a['model']} | {a['fp32_vs_paddle_rel_l2']:.2e} | {pair(a, 'fp16')} | "
                f"{pair(a, 'autocast_fp16')} | {pair(a, 'bf16')} | {pair(a, 'autocast_bf16')} |"
            )
    if d.get("onnx_accuracy"):
        lines += [
            "",
            "## fluidrt on the ONNX export of the PyTorch model",
            "",
            "`torch.onnx.export` of the very torchvision model the PyTorch columns run, "
            'through `fluidrt.onnx.backend.prepare(..., device="CUDA:0")`, against '
            "PyTorch's own fp32 output (TF32 off) over 256 inputs (batches of 64), next to "
            "PyTorch's own fp16 (autocast) on the same inputs. Two weight sets: torchvision's "
            "default init, whose batch norms normalize nothing (mobilenet_v2's logits end near "
            "1e-9, below fp16; resnet101's reach 7e4, above it: fluidrt's fp16 range guard "
            "keeps those layers fp32, autocast cannot), and BN-calibrated weights, whose "
            "normalized random layers are far more sensitive to rounding than trained ones "
            "(PyTorch's own fp16 misses 1e-2 there too).",
            "",
            "| model | init | logit max | fp32 rel L2 / top-1 | fp16 rel L2 / top-1 | "
            "PyTorch autocast fp16 rel L2 / top-1 |",
            "|---|---|---|---|---|---|",
        ]
        for a in d["onnx_accuracy"]:
            lines.append(
                f"| {a['model']} | {a.get('init', 'torchvision-default')} | "
                f"{a.get('torch_logit_abs_max', float('nan')):.2g} | "
                f"{a['fp32_vs_torch_rel_l2']:.2e} / {100 * a['fp32_top1_agreement']:.1f}% | "
                f"{a['fp16_vs_torch_rel_l2']:.2e} / {100 * a['fp16_top1_agreement']:.1f}% | "
                f"{a.get('torch_autocast_fp16_vs_fp32_rel_l2', float('nan')):.2e} / "
                f"{100 * a.get('torch_autocast_fp16_top1_agreement', float('nan')):.1f}% |"
            )
    if d.get("builds"):
        lines += [
            "",
            "## Engine build time",
            "",
            "In a fresh process on a fresh machine: empty Triton kernel cache "
            "(`TRITON_CACHE_DIR`) and empty timing cache for the cold build, then the same "
            "build again with the timing cache the cold one wrote.",
            "",
        ]
        lines += [
            f"- {b['model']} {b['precision']} batch {b['batch']}, {b['cache']} timing "
            f"cache: {b['build_s']} s"
            for b in d["builds"]
        ]
    return lines


def _pins_markdown(d: dict) -> list[str]:
    """The accuracy bar met with fp32 pins (``bench/precision_pins.py``)."""
    lines = [
        "",
        "## Accuracy with fp32 pins",
        "",
        "The fewest layers an engine must keep in fp32 to stay within rel L2 1e-2 of the fp32 "
        "engine with >= 99% top-1 agreement over the 256 crops (`bench/precision_pins.py`, "
        "`fluidrt.precision_debug.debug_precision`; order: `sensitivity` pins the layers whose "
        "reduced precision alone moves the logits most, `backward` the last ones). Pinned "
        "layers run in strict fp32 (no TF32). Latency of the pinned FP16 engine next to the "
        "unpinned one and torch.compile fp16, same process, batch 1 / 5 / 10 (ms).",
        "",
        "| model | precision | unpinned rel L2 / top-1 | fp32 pins | pinned rel L2 / top-1 | "
        "order | pinned / unpinned / compile latency |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in d["rows"]:
        trials = {t["pinned"]: t for t in r["trials"]}
        first, best = trials[0], trials[len(r["fp32_layers"])]

        def fmt(t: dict) -> str:
            return f"{t['rel_l2']:.2e} / {100 * t['top1']:.1f}%"

        timing = []
        for b in (1, 5, 10):
            if f"bs{b}" in r:
                t = r[f"bs{b}"]
                timing.append(
                    f"{t['fluidrt_pinned_ms']:.3f} / {t['fluidrt_ms']:.3f} / "
                    f"{t['torch_compile_ms']:.3f}"
                )
        pinned = "—" if not r["fp32_layers"] else fmt(best)
        lines.append(
            f"| {r['model']} | {r['precision']} | {fmt(first)} | "
            f"{len(r['fp32_layers'])} of {r['layers']} | {pinned} | "
            f"{r.get('direction') or 'backward'} | {'; '.join(timing) or '—'} |"
        )
    return lines


def _chart(d: dict, path: Path) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib missing: no chart")
        return
    rows = [r for r in d["rows"] if "median_ms" in r and r["batch"] in LATENCY_BATCHES]
    models = list(dict.fromkeys(r["model"] for r in rows))
    runners = list(dict.fromkeys(f"{r['runner']}/{r['precision']}" for r in rows))
    fig, axes = plt.subplots(1, len(models), figsize=(4.5 * len(models), 4), squeeze=False)
    for ax, m in zip(axes[0], models, strict=True):
        batches = sorted({r["batch"] for r in rows if r["model"] == m})
        width = 0.8 / max(len(runners), 1)
        for i, run in enumerate(runners):
            ys = [
                next(
                    (
                        r["median_ms"]
                        for r in rows
                        if r["model"] == m
                        and r["batch"] == b
                        and f"{r['runner']}/{r['precision']}" == run
                    ),
                    0,
                )
                for b in batches
            ]
            ax.bar([j + i * width for j in range(len(batches))], ys, width, label=run)
        ax.set_xticks([j + 0.4 - width / 2 for j in range(len(batches))])
        ax.set_xticklabels([f"bs {b}" for b in batches])
        ax.set_title(m)
        ax.set_ylabel("median latency (ms)")
    axes[0][0].legend(fontsize=7)
    fig.suptitle(f"{d['device']}: latency, lower is better")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("prepare")
    p.add_argument("--models", nargs="+", default=list(MODELS))
    r = sub.add_parser("run")
    r.add_argument("--out", default=os.environ.get("OUT", "bench/results/raw"))
    r.add_argument("--part", default="all")
    r.add_argument("--models", nargs="+", default=list(MODELS))
    r.add_argument(
        "--batches", nargs="+", type=int, default=list(LATENCY_BATCHES + THROUGHPUT_BATCHES)
    )
    r.add_argument(
        "--runners",
        nargs="+",
        default=[
            "torch-eager",
            "torch-cudagraph",
            "torch-compile",
            "fluidrt-fp32",
            "fluidrt-fp16",
            "fluidrt-onnx-fp16",
        ],
    )
    r.add_argument("--iters", type=int, default=100)
    r.add_argument("--accuracy", action="store_true")
    r.add_argument("--onnx-accuracy", action="store_true", help="the ONNX-vs-PyTorch check")
    r.add_argument("--build-times", action="store_true")
    rp = sub.add_parser("report")
    rp.add_argument("parts", nargs="+")
    args = ap.parse_args()
    if args.cmd == "prepare":
        prepare(args.models)
    elif args.cmd == "run":
        run(args)
    else:
        report(args.parts)


if __name__ == "__main__":
    main()
