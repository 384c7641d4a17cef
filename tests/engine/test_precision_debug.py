"""debug_precision: the fewest layers to pin to fp32 for a reduced-precision engine to meet a bar
(Polygraphy's ``debug precision``), on a small Paddle classifier run on the CPU."""

from __future__ import annotations

import numpy as np
import pytest

import fluidrt
from fluidrt.errors import ConfigError
from fluidrt.precision_debug import debug_precision, half_layers
from tests.support.paddle_ref import export_layers, model_files

SPLIT = "tests.engine.layers_engine:split_by_cumsum"


@pytest.fixture(scope="module")
def config() -> fluidrt.Config:
    files = model_files(export_layers([SPLIT], "pir")[SPLIT], "pir")
    cfg = fluidrt.Config(*files)
    cfg.set_cpu_math_library_num_threads(2)
    cfg.enable_engine(max_batch_size=4, min_subgraph_size=1)
    return cfg


def _feeds(n: int = 2) -> list[list[np.ndarray]]:
    rng = np.random.default_rng(0)
    return [[rng.standard_normal((4, 3, 16, 16)).astype(np.float32)] for _ in range(n)]


def test_the_half_layers_are_listed_in_order(config: fluidrt.Config) -> None:
    layers = half_layers(config, fluidrt.PrecisionType.Half)
    assert len(layers) >= 4 and len(set(layers)) == len(layers)


def test_a_loose_bar_pins_nothing_and_a_tight_one_pins_a_suffix(config: fluidrt.Config) -> None:
    loose = debug_precision(config, _feeds(), max_rel_l2=0.1, min_top1=None)
    assert loose.met and loose.fp32_layers == [] and [t.pinned for t in loose.trials] == [0]
    seen = []
    tight = debug_precision(config, _feeds(), max_rel_l2=1e-5, min_top1=0.99, progress=seen.append)
    assert tight.met and tight.fp32_layers
    # pinned from the end: a suffix of the half layers, reversed
    assert tight.fp32_layers == tight.layers[::-1][: len(tight.fp32_layers)]
    # the pin list is what set_layer_precision takes, and it meets the bar again
    assert set(tight.overrides.values()) == {"float32"}
    passing = [t for t in tight.trials if t.passed]
    assert min(t.pinned for t in passing) == len(tight.fp32_layers)
    assert all(not t.passed for t in tight.trials if t.pinned < len(tight.fp32_layers))
    assert seen == tight.trials or sorted(seen, key=lambda t: t.pinned) == tight.trials
    assert config.settings.precision_overrides == {}  # the caller's config is left alone
    forward = debug_precision(config, _feeds(), max_rel_l2=1e-5, min_top1=0.99, direction="forward")
    assert forward.met and forward.fp32_layers == forward.layers[: len(forward.fp32_layers)]


def test_an_unreachable_bar_is_reported_and_bad_arguments_refused(config: fluidrt.Config) -> None:
    report = debug_precision(config, _feeds(1), max_rel_l2=1.0, min_top1=1.01)
    assert not report.met and len(report.fp32_layers) == len(report.layers)
    with pytest.raises(ConfigError, match="direction"):
        debug_precision(config, _feeds(1), direction="sideways")
    with pytest.raises(ConfigError, match="no input feeds"):
        debug_precision(config, [])
    with pytest.raises(ConfigError, match="Half or Bfloat16"):
        debug_precision(config, _feeds(1), precision=fluidrt.PrecisionType.Float32)


def test_sensitivity_probes_every_layer_and_pins_the_most_harmful_first(
    config: fluidrt.Config,
) -> None:
    seen = []
    report = debug_precision(
        config, _feeds(), max_rel_l2=1e-5, min_top1=None, direction="sensitivity",
        progress=seen.append,
    )  # fmt: skip
    assert report.met and report.fp32_layers
    # one probe per half layer, each with only that layer left in reduced precision
    assert sorted(p.layer for p in report.probes) == sorted(report.layers)
    assert all(p.pinned == len(report.layers) - 1 for p in report.probes)
    errors = [p.rel_l2 for p in report.probes]
    assert errors == sorted(errors, reverse=True)
    # the pins are the most harmful layers, a prefix of the probe order
    assert report.fp32_layers == [p.layer for p in report.probes][: len(report.fp32_layers)]
    assert [t for t in seen if t.layer is not None] and not report.trials[0].passed
