"""The learning-rate schedule of a training run."""

from __future__ import annotations

import dataclasses
import math

from ..models.config import TrainConfig
from ..models.model import Model

WARMUP_STEPS = 20
FINAL_LR_FRACTION = 0.05
NEW_NETWORK_LR = 2e-3
FINE_TUNING_LR = 5e-4  # from a trained model: 2e-3 undid more of what a pretrained start knew (docs/benchmarks.md)


def with_learning_rate(settings: TrainConfig, model: Model) -> TrainConfig:
    """``settings`` with the default learning rate filled in when none was given: lower for a model that
    was trained before (a pretrained start, or a model trained on again) than for a new network."""
    if settings.learning_rate is not None:
        return settings
    trained = bool(model.config.history)
    return dataclasses.replace(settings, learning_rate=FINE_TUNING_LR if trained else NEW_NETWORK_LR)


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
