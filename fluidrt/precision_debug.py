"""Which layers a reduced-precision engine must keep in fp32 to meet an accuracy bar.

The workflow of Polygraphy's ``debug precision``: an FP16/BF16 engine misses a tolerance against
fp32 on the user's inputs; pinning layers to fp32 (``Config.set_layer_precision``) brings it
back, at some cost in speed. ``debug_precision`` pins the half-precision layers in an order (from
the network's end, where rounding has had the most layers to grow; from its start; or by
sensitivity: first the layers whose reduced precision alone moves the outputs most, one probe
build per layer) and bisects the number pinned for the fewest that meet the bar: a maximum
relative L2 error of each output against the fp32 run, and for classifier outputs
(``[batch, classes]``) a minimum top-1 agreement. Each trial builds a predictor; the answer is
a pin list for ``Config.set_layer_precision`` (``PrecisionReport.overrides``).

Bisection assumes that pinning more layers never hurts; the report keeps every trial, so a
non-monotonic model shows itself.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from fluidrt.engine.runtime import library_flags
from fluidrt.errors import ConfigError
from fluidrt.inference import Config, create_predictor, load_graph
from fluidrt.settings import PrecisionType

DIRECTIONS = ("backward", "forward", "sensitivity")
_HALF = {PrecisionType.Half: "float16", PrecisionType.Bfloat16: "bfloat16"}
Outputs = list[list[np.ndarray]]  # per feed, per model output


@dataclass
class Trial:
    """One predictor: how many layers were pinned to fp32, and how it compared."""

    pinned: int
    rel_l2: float  # the worst output's relative L2 error over all feeds
    top1: float | None  # top-1 agreement over all classifier rows (None: no classifier output)
    passed: bool
    layer: str | None = None  # sensitivity probes: the one layer left in reduced precision


@dataclass
class PrecisionReport:
    precision: str
    layers: list[str]  # the layers that run in reduced precision, in order
    fp32_layers: list[str]  # the fewest layers (from ``direction``) whose pinning meets the bar
    met: bool  # False: even every layer pinned misses it
    trials: list[Trial] = field(default_factory=list)
    # direction "sensitivity": each layer's probe (it alone in reduced precision), in pin order
    probes: list[Trial] = field(default_factory=list)

    @property
    def overrides(self) -> dict[str, str]:
        """For ``Config.set_layer_precision``."""
        return dict.fromkeys(self.fp32_layers, "float32")


def half_layers(config: Config, precision: PrecisionType) -> list[str]:
    """Names of the layers an engine of this config runs in ``precision``, in graph order (the
    optimized graph lowered as the builder lowers it; names are what set_layer_precision pins)."""
    from fluidrt.engine.precision import lower_precision
    from fluidrt.passes import run_passes

    s = config.settings
    g = load_graph(config)
    if s.ir_optim:
        g = run_passes(g, s)
    lowered = lower_precision(g, _HALF[precision], dict(s.precision_overrides))
    return [n.name for n in lowered.nodes if n.meta.get("precision") == _HALF[precision]]


def _outputs(config: Config, feeds: Sequence[Sequence[np.ndarray]]) -> Outputs:
    predictor = create_predictor(config)
    return [[np.asarray(o) for o in predictor.run(list(feed))] for feed in feeds]


def _compare(got: Outputs, ref: Outputs) -> tuple[float, float | None]:
    worst, hits, rows = 0.0, 0, 0
    for outs, refs in zip(got, ref, strict=True):
        for o, r in zip(outs, refs, strict=True):
            o, r = o.astype(np.float64), r.astype(np.float64)
            norm = np.linalg.norm(r)
            err = np.linalg.norm(o - r) / norm if norm > 0 else np.linalg.norm(o)
            worst = max(worst, float(err) if np.isfinite(err) else float("inf"))
            if r.ndim == 2 and r.shape[1] > 1:
                hits += int((o.argmax(1) == r.argmax(1)).sum())
                rows += r.shape[0]
    return worst, (hits / rows if rows else None)


def debug_precision(
    config: Config,
    feeds: Sequence[Sequence[np.ndarray]],
    precision: PrecisionType = PrecisionType.Half,
    max_rel_l2: float = 1e-2,
    min_top1: float | None = 0.99,
    direction: str = "backward",
    progress: Callable[[Trial], None] | None = None,
) -> PrecisionReport:
    """The fewest layers to keep in fp32 (see the module docstring). ``config`` is left as it
    is: each trial builds a copy with engines on at ``precision``; the fp32 reference runs the
    same config with engines off and TF32 off. ``feeds``: input batches, each a list with one
    array per model input."""
    if precision not in _HALF:
        raise ConfigError(f"debug_precision: precision must be Half or Bfloat16, got {precision}")
    if direction not in DIRECTIONS:
        raise ConfigError(f"direction: expected one of {', '.join(DIRECTIONS)}, got {direction!r}")
    if not feeds:
        raise ConfigError("debug_precision: no input feeds to compare on")
    reference = copy.deepcopy(config)
    reference.settings.use_engine = False
    with library_flags(allow_tf32=False):  # the fp32 reference without TF32's 1e-3
        ref = _outputs(reference, feeds)
    layers = half_layers(config, precision)

    def compare(pinned: Sequence[str]) -> tuple[float, float | None, bool]:
        cfg = copy.deepcopy(config)
        cfg.settings.use_engine = True
        cfg.settings.precision = precision
        cfg.settings.use_static = False  # every trial is a different engine
        cfg.set_layer_precision(dict.fromkeys(pinned, "float32"))
        rel, top1 = _compare(_outputs(cfg, feeds), ref)
        ok = rel <= max_rel_l2 and (min_top1 is None or top1 is None or top1 >= min_top1)
        return rel, top1, ok

    probes: list[Trial] = []
    order: list[str] = []  # the pin order, set once the unpinned engine has failed
    trials: dict[int, Trial] = {}

    def trial(k: int) -> Trial:
        if k not in trials:
            trials[k] = Trial(k, *compare(order[:k]))
            if progress is not None:
                progress(trials[k])
        return trials[k]

    def report(k: int, met: bool) -> PrecisionReport:
        done = [trials[i] for i in sorted(trials)]
        return PrecisionReport(_HALF[precision], layers, order[:k], met, done, probes)

    if trial(0).passed:
        return report(0, True)
    if direction == "sensitivity":
        for name in layers:
            probes.append(Trial(len(layers) - 1, *compare([n for n in layers if n != name]), name))
            if progress is not None:
                progress(probes[-1])
        # most harmful first; ties keep graph order (sorted is stable)
        probes.sort(key=lambda t: -t.rel_l2)
        order = [t.layer for t in probes]
    else:
        order = layers[::-1] if direction == "backward" else layers
    if not trial(len(order)).passed:
        return report(len(order), False)
    lo, hi = 0, len(order)  # trial(lo) fails, trial(hi) passes
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if trial(mid).passed:
            hi = mid
        else:
            lo = mid
    return report(hi, True)
