"""Calibration tables: per-tensor int8 scales as text, in TensorRT's layout.

    fluidrt-calibration 0.1.0 entropy <model key>
    conv1.out: 3c010a14
    ...

Each line after the header is a tensor name and its float32 scale (amax / 127) as the 8 hex
digits of its IEEE-754 bits. The model key covers the program, the weights and the algorithm, so
a table for another model (or made by another algorithm) is refused, never silently applied.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
from collections.abc import Iterable
from dataclasses import dataclass

from fluidrt.engine.plan import write_atomic
from fluidrt.errors import ConfigError

MAGIC = "fluidrt-calibration"


@dataclass
class CalibrationTable:
    algorithm: str
    key: str
    scales: dict[str, float]
    version: str = ""


def model_key(files: Iterable[str], algorithm: str, extra: dict | None = None) -> str:
    """sha256 over the model files' names and bytes, the algorithm and ``extra`` settings."""
    h = hashlib.sha256()
    for path in files:
        h.update(os.path.basename(path).encode() + b"\0")
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 22), b""):
                h.update(chunk)
    h.update(json.dumps({"algorithm": algorithm, **(extra or {})}, sort_keys=True).encode())
    return h.hexdigest()[:32]


def table_path(directory: str, key: str) -> str:
    return os.path.join(directory, f"trt_calib_{key}")


def scale_hex(scale: float) -> str:
    return struct.pack(">f", scale).hex()


def format_table(table: CalibrationTable) -> str:
    from fluidrt import __version__

    lines = [f"{MAGIC} {__version__} {table.algorithm} {table.key}"]
    lines += [f"{name}: {scale_hex(s)}" for name, s in sorted(table.scales.items())]
    return "\n".join(lines) + "\n"


def write_table(path: str, table: CalibrationTable) -> None:
    write_atomic(path, format_table(table).encode())


def read_table(path: str) -> CalibrationTable:
    """Parse a table; a bad header, a malformed line or a bad scale is a ConfigError."""
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except UnicodeDecodeError:
        raise ConfigError(f"calibration table {path}: not a text file") from None
    lines = text.splitlines()
    header = lines[0].split() if lines else []
    if len(header) != 4 or header[0] != MAGIC:
        raise ConfigError(
            f"calibration table {path}: bad header {lines[0] if lines else ''!r}; expected "
            f"'{MAGIC} <version> <algorithm> <model key>'. Delete the file to recalibrate."
        )
    _, version, algorithm, key = header
    scales: dict[str, float] = {}
    for lineno, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        name, sep, hexbits = line.rpartition(":")
        hexbits = hexbits.strip()
        if not sep or not name or len(hexbits) != 8:
            raise ConfigError(
                f"calibration table {path}, line {lineno}: expected 'name: <8 hex digits>', "
                f"got {line!r}"
            )
        try:
            scale = struct.unpack(">f", bytes.fromhex(hexbits))[0]
        except ValueError:
            raise ConfigError(
                f"calibration table {path}, line {lineno}: {hexbits!r} is not 8 hex digits"
            ) from None
        if not scale > 0 or scale == float("inf"):
            raise ConfigError(
                f"calibration table {path}, line {lineno}: scale of {name!r} is {scale}, "
                "expected a finite positive number"
            )
        scales[name] = scale
    return CalibrationTable(algorithm, key, scales, version)


def check_table(
    table: CalibrationTable, path: str, key: str, needed: Iterable[str], known: Iterable[str]
) -> None:
    """Refuse a table made for another model, naming unknown tensors, or missing needed ones."""
    if table.key != key:
        raise ConfigError(
            f"calibration table {path} was made for another model or algorithm (key "
            f"{table.key}, this model's is {key}); delete it or point set_optim_cache_dir "
            "elsewhere to recalibrate"
        )
    known = set(known)
    unknown = sorted(set(table.scales) - known)
    if unknown:
        raise ConfigError(
            f"calibration table {path} names {len(unknown)} tensor(s) this model does not have, "
            f"e.g. {unknown[:3]}: it belongs to another model"
        )
    missing = sorted(set(needed) - set(table.scales))
    if missing:
        raise ConfigError(
            f"calibration table {path} lacks scales for {len(missing)} tensor(s) INT8 layers "
            f"use, e.g. {missing[:3]}; it is incomplete or corrupt: delete it to recalibrate"
        )
