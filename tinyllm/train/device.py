"""Device and dtype choice for the torch side (training, batched eval)."""

from __future__ import annotations

import torch


def pick_device(name: str = "auto") -> torch.device:
    """'auto' picks cuda, then mps, then cpu; anything else is passed to torch.device."""
    if name != "auto":
        return torch.device(name)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def autocast_dtype(device: torch.device, want_bf16: bool = True) -> torch.dtype | None:
    """bf16 autocast where the hardware supports it (CUDA with bf16, CPU, MPS); None = full fp32."""
    if not want_bf16:
        return None
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if device.type in ("cpu", "mps"):
        return torch.bfloat16
    return None
