"""``FluidPredictor``: a callable class for ``ray.data.Dataset.map_batches``.

Ray Data makes one instance per actor; its ``__init__`` builds (or loads) the predictor once, and
``__call__`` runs every batch the actor receives::

    ds.map_batches(
        FluidPredictor,
        fn_constructor_kwargs={"model": "resnet50/", "optim_cache_dir": "/shared/plans"},
        compute=ray.data.ActorPoolStrategy(size=4),
        num_gpus=1,
        batch_size=64,
        batch_format="numpy",
    )

Actors share built engines through the optim cache (``use_static``): a file lock next to the plan
lets the first actor build while the others wait, then load its plan (plans are written
atomically, so an actor never reads half a file, even where the lock is not honoured).
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator, Sequence
from types import ModuleType

import numpy as np
import torch

from fluidrt.errors import ConfigError, InputError
from fluidrt.inference import Config, Predictor, create_predictor
from fluidrt.ray.images import preprocess_images
from fluidrt.settings import PrecisionType

log = logging.getLogger(__name__)

_PRECISIONS = {
    "float32": PrecisionType.Float32,
    "fp32": PrecisionType.Float32,
    "float16": PrecisionType.Half,
    "fp16": PrecisionType.Half,
    "half": PrecisionType.Half,
    "bfloat16": PrecisionType.Bfloat16,
    "bf16": PrecisionType.Bfloat16,
}

# what this process has done, whatever instance did it: a second build in one actor shows here
PROCESS_COUNTS = {"engine_builds": 0, "plan_loads": 0}


def parse_precision(value: str | int | PrecisionType) -> PrecisionType:
    if isinstance(value, str):
        if value.lower() not in _PRECISIONS:
            raise ConfigError(f"precision: expected one of {sorted(_PRECISIONS)}, got {value!r}")
        return _PRECISIONS[value.lower()]
    return PrecisionType(value)


def _ray_if_running() -> ModuleType | None:
    """The ``ray`` module when this process is part of a Ray job (the class works without)."""
    try:
        import ray
    except ImportError:
        return None
    return ray if ray.is_initialized() else None


def actor_device(device: str = "auto") -> str:
    """``auto``: ``cuda:0`` when Ray gave this actor a GPU (Ray sets CUDA_VISIBLE_DEVICES to
    it, so it is device 0 of the visible ones), else ``cpu``."""
    if device != "auto":
        return device
    ray = _ray_if_running()
    if ray is not None and ray.get_gpu_ids():
        return "cuda:0"
    return "cpu"


def actor_name() -> str:
    """Which actor (node and process) this is, for the stats columns and logs."""
    ray = _ray_if_running()
    if ray is not None:
        ctx = ray.get_runtime_context()
        actor = ctx.get_actor_id()
        if actor is not None:
            return f"{ctx.get_node_id()[:12]}:{os.getpid()}:{actor[:12]}"
    return f"local:{os.getpid()}"


@contextlib.contextmanager
def _exclusive(path: str) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` (created if missing) for the block."""
    try:
        import fcntl
    except ImportError:  # no flock (Windows): actors may build the same plan more than once
        yield
        return
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def load_or_build(config: Config) -> tuple[Predictor, str]:
    """A predictor for ``config`` and how it came about: ``"loaded"`` (plan from the optim
    cache) or ``"built"``. With ``use_static`` the build runs under a lock on the plan's path,
    so concurrent callers wait for one build and then load its plan."""
    from fluidrt.engine.cache import PlanCache

    s = config.settings
    if not (s.use_engine and s.use_static):
        return create_predictor(config), "built"
    cache = PlanCache.for_config(config, torch.device(s.device))
    with _exclusive(cache.path + ".lock"):
        runner = cache.load()
        if runner is not None:
            return Predictor(config, runner=runner), "loaded"
        return create_predictor(config), "built"


