"""The learning-rate schedule of a training run."""

from __future__ import annotations

import math

from ..models.config import TrainConfig

WARMUP_STEPS = 20
FINAL_LR_FRACTION = 0.05


def learning_rate_at(settings: TrainConfig, step: int, elapsed: float) -> float:
    """Linear warm-up, then cosine decay over whichever horizon (steps or seconds) is known."""
    base = settings.learning_rate
    warm = min(1.0, (step + 1) / WARMUP_STEPS)
    fractions = []
    if settings.steps is not None:
        fractions.append(step / settings.steps)
    if settings.time_budget is not None:
        fractions.append(elapsed / settings.time_budget)
    if not fractions:
        return base * warm
    progress = min(1.0, max(fractions))
    cosine = FINAL_LR_FRACTION + (1 - FINAL_LR_FRACTION) * 0.5 * (1 + math.cos(math.pi * progress))
    return base * warm * cosine
