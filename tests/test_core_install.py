"""``pip install napari-unet`` alone is the engine: in a fresh virtual environment with no GUI
stack, the wheel installs, the command line trains and predicts (TIFF and OME-Zarr), and the napari
manifest still ships in the wheel for napari to find once the ``[napari]`` extra is there.

It builds the wheel from a copy of the source (so the working tree gets no build folders) and
installs it with its dependencies from the package index, torch pinned to the version running
the tests (the CPU wheel in CI). About 1.5–2 minutes on 2 cores.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch
from npe2 import PluginManifest

ROOT = Path(__file__).resolve().parents[1]
GUI_MODULES = ("napari", "magicgui", "qtpy", "superqt", "PyQt5", "PyQt6", "PySide2", "PySide6")
pytestmark = pytest.mark.install


def _run(*command, cwd: Path | None = None, check: bool = True) -> subprocess.CompletedProcess:
    """Run ``command``; the fresh venv keeps its compiled bytecode, so each command line does not recompile
    torch, SciPy and scikit-learn (about 9 s a call where PYTHONDONTWRITEBYTECODE is set, as in CI)."""
    env = {key: value for key, value in os.environ.items() if key != "PYTHONDONTWRITEBYTECODE"}
    result = subprocess.run([str(c) for c in command], capture_output=True, text=True, cwd=cwd, env=env, timeout=900)
    if check and result.returncode != 0:
        pytest.fail(f"{' '.join(map(str, command))} failed ({result.returncode}):\n{result.stderr[-3000:]}")
    return result


@pytest.fixture(scope="module")
def core_venv(tmp_path_factory) -> tuple[Path, Path]:
    """``(bin folder, wheel)`` of a fresh venv holding torch and the napari-unet wheel, no extras."""
    work = tmp_path_factory.mktemp("core_install")
    source = work / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(ROOT / name, source / name)
    shutil.copytree(ROOT / "napari_unet", source / "napari_unet", ignore=shutil.ignore_patterns("__pycache__"))
    venv = work / "venv"
    _run(sys.executable, "-m", "venv", venv)
    pip = [venv / "bin" / "python", "-m", "pip", "install", "--quiet", "--no-compile"]  # the first import compiles
    _run(venv / "bin" / "python", "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", work / "dist", source)
    (wheel,) = (work / "dist").glob("napari_unet-*.whl")
    _run(*pip, f"torch=={torch.__version__.split('+')[0]}")
    _run(*pip, wheel)
    return venv / "bin", wheel


def test_core_installs_without_a_gui_stack(core_venv):
    bin_dir, _ = core_venv
    code = (
        "import importlib.util, json, napari_unet, napari_unet.cli\n"
        "napari_unet.train, napari_unet.predict_to_zarr  # the public API resolves\n"
        f"print(json.dumps([m for m in {GUI_MODULES!r} if importlib.util.find_spec(m) is not None]))"
    )
    found = json.loads(_run(bin_dir / "python", "-c", code).stdout)
    assert found == []


def test_core_cli_trains_and_predicts(core_venv, tmp_path):
    bin_dir, _ = core_venv
    rng = np.random.default_rng(0)
    image = rng.normal(100, 10, (64, 64)).astype(np.float32)
    image[16:40, 16:40] += 80
    strokes = np.zeros((64, 64), np.uint8)
    strokes[2:6, 2:60], strokes[24:30, 20:36] = 1, 2
    tifffile.imwrite(tmp_path / "image.tif", image)
    tifffile.imwrite(tmp_path / "strokes.tif", strokes)
    cli = bin_dir / "napari-unet"
    _run(
        cli,
        "train",
        "--image",
        "image.tif",
        "--labels",
        "strokes.tif",
        "--model",
        "model",
        "--steps",
        "3",
        cwd=tmp_path,
    )
    _run(cli, "predict", "--model", "model", "--image", "image.tif", "--out", "masks.tif", cwd=tmp_path)
    _run(cli, "predict", "--model", "model", "--image", "image.tif", "--out", "masks.zarr", cwd=tmp_path)
    masks = tifffile.imread(tmp_path / "masks.tif")
    assert masks.shape == image.shape and set(np.unique(masks)) <= {1, 2}
    assert (masks[24:30, 20:36] == 2).mean() > 0.5 and (masks[2:6, 2:60] == 1).mean() > 0.5
    assert (tmp_path / "masks.zarr" / "0").is_dir()


def test_scheduler_without_distributed_is_one_line(core_venv, tmp_path):
    bin_dir, _ = core_venv
    tifffile.imwrite(tmp_path / "image.tif", np.zeros((32, 32), np.uint8))
    result = _run(
        bin_dir / "napari-unet",
        *("predict", "--model", "nuclei-2d", "--image", "image.tif", "--out", "masks.zarr"),
        *("--scheduler", "tcp://127.0.0.1:1"),
        cwd=tmp_path,
        check=False,
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "napari-unet[distributed]" in result.stderr
    assert not (tmp_path / "masks.zarr").exists()


def test_wheel_carries_the_napari_manifest(core_venv, tmp_path):
    _, wheel = core_venv
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        entry_points = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
        assert "napari-unet = napari_unet:napari.yaml" in archive.read(entry_points).decode()
        (tmp_path / "napari.yaml").write_bytes(archive.read("napari_unet/napari.yaml"))
    manifest = PluginManifest.from_file(tmp_path / "napari.yaml")
    assert manifest.name == "napari-unet"
    for command in manifest.contributions.commands:
        module = command.python_name.split(":")[0]
        assert f"{module.replace('.', '/')}.py" in names, command.python_name
