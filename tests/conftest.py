"""Shared fixtures: small synthetic images with strokes (generated, no downloads), and the install tests' venv
built in the background from collection on."""

from __future__ import annotations

import shutil
import tempfile
from importlib.metadata import version
from pathlib import Path

import core_venv
import numpy as np
import pytest

from napari_unet.core.data.synthetic import synthetic_nuclei

CORE_VENV = pytest.StashKey[tuple]()  # (work folder, build process) of the install tests' venv


def pytest_collection_finish(session: pytest.Session) -> None:
    """When an install test will run, start building its venv now, in the background (about a minute of
    pip that would otherwise hold up the session)."""
    if not session.config.option.collectonly and any(item.get_closest_marker("install") for item in session.items):
        _start_core_venv(session.config)


def _start_core_venv(config: pytest.Config) -> None:
    work = Path(tempfile.mkdtemp(prefix="napari-unet-core-venv-"))
    config.stash[CORE_VENV] = (work, core_venv.start(work, version("torch").split("+")[0]))


def pytest_sessionfinish(session: pytest.Session) -> None:
    work, process = session.config.stash.get(CORE_VENV, (None, None))
    if process is not None:
        process.kill()
        process.wait()
        shutil.rmtree(work, ignore_errors=True)


@pytest.fixture(scope="session")
def core_venv_build(request) -> tuple:
    """``(work folder, build process)`` of the venv the install tests use (started at collection)."""
    if CORE_VENV not in request.config.stash:
        _start_core_venv(request.config)
    return request.config.stash[CORE_VENV]


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
