"""The answer to one request, shared by the real and the fake backends (standard library only)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Suggestion:
    """A suggested command, its n-best alternatives (command, score), danger warnings and provenance, the
    calibrated probability that the model's answer is right (None when unknown) and notes about it
    ("low confidence ...")."""

    command: str
    alternatives: list[tuple[str, float]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    source: str = "model"  # "model" | "user" (a learnt pair matched)
    timing_ms: float = 0.0
    confidence: float | None = None
    notes: list[str] = field(default_factory=list)
