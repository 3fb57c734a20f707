"""A fresh virtual environment holding torch and the napari-unet wheel, no extras (``tests/test_core_install.py``).

Building it takes about a minute of pip, mostly waiting on the disk, so the test session starts it in a
background process as soon as it knows an install test will run (:func:`start`) and the tests wait for it
(:func:`wait`). Run alone: ``python tests/core_venv.py WORK_DIR TORCH_VERSION``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LOG = "build.log"


def environment() -> dict[str, str]:
    """The environment for commands in the fresh venv: it keeps its compiled bytecode, so each command
    line does not recompile torch, SciPy and scikit-learn (about 9 s a call where PYTHONDONTWRITEBYTECODE is
    set, as in CI)."""
    return {key: value for key, value in os.environ.items() if key != "PYTHONDONTWRITEBYTECODE"}


def build(work: Path, torch_version: str) -> None:
    """``work/venv`` with torch ``torch_version`` and the wheel built into ``work/dist`` from a copy of the
    source (so the working tree gets no build folders)."""
    source = work / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(ROOT / name, source / name)
    shutil.copytree(ROOT / "napari_unet", source / "napari_unet", ignore=shutil.ignore_patterns("__pycache__"))
    python = work / "venv" / "bin" / "python"
    subprocess.run([sys.executable, "-m", "venv", work / "venv"], check=True)
    subprocess.run([python, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", work / "dist", source], check=True)
    (wheel,) = (work / "dist").glob("napari_unet-*.whl")
    pip = [python, "-m", "pip", "install", "--quiet", "--no-compile"]  # the first import compiles what it uses
    subprocess.run([*pip, f"torch=={torch_version}"], check=True)
    subprocess.run([*pip, wheel], check=True)


def start(work: Path, torch_version: str) -> subprocess.Popen:
    """Build in a background process; its output goes to ``work/build.log``."""
    work.mkdir(parents=True, exist_ok=True)
    with open(work / LOG, "w") as log:
        command = [sys.executable, __file__, str(work), torch_version]
        return subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=environment())


def wait(work: Path, process: subprocess.Popen, timeout: float = 900) -> tuple[Path, Path]:
    """``(bin folder, wheel)`` once the build has ended; RuntimeError with the log's end if it failed."""
    if process.wait(timeout=timeout) != 0:
        raise RuntimeError(f"building the core venv failed:\n{(work / LOG).read_text()[-3000:]}")
    (wheel,) = (work / "dist").glob("napari_unet-*.whl")
    return work / "venv" / "bin", wheel


if __name__ == "__main__":
    build(Path(sys.argv[1]), sys.argv[2])
