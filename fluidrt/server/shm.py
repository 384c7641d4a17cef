"""Triton's system shared memory extension: named regions of POSIX shared memory objects.

A client creates a shared memory object (``shm_open(key)``, as ``tritonclient.utils.
shared_memory`` does), registers ``byte_size`` bytes of it from ``offset`` under a region name,
and then names that region in an input's or output's ``shared_memory_region`` parameter (with
``shared_memory_byte_size`` and an optional ``shared_memory_offset`` inside the region) instead of
sending the tensor: the server reads inputs from the region and writes outputs into it, so
tensors never cross the socket. POSIX shared memory objects are files under ``/dev/shm`` on
Linux; the server maps the whole object once at registration.

Inputs are read in place (a NumPy view of the mapping, no copy): the client must leave an input
region alone until it has the response, as with Triton.
"""

from __future__ import annotations

import mmap
import os
import threading
from dataclasses import dataclass

from fluidrt.server.errors import ServerError

SHM_DIR = "/dev/shm"


@dataclass
class Region:
    name: str
    key: str
    offset: int
    byte_size: int
    mapping: mmap.mmap

    def status(self) -> dict:
        return {
            "name": self.name,
            "key": self.key,
            "offset": self.offset,
            "byte_size": self.byte_size,
        }


class SystemSharedMemory:
    """The registered regions of one server (thread-safe)."""

    def __init__(self) -> None:
        self._regions: dict[str, Region] = {}
        self._lock = threading.Lock()

    def register(self, name: str, key: str, offset: int, byte_size: int) -> None:
        if not name:
            raise ServerError("INVALID_ARG", "a shared memory region needs a non-empty name")
        if not isinstance(key, str) or not key.strip("/") or "/" in key.lstrip("/"):
            raise ServerError(
                "INVALID_ARG",
                f"shared memory key {key!r} of region '{name}' is not a POSIX shared memory "
                "name (expected '/name' with no other '/')",
            )
        if not isinstance(offset, int) or not isinstance(byte_size, int):
            raise ServerError("INVALID_ARG", "'offset' and 'byte_size' must be integers")
        if offset < 0 or byte_size < 0:
            raise ServerError(
                "INVALID_ARG",
                f"shared memory region '{name}': offset {offset} and byte_size {byte_size} must "
                "be >= 0",
            )
        with self._lock:
            if name in self._regions:
                raise ServerError(
                    "ALREADY_EXISTS", f"shared memory region '{name}' already in manager"
                )
            path = os.path.join(SHM_DIR, key.lstrip("/"))
            try:
                fd = os.open(path, os.O_RDWR)
            except OSError as exc:
                raise ServerError(
                    "INVALID_ARG",
                    f"Unable to open shared memory region: '{key}' ({exc.strerror})",
                ) from None
            try:
                size = os.fstat(fd).st_size
                if offset + byte_size > size:
                    raise ServerError(
                        "INVALID_ARG",
                        f"failed to register shared memory region '{name}': offset {offset} + "
                        f"byte_size {byte_size} exceeds the size of '{key}' ({size} bytes)",
                    )
                mapping = mmap.mmap(fd, size) if size else mmap.mmap(-1, 1)
            finally:
                os.close(fd)
            self._regions[name] = Region(name, key, offset, byte_size, mapping)

    def unregister(self, name: str = "") -> None:
        """Forget ``name`` (every region when empty); an unknown name is not an error."""
        with self._lock:
            names = [name] if name else list(self._regions)
            for n in names:
                region = self._regions.pop(n, None)
                if region is not None:
                    try:
                        region.mapping.close()
                    except BufferError:  # a request still reads it: unmapped when it is done
                        pass

    def status(self, name: str = "") -> list[dict]:
        with self._lock:
            if not name:
                return [r.status() for r in self._regions.values()]
            region = self._regions.get(name)
        if region is None:
            raise ServerError("NOT_FOUND", f"Unable to find system shared memory region: '{name}'")
        return [region.status()]

    def _span(self, name: str, offset: int, byte_size: int, what: str) -> tuple[Region, int]:
        with self._lock:
            region = self._regions.get(name)
        if region is None:
            raise ServerError(
                "INVALID_ARG", f"{what}: Unable to find shared memory region: '{name}'"
            )
        if offset < 0 or byte_size < 0 or offset + byte_size > region.byte_size:
            raise ServerError(
                "INVALID_ARG",
                f"{what}: Invalid offset + byte size for shared memory region: '{name}' "
                f"(offset {offset} + {byte_size} bytes, the region has {region.byte_size})",
            )
        return region, region.offset + offset

    def view(self, name: str, offset: int, byte_size: int, what: str) -> memoryview:
        """``byte_size`` bytes at ``offset`` of region ``name``, in place."""
        region, start = self._span(name, offset, byte_size, what)
        return memoryview(region.mapping)[start : start + byte_size]

    def write(self, name: str, offset: int, byte_size: int, data: object, what: str) -> None:
        """Copy ``data`` (C-contiguous, buffer protocol) to ``offset`` of region ``name``; it must
        fit in ``byte_size``."""
        data = memoryview(data).cast("B")
        n = data.nbytes
        if n > byte_size:
            raise ServerError(
                "INVALID_ARG",
                f"{what}: shared memory size specified with the request ({byte_size} bytes) "
                f"should be at least {n} bytes to hold the results",
            )
        region, start = self._span(name, offset, byte_size, what)
        region.mapping[start : start + n] = data


def shm_params(params: dict, what: str) -> tuple[str, int, int] | None:
    """(region, offset, byte_size) from a tensor's parameters, or None without a region."""
    name = params.get("shared_memory_region")
    if name is None:
        return None
    size = params.get("shared_memory_byte_size")
    offset = params.get("shared_memory_offset", 0)
    if not isinstance(name, str) or not isinstance(size, int) or not isinstance(offset, int):
        raise ServerError(
            "INVALID_ARG",
            f"{what}: shared_memory_region must be a string, shared_memory_byte_size (required) "
            "and shared_memory_offset integers",
        )
    return name, offset, size
