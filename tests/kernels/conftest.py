"""Kernel tests run on CUDA, or on CPU through Triton's interpreter (TRITON_INTERPRET=1).

Without CUDA this sets TRITON_INTERPRET=1 before the kernel modules are imported (Triton reads
it when ``@triton.jit`` runs). Triton 3.6's interpreter turns loop bounds into Python ints with
``int(array)`` on one-element arrays, which numpy >= 2.3 refuses ("only 0-dimensional arrays can
be converted"); the shim below makes it use ``.item()`` as newer Triton does.
"""

from __future__ import annotations

import os

import pytest
import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")


def _patch_interpreter_index() -> None:
    from triton.runtime import interpreter

    original = interpreter._patch_lang_tensor

    def patched(tensor: object, scope: object) -> None:
        original(tensor, scope)
        scope.set_attr(tensor, "__index__", lambda self: int(self.handle.data.item()))

    interpreter._patch_lang_tensor = patched


try:
    import triton  # noqa: F401
except ImportError:  # no Triton: every kernel test skips (see collect_ignore_glob)
    HAVE_TRITON = False
else:
    HAVE_TRITON = True
collect_ignore_glob = [] if HAVE_TRITON else ["test_*.py"]

if HAVE_TRITON and os.environ.get("TRITON_INTERPRET") == "1":
    _patch_interpreter_index()


@pytest.fixture(scope="session")
def device() -> str:
    """'cuda', or 'cpu' when the kernels run in the interpreter (else the test is skipped)."""
    if torch.cuda.is_available():
        return "cuda"
    from triton.runtime.interpreter import InterpretedFunction

    from fluidrt.kernels.int8_conv import _conv_int8_kernel

    if not isinstance(_conv_int8_kernel, InterpretedFunction):
        pytest.skip("Triton kernels were imported before TRITON_INTERPRET=1 was set")
    return "cpu"
