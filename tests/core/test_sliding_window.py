"""The sliding window on its own: any callable, tiles fitted to the image, blending device chosen or given."""

import numpy as np
import pytest
import torch

from napari_unet.core.infer.sliding_window import blending_device, sliding_window
from napari_unet.core.infer.tiling import fitted_tile, tile_starts


def test_a_plain_callable_is_blended_back_to_the_image(rng):
    image = rng.random((2, 70, 53)).astype(np.float32)
    calls = []

    def doubled(tiles: torch.Tensor) -> torch.Tensor:  # (B, 2, 32, 32) -> (B, 2, 32, 32)
        calls.append(tuple(tiles.shape))
        return tiles * 2

    result = sliding_window(doubled, image, (32, 32), overlap=0.25, multiple=(8, 8), outputs=2, batch_size=3)
    np.testing.assert_allclose(result.numpy(), image * 2, rtol=1e-5)
    assert calls[0] == (3, 2, 32, 32) and all(shape[1:] == (2, 32, 32) for shape in calls)


def test_progress_counts_tiles_and_the_output_device_is_honoured(rng):
    image = rng.random((1, 40, 40)).astype(np.float32)
    seen = []
    result = sliding_window(
        lambda tiles: tiles,
        image,
        (16, 16),
        overlap=0.0,
        multiple=(1, 1),
        outputs=1,
        batch_size=4,
        output_device="cpu",
        progress=lambda done, total: seen.append((done, total)),
    )
    assert result.device == torch.device("cpu")
    assert seen == [(4, 9), (8, 9), (9, 9)]


def test_accumulators_stay_on_the_host_for_the_cpu():
    assert blending_device(torch.device("cpu"), 3, (10_000, 10_000)) == torch.device("cpu")


@pytest.mark.parametrize(
    ("size", "tile", "overlap", "multiple"),
    [(3072, 1024, 0.25, 8), (3072, 512, 0.25, 8), (1000, 96, 0.5, 4), (65, 64, 0.25, 8), (5, 64, 0.25, 8)],
)
def test_fitted_tiles_are_no_more_and_no_larger_and_still_cover(size, tile, overlap, multiple):
    fitted = fitted_tile(size, tile, overlap, multiple)
    starts = tile_starts(size, fitted, overlap, multiple)
    assert fitted <= tile and len(starts) == len(tile_starts(size, tile, overlap, multiple))
    covered = np.zeros(size, bool)
    for start in starts:
        covered[start : start + fitted] = True
    assert covered.all()


def test_fitting_saves_most_where_the_tiles_barely_overflow():
    assert fitted_tile(3072, 1024, 0.25, 8) == 952  # four windows either way
    assert fitted_tile(1024, 1024, 0.25, 8) == 1024  # one window: the whole axis