class FluidPredictor:
    """Runs a fluidrt predictor on Ray Data batches (``dict[str, np.ndarray]`` in and out).

    Model and build: ``model`` (a Paddle model dir or program file, or ``.onnx``), ``params``,
    ``use_engine``, ``precision`` (``float32``/``float16``/``bfloat16``), ``max_batch_size``
    (larger batches run in chunks of this size), ``optim_cache_dir`` (shared by the actors;
    default: ``_opt_cache`` next to the model), ``num_threads`` (0: torch's default), ``device``
    (``auto``: the actor's GPU if it has one, else CPU).

    Columns: ``input_columns`` maps model inputs to batch columns (default: the first input reads
    ``image``). With ``image_size`` (height, width) set, the first input's column holds images
    (arrays, encoded bytes or paths) that are decoded, resized and normalized; with ``None`` it
    holds model-ready arrays. ``output_columns`` maps model outputs to columns (default: the first
    output as ``logits``); ``top_k`` > 0 adds ``top_k_labels`` (class indices, best first) and
    ``top_k_scores`` (softmax probabilities) from the first output. Columns that feed no input
    pass through (``path``, ids); ``stats_columns`` adds ``fluidrt_actor``,
    ``fluidrt_engine_builds`` and ``fluidrt_plan_loads`` (this actor process's counts).
    """

    def __init__(
        self,
        model: str,
        params: str | None = None,
        *,
        use_engine: bool = True,
        precision: str | int = "float32",
        max_batch_size: int = 32,
        optim_cache_dir: str | None = None,
        num_threads: int = 0,
        device: str = "auto",
        input_columns: dict[str, str] | None = None,
        image_size: Sequence[int] | None = (224, 224),
        output_columns: dict[str, str] | None = None,
        top_k: int = 5,
        stats_columns: bool = True,
    ) -> None:
        config = Config(model, params)
        if use_engine:
            config.enable_engine(
                max_batch_size=max_batch_size,
                precision_mode=parse_precision(precision),
                use_static=True,
            )
        if optim_cache_dir:
            config.set_optim_cache_dir(optim_cache_dir)
        if num_threads:
            config.set_cpu_math_library_num_threads(num_threads)
        config.settings.device = actor_device(device)
        self.max_batch_size = int(max_batch_size)
        self.image_size = tuple(image_size) if image_size is not None else None
        self.top_k = int(top_k)
        self.stats_columns = bool(stats_columns)
        self.actor = actor_name()

        self.predictor, how = load_or_build(config)
        self.engine_builds = int(how == "built")
        self.plan_loads = int(how == "loaded")
        PROCESS_COUNTS["engine_builds"] += self.engine_builds
        PROCESS_COUNTS["plan_loads"] += self.plan_loads
        log.info("actor %s: predictor %s on %s", self.actor, how, config.settings.device)

        inputs = self.predictor.get_input_names()
        outputs = self.predictor.get_output_names()
        self.input_columns = dict(input_columns or {inputs[0]: "image"})
        missing = [n for n in inputs if n not in self.input_columns]
        unknown = [n for n in self.input_columns if n not in inputs]
        if missing or unknown:
            raise ConfigError(
                f"input_columns must name every model input {inputs}: "
                f"missing {missing}, unknown {unknown}"
            )
        self.image_input = inputs[0] if self.image_size is not None else None
        self.output_columns = dict(output_columns or {outputs[0]: "logits"})
        unknown = [n for n in self.output_columns if n not in outputs]
        if unknown:
            raise ConfigError(f"output_columns: {unknown} are not model outputs {outputs}")

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        arrays = [self._input_array(name, batch) for name in self.predictor.get_input_names()]
        n = len(arrays[0])
        results: dict[str, list[np.ndarray]] = {name: [] for name in self.output_columns}
        names = self.predictor.get_output_names()
        for start in range(0, n, self.max_batch_size):
            outs = self.predictor.run([a[start : start + self.max_batch_size] for a in arrays])
            for name, out in zip(names, outs, strict=True):
                if name in results:
                    results[name].append(out)
        used = set(self.input_columns.values())
        row: dict[str, np.ndarray] = {k: v for k, v in batch.items() if k not in used}
        for name, parts in results.items():
            row[self.output_columns[name]] = np.concatenate(parts)
        if self.top_k > 0:
            first = next(iter(self.output_columns))
            row.update(top_k(row[self.output_columns[first]], self.top_k, first))
        if self.stats_columns:
            row["fluidrt_actor"] = np.array([self.actor] * n)
            row["fluidrt_engine_builds"] = np.full(n, PROCESS_COUNTS["engine_builds"])
            row["fluidrt_plan_loads"] = np.full(n, PROCESS_COUNTS["plan_loads"])
        return row

    def _input_array(self, name: str, batch: dict[str, np.ndarray]) -> np.ndarray:
        column = self.input_columns[name]
        if column not in batch:
            raise InputError(
                f"model input {name!r} reads column {column!r}, but the batch has columns "
                f"{sorted(batch)}; set input_columns"
            )
        data = batch[column]
        if name == self.image_input:
            return preprocess_images(data, self.image_size)
        if data.dtype == object:  # a column of equally shaped arrays (e.g. read from Parquet)
            data = np.stack(list(data))
        return np.ascontiguousarray(data)


def top_k(scores: np.ndarray, k: int, output: str) -> dict[str, np.ndarray]:
    """``top_k_labels`` (best first; ties keep the lower index) and their softmax scores."""
    if scores.ndim != 2:
        raise InputError(
            f"top_k needs a [batch, classes] output; {output!r} has shape {list(scores.shape)} "
            "(pass top_k=0)"
        )
    x = scores.astype(np.float64)
    prob = np.exp(x - x.max(axis=1, keepdims=True))
    prob /= prob.sum(axis=1, keepdims=True)
    labels = np.argsort(-x, axis=1, kind="stable")[:, :k]
    picked = np.take_along_axis(prob, labels, axis=1)
    return {"top_k_labels": labels.astype(np.int64), "top_k_scores": picked.astype(np.float32)}
