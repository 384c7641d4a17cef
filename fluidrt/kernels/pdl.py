"""Programmatic dependent launch (PDL) for fluidrt's Triton kernels.

On Hopper and later GPUs a kernel launched with PDL may be scheduled while the kernel before it
on the stream is still running. Every fluidrt kernel launched that way first waits
(``griddepcontrol.wait``: the previous kernel has finished and its writes are visible), touches
memory only after that, and then signals at once (``griddepcontrol.launch_dependents``) that the
kernel after it may be scheduled. Inside an engine's CUDA graph consecutive layers then overlap
their launch and ramp-up with the tail of the layer before, which matters where a layer takes a
few microseconds (batch 1). Correctness does not depend on the neighbours: the wait comes before
any load or store, so a kernel never reads an input early or overwrites a buffer that the
previous kernel still reads (the memory planner reuses buffers), whatever that kernel was.

``FLUIDRT_PDL=0`` turns it off. Kernels take ``PDL`` as a constexpr and call
``wait_then_release(PDL)`` first; launchers pass ``**launch_options(device)``.
"""

from __future__ import annotations

import functools
import os

import torch
import triton
import triton.language as tl

try:
    from triton.language.extra.cuda import gdc_launch_dependents, gdc_wait

    _HAVE_GDC = True
except ImportError:  # an older Triton: no PDL
    _HAVE_GDC = False


if _HAVE_GDC:

    @triton.jit
    def wait_then_release(PDL: tl.constexpr):
        """Wait for the previous kernel, then let the next one be scheduled (PDL only)."""
        if PDL:
            gdc_wait()
            gdc_launch_dependents()

else:

    @triton.jit
    def wait_then_release(PDL: tl.constexpr):
        """No PDL in this Triton: nothing to wait for."""
        pass


@functools.cache
def _supported(index: int) -> bool:
    # NVIDIA sm90 and later (ROCm reports its own architecture numbers through the same call)
    return torch.version.hip is None and torch.cuda.get_device_capability(index)[0] >= 9


def enabled(device: torch.device) -> bool:
    """Whether kernels on ``device`` are launched with PDL."""
    if device.type != "cuda" or not _HAVE_GDC or os.environ.get("FLUIDRT_PDL", "1") == "0":
        return False
    if os.environ.get("TRITON_INTERPRET", "0") == "1":
        return False
    index = device.index if device.index is not None else torch.cuda.current_device()
    return _supported(index)


def launch_options(device: torch.device) -> dict:
    """Keyword arguments for a kernel launch: the ``PDL`` constexpr and Triton's launch flag."""
    if enabled(device):
        return {"PDL": True, "launch_pdl": True}
    return {"PDL": False}
