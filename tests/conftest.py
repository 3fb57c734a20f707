"""Shared fixtures: small synthetic images with strokes (generated, no downloads)."""

from __future__ import annotations

import numpy as np
import pytest

from napari_unet.core.data.synthetic import synthetic_nuclei


@pytest.fixture(scope="session")
def nuclei_2d():
    """A small 2D nuclei image (128×160) with strokes and truth."""
    return synthetic_nuclei((128, 160), seed=3, stroke_fraction=0.01)


@pytest.fixture(scope="session")
def nuclei_3d():
    """A small anisotropic 3D nuclei volume (12×48×40, Z spacing 2)."""
    return synthetic_nuclei((12, 48, 40), spacing=(2.0, 1.0, 1.0), seed=4, stroke_fraction=0.01)


@pytest.fixture
def rng():
    return np.random.default_rng(0)


@pytest.fixture
def files(tmp_path, nuclei_2d):
    """A folder with the 2D sample as ``image.tif`` and its strokes as ``strokes.tif`` (command-line tests)."""
    import tifffile

    tifffile.imwrite(tmp_path / "image.tif", nuclei_2d.image)
    tifffile.imwrite(tmp_path / "strokes.tif", nuclei_2d.strokes)
    return tmp_path
