"""A protobuf wire-format reader for Paddle's ProgramDesc, written from framework.proto's numbers.

Only what inference needs is decoded; unknown fields are skipped as the wire format allows. Every
message comes back as a dict keyed by field name; repeated fields are lists. Truncated or garbled
bytes raise ``ModelFormatError`` with the byte offset.
"""

from __future__ import annotations

import struct
from typing import Any

from fluidrt.errors import ModelFormatError

# field kinds
VARINT, SINT, FIXED32F, FIXED64D, BYTES, STRING, MESSAGE = range(7)

# Schema: message name -> {field number: (field name, kind, repeated, submessage name)}
SCHEMA: dict[str, dict[int, tuple[str, int, bool, str | None]]] = {
    "ProgramDesc": {
        1: ("blocks", MESSAGE, True, "BlockDesc"),
        4: ("version", MESSAGE, False, "Version"),
        5: ("op_version_map", MESSAGE, False, "OpVersionMap"),
    },
    "Version": {1: ("version", VARINT, False, None)},
    "OpVersionMap": {1: ("pair", MESSAGE, True, "OpVersionPair")},
    "OpVersionPair": {
        1: ("op_name", STRING, False, None),
        2: ("op_version", MESSAGE, False, "Version"),
    },
    "BlockDesc": {
        1: ("idx", VARINT, False, None),
        2: ("parent_idx", VARINT, False, None),
        3: ("vars", MESSAGE, True, "VarDesc"),
        4: ("ops", MESSAGE, True, "OpDesc"),
        5: ("forward_block_idx", VARINT, False, None),
    },
    "VarDesc": {
        1: ("name", STRING, False, None),
        2: ("type", MESSAGE, False, "VarType"),
        3: ("persistable", VARINT, False, None),
        4: ("need_check_feed", VARINT, False, None),
        5: ("is_parameter", VARINT, False, None),
        6: ("stop_gradient", VARINT, False, None),
    },
    "VarType": {
        1: ("type", VARINT, False, None),
        2: ("selected_rows", MESSAGE, False, "TensorDesc"),
        3: ("dense_tensor", MESSAGE, False, "LoDTensorDesc"),
        4: ("tensor_array", MESSAGE, False, "LoDTensorDesc"),
    },
    "TensorDesc": {
        1: ("data_type", VARINT, False, None),
        2: ("dims", SINT, True, None),
    },
    "LoDTensorDesc": {
        1: ("tensor", MESSAGE, False, "TensorDesc"),
        2: ("lod_level", VARINT, False, None),
    },
    "OpDesc": {
        1: ("inputs", MESSAGE, True, "OpVar"),
        2: ("outputs", MESSAGE, True, "OpVar"),
        3: ("type", STRING, False, None),
        4: ("attrs", MESSAGE, True, "OpAttr"),
        5: ("is_target", VARINT, False, None),
    },
    "OpVar": {
        1: ("parameter", STRING, False, None),
        2: ("arguments", STRING, True, None),
    },
    "OpAttr": {
        1: ("name", STRING, False, None),
        2: ("type", VARINT, False, None),
        3: ("i", SINT, False, None),
        4: ("f", FIXED32F, False, None),
        5: ("s", STRING, False, None),
        6: ("ints", SINT, True, None),
        7: ("floats", FIXED32F, True, None),
        8: ("strings", STRING, True, None),
        10: ("b", VARINT, False, None),
        11: ("bools", VARINT, True, None),
        12: ("block_idx", SINT, False, None),
        13: ("l", SINT, False, None),
        14: ("blocks_idx", SINT, True, None),
        15: ("longs", SINT, True, None),
        16: ("float64s", FIXED64D, True, None),
        17: ("var_name", STRING, False, None),
        18: ("vars_name", STRING, True, None),
        19: ("float64", FIXED64D, False, None),
        20: ("scalar", MESSAGE, False, "Scalar"),
        21: ("scalars", MESSAGE, True, "Scalar"),
    },
    "Scalar": {
        1: ("type", VARINT, False, None),
        2: ("b", VARINT, False, None),
        3: ("i", SINT, False, None),
        4: ("r", FIXED64D, False, None),
    },
}


