"""Device and dtype choice for the torch side (training, batched eval)."""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from pathlib import Path

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


def autocast_dtype(device: torch.device, want_bf16: bool = True,
                   cpu_bf16_ok: Callable[[], bool] | None = None) -> torch.dtype | None:
    """bf16 autocast where the hardware supports it; None = full fp32.

    CUDA: bf16 (fp16 where bf16 is unsupported); MPS: bf16. On a CPU, bf16 only where it is not much
    slower than fp32 (`cpu_bf16_ok`, default `cpu_bf16_pays`): CPUs without native bf16 instructions
    emulate it 15x slower or worse, which turns an hour's training into a day's."""
    if not want_bf16:
        return None
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if device.type == "mps":
        return torch.bfloat16
    if device.type == "cpu":
        return torch.bfloat16 if (cpu_bf16_ok or cpu_bf16_pays)() else None
    return None


BF16_SLOWER_OK = 1.5
"""How much slower than fp32 bf16 may time and still be chosen: native bf16 is faster, emulated bf16 15x
slower or worse; the margin keeps the choice from flipping between resumes of a run on one machine."""


NATIVE_BF16_FLAGS = frozenset({"avx512_bf16", "amx_bf16", "bf16"})
"""CPU flags (x86 `flags`, Arm `Features` in /proc/cpuinfo) that mean bf16 arithmetic in hardware."""


def cpu_has_native_bf16(cpuinfo: str | None = None) -> bool:
    """Does this CPU list bf16 instructions? Read from /proc/cpuinfo (or the text given); False where
    the file cannot be read (not Linux), so that the speed check decides."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text(errors="replace")
        except OSError:
            return False
    flags: set[str] = set()
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            flags.update(value.split())
    return bool(flags & NATIVE_BF16_FLAGS)


@functools.lru_cache(maxsize=1)
def cpu_bf16_pays() -> bool:
    """Is bf16 autocast worth it on this CPU? Yes where the CPU has bf16 instructions; otherwise, is a
    bf16-autocast matmul step (forward and backward) within `BF16_SLOWER_OK` of fp32?

    The flags come first because a timing taken while other work shares the cores can make native bf16
    look slower than fp32. Measured once per process (best of five; under a second even where bf16 is
    emulated)."""
    if cpu_has_native_bf16():
        return True
    g = torch.Generator().manual_seed(0)
    x = torch.randn(512, 384, generator=g)
    w = torch.randn(384, 384, generator=g, requires_grad=True)

    def best(bf16: bool) -> float:
        times = []
        for _ in range(6):
            t0 = time.perf_counter()
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                (x @ w).float().sum().backward()
            times.append(time.perf_counter() - t0)
        return min(times[1:])  # the first call pays for kernel selection

    return best(True) <= BF16_SLOWER_OK * best(False)
