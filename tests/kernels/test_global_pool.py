"""Global max/average pooling kernel against torch's reductions (any pixel-uniform layout)."""

from __future__ import annotations

import pytest
import torch

from fluidrt.kernels.pool import global_pool_nhwc

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"


@pytest.mark.parametrize("shape", [(2, 40, 7, 7), (1, 300, 3, 1), (3, 8, 1, 5), (1, 16, 1, 1)])
@pytest.mark.parametrize("layout", ["channels_last", "nchw"])
@pytest.mark.parametrize("mode", ["avg", "max"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_global_pool_matches_torch(
    shape: tuple[int, ...], layout: str, mode: str, dtype: torch.dtype
) -> None:
    x = torch.randn(*shape, generator=torch.Generator().manual_seed(sum(shape))).to(DEVICE, dtype)
    if layout == "channels_last":
        x = x.contiguous(memory_format=torch.channels_last)
    got = global_pool_nhwc(x, mode)
    xd = x.double()
    ref = xd.mean(dim=(2, 3), keepdim=True) if mode == "avg" else xd.amax(dim=(2, 3), keepdim=True)
    assert got.shape == (shape[0], shape[1], 1, 1) and got.dtype == dtype
    assert got.is_contiguous(memory_format=torch.channels_last)
    tol = 2.0**-10 if dtype == torch.float16 else 1e-6
    torch.testing.assert_close(got.double(), ref, rtol=tol, atol=tol)


def test_strided_pixels_are_made_uniform_and_bad_modes_refused() -> None:
    x = torch.randn(2, 4, 6, 8, device=DEVICE)[:, :, :, :5]  # rows of 8, 5 used
    ref = x.mean(dim=(2, 3), keepdim=True)
    torch.testing.assert_close(global_pool_nhwc(x, "avg"), ref, rtol=1e-6, atol=1e-6)
    with pytest.raises(ValueError, match="mode"):
        global_pool_nhwc(x, "sum")
