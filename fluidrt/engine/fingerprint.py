"""What a plan was built for: format and library versions, device and precision."""

from __future__ import annotations

import platform
from typing import Any

import torch

from fluidrt.settings import Settings

PLAN_FORMAT = 1


def device_identity(device: torch.device) -> dict[str, str]:
    """Name and capability of the device plans are specific to."""
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        return {
            "device": "cuda",
            "device_name": props.name,
            "capability": f"sm_{props.major}{props.minor}",
        }
    name = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    name = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {
        "device": "cpu",
        "device_name": name,
        "capability": torch.backends.cpu.get_cpu_capability(),
    }


def fingerprint(device: torch.device, settings: Settings) -> dict[str, Any]:
    from fluidrt import __version__

    return {
        "format": PLAN_FORMAT,
        "fluidrt": __version__,
        "torch": torch.__version__.split("+")[0],
        **device_identity(device),
        "precision": settings.precision.name,
    }


def mismatch(found: dict[str, Any], here: dict[str, Any]) -> list[str]:
    """Human-readable differences that make a plan unusable here (precision aside)."""
    keys = ("format", "fluidrt", "torch", "device", "device_name", "capability")
    return [
        f"{k}: plan has {found.get(k)!r}, this machine has {here.get(k)!r}"
        for k in keys
        if found.get(k) != here.get(k)
    ]
