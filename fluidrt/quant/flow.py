"""Paddle Inference's INT8 flow (seed 002): calibrate on the first inputs, write the table, switch.

With ``use_calib_mode`` and no table in the optim cache dir, the predictor runs natively in FP32
and records every tensor INT8 layers touch; once ``calib_num_inputs`` inputs have gone through,
it writes ``trt_calib_<key>`` (and the per-layer float/INT8 decisions beside it), builds the INT8
engines and runs them from then on. A later predictor with the same config finds the table and
builds directly. Without ``use_calib_mode`` the model must carry quantize/dequantize ops.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import torch

from fluidrt.engine.plan import write_atomic
from fluidrt.errors import ConfigError
from fluidrt.ir.graph import Graph
from fluidrt.quant.calibrate import RecordingExecutor, sensitivity
from fluidrt.quant.calibrators import make_calibrator
from fluidrt.quant.lower import FEW_CHANNELS, candidate, lower_int8, needed_tensors
from fluidrt.quant.table import (
    CalibrationTable,
    check_table,
    model_key,
    read_table,
    table_path,
    write_table,
)

if TYPE_CHECKING:
    from fluidrt.inference import Config
    from fluidrt.settings import Settings

log = logging.getLogger(__name__)


def _model_files(config: Config) -> list[str]:
    model = config.prog_file()
    if model.endswith(".onnx"):
        return [model]
    from fluidrt.frontends.paddle.loader import resolve_model_files

    prog, params = resolve_model_files(model, config.params_file() or None)
    return [prog] + ([params] if params else [])


def table_location(config: Config) -> tuple[str, str]:
    """(path of this model's calibration table, its model key)."""
    s = config.settings
    files = _model_files(config)
    extra: dict[str, Any] = {"random_weights": s.random_weights, "ir_optim": s.ir_optim}
    if s.calib_algorithm == "percentile":
        extra["percentile"] = s.calib_percentile
    key = model_key(files, s.calib_algorithm, extra)
    directory = s.optim_cache_dir or os.path.join(
        os.path.dirname(os.path.abspath(files[0])), "_opt_cache"
    )
    return table_path(directory, key), key


def _decisions_path(path: str) -> str:
    return path + ".layers.json"


def calibration_files(config: Config) -> list[str]:
    """This config's calibration table and layer decisions, those that exist (for plan keys)."""
    path, _ = table_location(config)
    return [p for p in (path, _decisions_path(path)) if os.path.exists(p)]


def build_int8(
    graph: Graph,
    scales: dict[str, float],
    keep_float: Sequence[str],
    settings: Settings,
    device,
    calibrated: bool = True,
) -> Any:
    """Lower ``graph`` to INT8 with these scales and build it; ``calibrated`` (scales from a
    calibration, not from the model's own Q/DQ ops) lets image stems stay float."""
    from fluidrt.engine.model import partition_and_build

    lower_int8(graph, scales, keep_float, float_stems=calibrated)
    decisions = {n.name: n.meta["int8"] for n in graph.nodes if n.meta.get("int8") in _LAYER}
    return Int8Model(partition_and_build(graph, settings, device), decisions)


_LAYER = ("int8", "float", "float (sensitivity)", FEW_CHANNELS, "float (input has no scale)")


class Int8Model:
    """A partitioned model with INT8 layers; its summary lists the per-layer decisions."""

    def __init__(self, model: Any, decisions: dict[str, str]) -> None:
        self.model = model
        self.decisions = decisions

    def __getattr__(self, name: str) -> Any:
        return getattr(self.__dict__["model"], name)

    def run(self, inputs: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        return self.model.run(inputs)

    def clone(self) -> Int8Model:
        return Int8Model(self.model.clone(), self.decisions)

    def summary(self) -> str:
        n8 = sum(1 for d in self.decisions.values() if d == "int8")
        lines = [f"INT8: {n8} of {len(self.decisions)} conv/GEMM layer(s) in int8"]
        lines += [f"    {name}: {d}" for name, d in self.decisions.items() if d != "int8"]
        return "\n".join(lines + [self.model.summary()])


def int8_runner(
    config: Config, graph: Graph, device: torch.device, save: Callable[[Any], None] | None = None
) -> Any:
    """What a predictor runs for an INT8 config: the INT8 model, or the calibrating one.
    ``save`` (``use_static``) receives every INT8 model built, calibrated or not."""
    s = config.settings
    if not s.use_calib_mode:
        from fluidrt.quant.qdq import fold_qdq

        scales = fold_qdq(graph)
        if not scales:
            raise ConfigError(
                "precision Int8 with use_calib_mode=False needs a model that carries "
                "quantize_linear/dequantize_linear ops (explicit quantization); this one has "
                "none. Pass use_calib_mode=True to calibrate it instead."
            )
        return _saved(build_int8(graph, scales, (), s, device, calibrated=False), save)
    if s.calib_num_inputs < s.calib_min_inputs:
        raise ConfigError(
            f"INT8 calibration: calib_num_inputs={s.calib_num_inputs} is fewer than the "
            f"minimum {s.calib_min_inputs}; ranges from so few inputs clip real data. Lower "
            "the minimum explicitly with config.set_calibration(min_inputs=...) to allow it"
        )
    path, key = table_location(config)
    if os.path.exists(path):
        table = read_table(path)
        check_table(table, path, key, needed_tensors(graph), graph.values)
        keep = _read_decisions(path)
        log.info("INT8: calibration table %s found; building without calibration", path)
        return _saved(build_int8(graph, table.scales, keep, s, device), save)
    model = CalibratingModel(config, graph, device, path, key, save)
    if s.calib_data:
        model.calibrate_on(s.calib_data)
    return model


def _saved(model: Any, save: Callable[[Any], None] | None) -> Any:
    if save is not None:
        save(model.model)
    return model


def _read_decisions(path: str) -> list[str]:
    side = _decisions_path(path)
    if not os.path.exists(side):
        return []
    try:
        with open(side, encoding="utf-8") as f:
            data = json.load(f)
        return [str(n) for n in data["keep_float"]]
    except (ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"{side}: corrupt layer decisions ({exc}); delete it") from None


class CalibratingModel:
    """Runs natively in FP32 while recording ranges; then writes the table and switches."""

    def __init__(
        self,
        config: Config,
        graph: Graph,
        device: torch.device,
        path: str,
        key: str,
        save: Callable[[Any], None] | None = None,
    ) -> None:
        s = config.settings
        self.save = save
        self.settings = s
        self.graph = graph
        self.device = device
        self.path, self.key = path, key
        self.inputs = list(graph.inputs)
        self.output_names = list(graph.meta.get("output_names") or [v.name for v in graph.outputs])
        self.calibrator = make_calibrator(s.calib_algorithm, s.calib_percentile)
        self.recorder = RecordingExecutor(graph, self.calibrator, device)
        self.device = torch.device(device)
        self.sample: list[list[torch.Tensor]] = []
        self.calibration_passes = 0
        self.model: Any = None
        self._profiler = None
        log.info(
            "INT8: no calibration table at %s; running FP32 and calibrating on the next %d "
            "input(s) (%s)",
            path,
            s.calib_num_inputs,
            s.calib_algorithm,
        )

    def run(self, inputs: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        if self.model is not None:
            return self.model.run(inputs)
        outs = self.recorder.run(inputs)
        self.calibration_passes += 1
        if sum(int(b[0].shape[0]) for b in self.sample) < self.settings.int8_sensitivity_inputs:
            self.sample.append([t.detach().clone() for t in inputs])
        if self.recorder.inputs_seen >= self.settings.calib_num_inputs:
            self.finish()
        return outs

    def calibrate_on(self, directory: str) -> None:
        """Calibrate now on every input in ``directory`` (images or .npy), then switch."""
        from fluidrt.data import load_image_dir

        shape = self.inputs[0].shape or ()
        size = shape[-1] if len(shape) == 4 and isinstance(shape[-1], int) else 224
        data = torch.from_numpy(load_image_dir(directory, size)).to(self.device)
        s = self.settings
        if len(data) < s.calib_min_inputs:
            raise ConfigError(
                f"calibration data {directory!r}: {len(data)} input(s), fewer than the minimum "
                f"{s.calib_min_inputs}; add inputs or lower the minimum explicitly"
            )
        s.calib_num_inputs = min(s.calib_num_inputs, len(data))
        step = max(1, min(int(s.max_batch_size), 32))
        for i in range(0, len(data), step):
            if self.model is None:
                self.run([data[i : i + step]])

    def finish(self) -> None:
        """Write the table from what was recorded and build the INT8 engines."""
        s = self.settings
        scales = self.calibrator.scales()
        table = CalibrationTable(s.calib_algorithm, self.key, scales)
        keep = self._sensitive_layers(scales)
        write_table(self.path, table)
        write_atomic(
            _decisions_path(self.path),
            json.dumps({"keep_float": keep, "threshold": s.int8_sensitivity_threshold}).encode(),
        )
        log.info("INT8: wrote calibration table %s (%d tensors)", self.path, len(scales))
        self.model = _saved(build_int8(self.graph.clone(), scales, keep, s, self.device), self.save)
        if self._profiler is not None:
            self.model.set_profiler(self._profiler)

    def _sensitive_layers(self, scales: dict[str, float]) -> list[str]:
        s = self.settings
        if not self.sample or s.int8_sensitivity_threshold <= 0:
            return []
        n = len(self.graph.inputs)
        batch = [
            torch.cat([b[i] for b in self.sample])[: s.int8_sensitivity_inputs] for i in range(n)
        ]
        errors = sensitivity(self.graph, scales, batch, self.device)
        keep = [name for name, e in errors.items() if e > s.int8_sensitivity_threshold]
        for node in self.graph.nodes:
            if candidate(node) and node.name in errors:
                node.meta["int8_sensitivity"] = round(errors[node.name], 6)
        log.info(
            "INT8 sensitivity: %d of %d layer(s) above %.3g stay float: %s",
            len(keep),
            len(errors),
            s.int8_sensitivity_threshold,
            keep,
        )
        return keep

    def set_profiler(self, profiler: object) -> None:
        self._profiler = profiler
        if self.model is not None:
            self.model.set_profiler(profiler)

    def clone(self) -> Any:
        if self.model is not None:
            return self.model.clone()
        return self

    def summary(self) -> str:
        if self.model is None:
            return (
                f"calibrating (INT8, {self.settings.calib_algorithm}): "
                f"{self.recorder.inputs_seen}/{self.settings.calib_num_inputs} inputs, "
                f"native FP32 meanwhile"
            )
        return self.model.summary()
