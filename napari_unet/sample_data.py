"""The bundled sample data: synthetic nuclei in 2D and 3D, with strokes and dense truth (no downloads)."""

from __future__ import annotations

from functools import lru_cache

from .core.synthetic import SyntheticSample, synthetic_nuclei

SAMPLES = {
    2: {"shape": (512, 512), "spacing": (1.0, 1.0), "seed": 0},
    3: {"shape": (48, 128, 128), "spacing": (2.0, 1.0, 1.0), "seed": 0},
}


@lru_cache(maxsize=2)
def nuclei_sample(dim: int = 2) -> SyntheticSample:
    """The 2D (512×512) or 3D (48×128×128, Z twice as coarse) sample; arrays are shared, copy before editing."""
    settings = SAMPLES[dim]
    return synthetic_nuclei(settings["shape"], spacing=settings["spacing"], seed=settings["seed"])
