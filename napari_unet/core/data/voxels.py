"""Physical lengths as voxel counts on an anisotropic grid."""

from __future__ import annotations

import math
from collections.abc import Sequence


def finest_lengths(
    count: float,
    spacing: Sequence[float] | None,
    ndim: int,
    *,
    minimum: int | Sequence[int] = 1,
    round_up: bool = False,
) -> tuple[int, ...]:
    """Per axis, the voxels spanning ``count`` voxels of the finest axis (fewer along coarser
    axes): ``count * min(spacing) / spacing[axis]``, rounded (up with ``round_up``), at least
    ``minimum`` (one number, or one per axis). ``spacing`` None means isotropic ``ndim`` axes."""
    spacing = [float(s) for s in spacing] if spacing is not None else [1.0] * ndim
    minimums = [minimum] * len(spacing) if isinstance(minimum, int) else list(minimum)
    finest = min(spacing)
    rounding = math.ceil if round_up else round
    return tuple(max(int(m), int(rounding(count * finest / s))) for s, m in zip(spacing, minimums))
