"""The optim cache (``use_static``): built models saved as plans and reloaded without building.

The key covers the program bytes, **the weights' bytes**, every setting that changes the build
(the dynamic shape ranges, and the shape file's bytes with tuned dynamic shapes; for INT8 the
calibration settings and the calibration table's bytes), and the fingerprint (versions,
device). A plan whose recorded input ranges do not cover the config's is rebuilt. Entries are
written atomically; one that fails to load (truncated, altered, another device or version) is
rebuilt and replaced, never trusted.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch

from fluidrt.engine.fingerprint import fingerprint
from fluidrt.engine.plan import write_atomic
from fluidrt.engine.shape_range import ShapeRange
from fluidrt.errors import PlanError
from fluidrt.settings import PrecisionType

if TYPE_CHECKING:
    from fluidrt.engine.model import PartitionedModel
    from fluidrt.inference import Config

log = logging.getLogger(__name__)

_BUILD_SETTINGS = (
    "ir_optim",
    "workspace_size",
    "max_batch_size",
    "min_subgraph_size",
    "precision",
    "use_calib_mode",
    "disabled_ops",
    "min_input_shape",
    "max_input_shape",
    "opt_input_shape",
)
# INT8 with use_calib_mode: a plan built from one calibration is never reused for another
_CALIB_SETTINGS = (
    "calib_algorithm",
    "calib_percentile",
    "calib_num_inputs",
    "calib_min_inputs",
    "int8_sensitivity_threshold",
    "int8_sensitivity_inputs",
)


def cache_key(
    files: list[str], settings: object, device: torch.device, calib_files: Sequence[str] = ()
) -> str:
    """``calib_files``: the calibration table and its layer decisions, when they exist."""
    h = hashlib.sha256()
    for path in files:
        h.update(os.path.basename(path).encode() + b"\0")
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 22), b""):
                h.update(chunk)
    cfg = {k: getattr(settings, k) for k in _BUILD_SETTINGS}
    cfg["precision"] = int(cfg["precision"])
    if settings.precision == PrecisionType.Int8 and settings.use_calib_mode:
        cfg["calibration"] = {k: getattr(settings, k) for k in _CALIB_SETTINGS}
    h.update(json.dumps(cfg, sort_keys=True).encode())
    for path in calib_files:
        with open(path, "rb") as f:
            h.update(b"calibration\0" + os.path.basename(path).encode() + b"\0" + f.read())
    if settings.tuned_dynamic_shape and settings.shape_range_info_path:
        with open(settings.shape_range_info_path, "rb") as f:
            h.update(b"shape_range_info\0" + f.read())
    h.update(json.dumps(fingerprint(device, settings), sort_keys=True).encode())
    return h.hexdigest()


class PlanCache:
    def __init__(self, path: str, device: torch.device) -> None:
        self.path = path
        self.device = device

    @classmethod
    def for_config(cls, config: Config, device: torch.device) -> PlanCache:
        from fluidrt.frontends.paddle.loader import resolve_model_files

        model = config.prog_file()
        if model.endswith(".onnx"):
            files = [model]
        else:
            prog, params = resolve_model_files(model, config.params_file() or None)
            files = [prog] + ([params] if params else [])
        s = config.settings
        directory = s.optim_cache_dir or os.path.join(
            os.path.dirname(os.path.abspath(files[0])), "_opt_cache"
        )
        calib: list[str] = []
        if s.precision == PrecisionType.Int8 and s.use_calib_mode:
            from fluidrt.quant.flow import calibration_files

            calib = calibration_files(config)
        key = cache_key(files, s, device, calib)
        return cls(os.path.join(directory, f"fluidrt_{key[:40]}.plan"), device)

    def load(self, ranges: dict[str, ShapeRange] | None = None) -> PartitionedModel | None:
        """The cached model, or None when absent, unusable or not covering ``ranges``."""
        from fluidrt.engine.model import PartitionedModel

        if not os.path.exists(self.path):
            return None
        try:
            with open(self.path, "rb") as f:
                model = PartitionedModel.deserialize(f.read(), self.device, self.path)
        except PlanError as exc:
            log.warning("optim cache entry unusable, rebuilding: %s", exc)
            return None
        names = {v.name for v in model.inputs}
        for name, want in (ranges or {}).items():
            have = model.ranges.get(name)
            if name in names and (have is None or not have.covers(want)):
                log.warning(
                    "optim cache entry %s was built for input %r range %s, which does not cover "
                    "%s; rebuilding",
                    self.path,
                    name,
                    have,
                    want,
                )
                return None
        log.info("loaded engines from optim cache %s", self.path)
        return model

    def save(self, model: PartitionedModel) -> None:
        write_atomic(self.path, model.serialize())
        log.info("saved engines to optim cache %s", self.path)