class _Reader:
    def __init__(self, buf: bytes, source: str) -> None:
        self.buf = buf
        self.source = source

    def fail(self, pos: int, what: str) -> ModelFormatError:
        return ModelFormatError(
            f"{self.source}: not a valid Paddle program (ProgramDesc): {what} at byte {pos} "
            f"of {len(self.buf)}; the file is truncated or corrupted - export the model again"
        )

    def varint(self, pos: int, end: int) -> tuple[int, int]:
        result = shift = 0
        while True:
            if pos >= end:
                raise self.fail(pos, "varint runs past the end")
            b = self.buf[pos]
            pos += 1
            result |= (b & 0x7F) << shift
            if not b & 0x80:
                return result, pos
            shift += 7
            if shift > 70:
                raise self.fail(pos, "varint longer than 10 bytes")

    def message(self, name: str, pos: int, end: int) -> dict[str, Any]:
        fields = SCHEMA[name]
        out: dict[str, Any] = {f[0]: [] for f in fields.values() if f[2]}
        while pos < end:
            key, pos = self.varint(pos, end)
            number, wire = key >> 3, key & 7
            if number == 0:
                raise self.fail(pos, "field number 0")
            spec = fields.get(number)
            if wire == 0:
                raw, pos = self.varint(pos, end)
                if spec:
                    self._store(out, spec, self._scalar(spec[1], raw))
            elif wire == 1:
                if pos + 8 > end:
                    raise self.fail(pos, "fixed64 runs past the end")
                if spec:
                    self._store(out, spec, struct.unpack_from("<d", self.buf, pos)[0])
                pos += 8
            elif wire == 5:
                if pos + 4 > end:
                    raise self.fail(pos, "fixed32 runs past the end")
                if spec:
                    self._store(out, spec, struct.unpack_from("<f", self.buf, pos)[0])
                pos += 4
            elif wire == 2:
                size, pos = self.varint(pos, end)
                if pos + size > end:
                    raise self.fail(pos, f"length-delimited field {number} of {name} overruns")
                if spec:
                    self._length_delimited(out, spec, pos, pos + size)
                pos += size
            else:
                raise self.fail(pos, f"unsupported wire type {wire} (field {number} of {name})")
        if pos != end:
            raise self.fail(pos, f"message {name} overruns its length")
        return out

    @staticmethod
    def _scalar(kind: int, raw: int) -> int | bool:
        if kind == SINT and raw >= 1 << 63:  # int32/int64 negatives are 10-byte two's complement
            return raw - (1 << 64)
        return raw

    @staticmethod
    def _store(out: dict[str, Any], spec: tuple, value: Any) -> None:
        if spec[2]:
            out[spec[0]].append(value)
        else:
            out[spec[0]] = value

    def _length_delimited(self, out: dict[str, Any], spec: tuple, pos: int, end: int) -> None:
        name, kind, repeated, sub = spec
        if kind == MESSAGE:
            self._store(out, spec, self.message(sub, pos, end))
        elif kind == STRING:
            try:
                self._store(out, spec, self.buf[pos:end].decode("utf-8"))
            except UnicodeDecodeError:
                raise self.fail(pos, f"field {name!r} is not UTF-8 text") from None
        elif kind == BYTES:
            self._store(out, spec, self.buf[pos:end])
        elif repeated:  # packed repeated scalars
            if kind == FIXED32F:
                if (end - pos) % 4:
                    raise self.fail(pos, f"packed floats of {name!r} have a ragged length")
                out[name].extend(struct.unpack_from(f"<{(end - pos) // 4}f", self.buf, pos))
            elif kind == FIXED64D:
                if (end - pos) % 8:
                    raise self.fail(pos, f"packed doubles of {name!r} have a ragged length")
                out[name].extend(struct.unpack_from(f"<{(end - pos) // 8}d", self.buf, pos))
            else:
                while pos < end:
                    raw, pos = self.varint(pos, end)
                    out[name].append(self._scalar(kind, raw))
        else:
            raise self.fail(pos, f"field {name!r} should not be length-delimited")


def parse_message(name: str, data: bytes, source: str = "<bytes>") -> dict[str, Any]:
    """Decode ``data`` as protobuf message ``name`` of the schema above."""
    return _Reader(data, source).message(name, 0, len(data))


def parse_program_desc(data: bytes, source: str = "<bytes>") -> dict[str, Any]:
    if not data:
        raise ModelFormatError(f"{source}: the model file is empty")
    prog = parse_message("ProgramDesc", data, source)
    if not prog["blocks"]:
        raise ModelFormatError(f"{source}: the program has no blocks; is this a Paddle model?")
    return prog
