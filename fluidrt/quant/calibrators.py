"""Activation range calibrators: min-max, percentile and entropy (TensorRT EntropyCalibration2).

Each calibrator sees every batch of every recorded tensor (``observe``) and then answers the
tensor's clipping threshold ``amax`` (the int8 scale is ``amax / 127``). Histograms are of |x|
over [0, range] in ``BINS`` bins; when a batch exceeds the range, the range grows to the new
maximum and the existing counts are re-binned (linear within each old bin), so one pass over the
data suffices.
"""

from __future__ import annotations

import numpy as np
import torch

from fluidrt.errors import ConfigError

BINS = 2048
QUANT_LEVELS = 128  # |q| in 0..127: the entropy search merges bins into 128 levels
ALGORITHMS = ("entropy", "minmax", "percentile")


class _Histogram:
    def __init__(self) -> None:
        self.counts = np.zeros(BINS, dtype=np.float64)
        self.range = 0.0

    def add(self, x: torch.Tensor) -> None:
        a = x.detach().float().abs().flatten()
        top = float(a.max()) if a.numel() else 0.0
        if top > self.range:
            self._grow(top)
        if self.range == 0.0:
            self.counts[0] += a.numel()
            return
        h = torch.histc(a.cpu(), bins=BINS, min=0.0, max=self.range)
        self.counts += h.double().numpy()

    def _grow(self, top: float) -> None:
        if self.range > 0.0 and self.counts.sum() > 0:
            old_edges = np.linspace(0.0, self.range, BINS + 1)
            cdf = np.concatenate([[0.0], np.cumsum(self.counts)])
            new_edges = np.linspace(0.0, top, BINS + 1)
            self.counts = np.diff(np.interp(new_edges, old_edges, cdf))
        elif self.range == 0.0 and self.counts.sum() > 0:
            zeros = self.counts.sum()
            self.counts = np.zeros(BINS)
            self.counts[0] = zeros
        self.range = top

    @property
    def width(self) -> float:
        return self.range / BINS


class Calibrator:
    """Collects per-tensor statistics; ``amax(name)`` gives the threshold."""

    algorithm = ""

    def __init__(self) -> None:
        self.batches = 0

    def observe(self, name: str, x: torch.Tensor) -> None:
        raise NotImplementedError

    def amax(self, name: str) -> float:
        raise NotImplementedError

    def names(self) -> list[str]:
        raise NotImplementedError

    def scales(self) -> dict[str, float]:
        """name -> float32 scale amax / 127 (a tensor that was all zeros gets scale 1/127)."""
        out = {}
        for n in self.names():
            amax = self.amax(n)
            out[n] = float(np.float32((amax if amax > 0 else 1.0) / 127.0))
        return out


class MinMaxCalibrator(Calibrator):
    """amax = the largest |x| seen."""

    algorithm = "minmax"

    def __init__(self) -> None:
        super().__init__()
        self._max: dict[str, float] = {}

    def observe(self, name: str, x: torch.Tensor) -> None:
        top = float(x.detach().abs().max()) if x.numel() else 0.0
        self._max[name] = max(self._max.get(name, 0.0), top)

    def amax(self, name: str) -> float:
        return self._max[name]

    def names(self) -> list[str]:
        return list(self._max)


class _HistogramCalibrator(Calibrator):
    def __init__(self) -> None:
        super().__init__()
        self._hists: dict[str, _Histogram] = {}

    def observe(self, name: str, x: torch.Tensor) -> None:
        self._hists.setdefault(name, _Histogram()).add(x)

    def names(self) -> list[str]:
        return list(self._hists)


class PercentileCalibrator(_HistogramCalibrator):
    """amax = the ``percentile``-th percentile of |x| (99.99 by default)."""

    algorithm = "percentile"

    def __init__(self, percentile: float = 99.99) -> None:
        super().__init__()
        if not 0.0 < percentile <= 100.0:
            raise ConfigError(
                f"percentile calibrator: need 0 < percentile <= 100, got {percentile}"
            )
        self.percentile = float(percentile)

    def amax(self, name: str) -> float:
        h = self._hists[name]
        total = h.counts.sum()
        if total == 0 or h.range == 0.0:
            return 0.0
        cdf = np.cumsum(h.counts) / total
        i = int(np.searchsorted(cdf, self.percentile / 100.0))
        return float(min(i + 1, BINS) * h.width)


class EntropyCalibrator(_HistogramCalibrator):
    """amax minimizing KL(P || Q) between the clipped reference distribution P and its 128-level
    quantization Q, over thresholds from 128 to 2048 bins (TensorRT's EntropyCalibration2)."""

    algorithm = "entropy"

    def amax(self, name: str) -> float:
        h = self._hists[name]
        if h.counts.sum() == 0 or h.range == 0.0:
            return 0.0
        i = optimal_bins(h.counts)
        return float(i * h.width)


def _kl(p: np.ndarray, q: np.ndarray) -> float:
    """KL(p || q) of two unnormalized histograms; bins empty in p contribute nothing; p > 0 where
    q = 0 is infinitely bad."""
    ps, qs = p.sum(), q.sum()
    if ps == 0 or qs == 0:
        return float("inf")
    p = p / ps
    q = q / qs
    mask = p > 0
    if np.any(q[mask] == 0):
        return float("inf")
    return float(np.sum(p[mask] * np.log(p[mask] / q[mask])))


def optimal_bins(counts: np.ndarray, levels: int = QUANT_LEVELS) -> int:
    """The number of leading histogram bins (the threshold) that minimizes the KL divergence."""
    n = len(counts)
    # bin 0 holds the exact zeros of ReLU outputs, often half the mass: it would dominate the
    # divergence while any threshold represents it exactly, so it stays out of the search
    counts = counts.astype(np.float64).copy()
    counts[0] = 0.0
    nonzero = np.nonzero(counts)[0]
    if len(nonzero) == 0:
        return n
    last = int(nonzero[-1]) + 1
    if last <= levels:
        return max(last, 1)
    best_i, best_kl = n, float("inf")
    tail = np.cumsum(counts[::-1])[::-1]  # tail[i] = sum(counts[i:])
    for i in range(levels, n + 1):
        p = counts[:i].copy()
        if i < n:
            p[i - 1] += tail[i]
        # merge the i bins into `levels` groups, then spread each group's mass over its
        # nonzero bins
        edges = np.linspace(0, i, levels + 1).astype(np.int64)
        src = counts[:i]
        group_sum = np.add.reduceat(src, edges[:-1])
        nz = (src != 0).astype(np.float64)
        group_nz = np.add.reduceat(nz, edges[:-1])
        per = np.divide(group_sum, group_nz, out=np.zeros_like(group_sum), where=group_nz > 0)
        q = np.repeat(per, np.diff(edges)) * nz
        kl = _kl(p, q)
        if kl < best_kl:
            best_kl, best_i = kl, i
    return best_i


def make_calibrator(algorithm: str, percentile: float = 99.99) -> Calibrator:
    if algorithm == "entropy":
        return EntropyCalibrator()
    if algorithm == "minmax":
        return MinMaxCalibrator()
    if algorithm == "percentile":
        return PercentileCalibrator(percentile)
    raise ConfigError(f"unknown calibration algorithm {algorithm!r}; expected one of {ALGORITHMS}")
