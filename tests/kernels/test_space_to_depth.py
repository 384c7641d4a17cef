"""Space-to-depth folding of strided few-channel convolutions, against torch's convolution."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from fluidrt.kernels.space_to_depth import (
    CHANNEL_ALIGN,
    fold_weight,
    folded_shape,
    space_to_depth,
)

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"

# (C, H, W, K, kernel, stride, padding): the ResNet, Inception and MobileNet stems, odd sizes,
# a stride that does not divide the kernel, unequal strides and paddings, padding past a tap
CASES = [
    (3, 32, 32, 16, (7, 7), (2, 2), (3, 3)),
    (3, 33, 29, 8, (3, 3), (2, 2), (0, 0)),
    (3, 20, 20, 8, (3, 3), (2, 2), (1, 1)),
    (1, 17, 19, 4, (5, 3), (3, 2), (2, 1)),
    (4, 16, 16, 8, (4, 4), (4, 4), (0, 0)),
    (2, 15, 18, 8, (3, 5), (2, 3), (1, 2)),
]


@pytest.mark.parametrize("c, h, w, k, kernel, stride, padding", CASES)
@pytest.mark.parametrize("src_dtype", [torch.float32, torch.float16])
def test_folded_convolution_equals_the_strided_one(
    c: int,
    h: int,
    w: int,
    k: int,
    kernel: tuple[int, int],
    stride: tuple[int, int],
    padding: tuple[int, int],
    src_dtype: torch.dtype,
) -> None:
    gen = torch.Generator().manual_seed(c * h + w)
    x = torch.randn(2, c, h, w, generator=gen).to(DEVICE, src_dtype)
    wt = torch.randn(k, c, *kernel, generator=gen, dtype=torch.float64)
    y = space_to_depth(x, kernel, stride, padding, out_dtype=torch.float32)
    f = folded_shape(c, h, w, kernel, stride, padding)
    assert tuple(y.shape) == (2, f.channels, f.height, f.width)
    assert y.is_contiguous(memory_format=torch.channels_last)
    assert f.channels % CHANNEL_ALIGN == 0
    # the kernel moves values without arithmetic: compare the convolutions in float64
    ref = F.conv2d(x.double().cpu(), wt, stride=stride, padding=padding)
    got = F.conv2d(y.double().cpu(), fold_weight(wt, stride))
    assert got.shape == ref.shape
    torch.testing.assert_close(got, ref, rtol=1e-12, atol=1e-10)


def test_padding_channels_are_zero_and_out_is_written_in_place() -> None:
    x = torch.randn(1, 3, 10, 10, device=DEVICE)
    f = folded_shape(3, 10, 10, 7, 2, 3)
    out = torch.full((1, f.channels, f.height, f.width), 7.0, dtype=torch.float16, device=DEVICE)
    out = out.contiguous(memory_format=torch.channels_last)
    got = space_to_depth(x, 7, 2, 3, out=out)
    assert got.data_ptr() == out.data_ptr()
    assert (out[:, 12:] == 0).all()


def test_a_wrong_out_buffer_is_refused() -> None:
    x = torch.randn(1, 3, 10, 10, device=DEVICE)
    with pytest.raises(ValueError, match="channels-last"):
        space_to_depth(x, 7, 2, 3, out=torch.empty(1, 16, 8, 8, device=DEVICE))


def test_a_kernel_larger_than_the_input_is_refused() -> None:
    with pytest.raises(ValueError, match="larger than input"):
        folded_shape(3, 4, 4, 7, 2, 0)
