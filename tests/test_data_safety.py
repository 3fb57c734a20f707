"""Data safety: every CLI command against a table of adversarial cases. Each case runs in a copy of one
workspace of small files; it must exit 0 or 2 with at most one error line and no traceback, and every
file that existed before must keep its hash unless it is the output the case declares (which
napari-unet wrote, or which ``--overwrite`` names). Full and read-only disks use real tiny tmpfs
mounts where this process may mount them (root), and faked errors otherwise."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import tifffile
import zarr

from napari_unet.cli import main
from napari_unet.core.api import train
from napari_unet.core.data.synthetic import synthetic_nuclei
from napari_unet.core.io.io import write_array
from napari_unet.core.io.label_writer import write_label_image
from napari_unet.core.io.session import save_session
from napari_unet.core.models.model import Model
from napari_unet.core.models.model_sources import pretrained_path


def write_ome_image(path: Path, data: np.ndarray) -> None:
    """A one-level 2D OME-Zarr image (NGFF 0.4) in 32² chunks, as another tool writes it."""
    from ome_zarr.writer import write_multiscales_metadata

    from napari_unet.core.io.ngff import ngff_format

    group = zarr.open_group(str(path), mode="w", zarr_format=2)
    group.create_array("0", data=data, chunks=(32, 32))
    transforms = [{"type": "scale", "scale": [1.0, 1.0]}]
    axes = [{"name": n, "type": "space"} for n in "yx"]
    write_multiscales_metadata(
        group, [{"path": "0", "coordinateTransformations": transforms}], fmt=ngff_format("0.4"), axes=axes
    )


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> Path:
    """Small inputs, napari-unet outputs and other tools' files, side by side (see each case)."""
    ws = tmp_path_factory.mktemp("workspace")
    sample = synthetic_nuclei((64, 64), seed=3, stroke_fraction=0.03)
    tifffile.imwrite(ws / "image.tif", sample.image)
    tifffile.imwrite(ws / "strokes.tif", sample.strokes)
    np.save(ws / "image.npy", sample.image)
    zarr.create_array(str(ws / "plain.zarr"), data=sample.image)
    write_ome_image(ws / "ome.zarr", sample.image)
    write_label_image(sample.instances.astype(np.uint16), ws / "ome.zarr" / "labels" / "nuclei")
    labels_attrs = ws / "ome.zarr" / "labels" / "nuclei" / ".zattrs"
    attrs = json.loads(labels_attrs.read_text())
    del attrs["napari-unet"]  # as another tool would have written it
    labels_attrs.write_text(json.dumps(attrs))
    write_ome_image(ws / "damaged.zarr", sample.image)
    (ws / "damaged.zarr" / "0" / "1.0").write_bytes(b"not a chunk")
    shutil.copy(ws / "image.tif", ws / "scan_probabilities.tif")
    model = train(sample.image, sample.strokes, steps=2, base_channels=4, depth=2, seed=0, device="cpu")
    model.save(ws / "model")
    write_array(ws / "mask.tif", np.ones((64, 64), np.uint8))
    tifffile.imwrite(ws / "foreign.tif", np.zeros((64, 64), np.uint8))
    np.save(ws / "old.npy", np.zeros(3))
    (ws / "notes.zarr").mkdir()
    (ws / "notes.zarr" / "notes.txt").write_text("my notes")
    (ws / "dir.tif").mkdir()
    (ws / "dir.tif" / "keep.txt").write_text("keep")
    other = ws / "other_tool"
    other.mkdir()
    (other / "config.json").write_text(json.dumps({"tool": "another one"}))
    shutil.copy(ws / "image.tif", other / "raw.tif")
    (other / "notes.txt").write_text("notes")
    shutil.copytree(ws / "model", ws / "model_plus")
    (ws / "model_plus" / "notes.txt").write_text("kept next to the model")
    (ws / "project").mkdir()
    shutil.copy(ws / "image.tif", ws / "project" / "image.tif")
    (ws / "notes.txt").write_text("a file")
    (ws / "empty").mkdir()
    os.symlink("image.tif", ws / "link.tif")
    os.symlink(".", ws / "linkdir")
    os.link(ws / "image.tif", ws / "hard.tif")
    os.symlink("missing.tif", ws / "dangling.tif")
    save_session(ws / "session.zarr", sample.image, sample.strokes)
    with zipfile.ZipFile(ws / "foreign.zip", "w") as package:
        package.writestr("rdf.yaml", "format_version: 0.5.3\ntype: model\nname: another model\n")
    return ws


def snapshot(root: Path) -> dict[str, str]:
    """Every entry under ``root`` (links not followed): a file's hash, a link's target, or 'dir'."""
    found = {}
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            path = Path(folder) / name
            key = str(path.relative_to(root))
            if path.is_symlink():
                found[key] = f"-> {os.readlink(path)}"
            elif path.is_dir():
                found[key] = "dir"
            else:
                found[key] = hashlib.sha256(path.read_bytes()).hexdigest()
    return found


@dataclass
class Case:
    name: str
    argv: list[str]
    code: int
    message: str = ""  # a word the error line must hold (code 2)
    changes: tuple[str, ...] = ()  # paths that may change or appear (code 0): the declared output

    def __str__(self) -> str:
        return self.name


PREDICT = ["predict", "--model", "model", "--device", "cpu"]
TRAIN = ["train", "--image", "image.tif", "--labels", "strokes.tif", "--steps", "2", "--device", "cpu"]


def _predict(image: str, out: str, *extra: str) -> list[str]:
    return [*PREDICT, "--image", image, "--out", out, *extra]


CASES = [
    # predict onto its inputs, however spelled
    Case("predict --out is the --image (.tif)", _predict("image.tif", "image.tif"), 2, "input"),
    Case("predict --out is the --image (.npy)", _predict("image.npy", "image.npy"), 2, "input"),
    Case("predict --out is the --image (plain zarr)", _predict("plain.zarr", "plain.zarr"), 2, "input"),
    Case("predict --out is the --image (OME-Zarr)", _predict("ome.zarr", "ome.zarr"), 2, "input"),
    Case("predict --out is a symlink to the --image", _predict("image.tif", "link.tif"), 2, "input"),
    Case("predict --out is the --image through ..", _predict("image.tif", "empty/../image.tif"), 2, "input"),
    Case(
        "predict --out is the --image through a linked folder", _predict("image.tif", "linkdir/image.tif"), 2, "input"
    ),
    Case("predict --out is a hard link to the --image", _predict("image.tif", "hard.tif"), 2, "input"),
    Case(
        "predict --out is the --image, with --overwrite", _predict("image.tif", "image.tif", "--overwrite"), 2, "input"
    ),
    Case("predict --out inside the --model folder", _predict("image.tif", "model/masks.tif"), 2, "input"),
    Case("predict --out inside the --image OME-Zarr", _predict("ome.zarr", "ome.zarr/masks.zarr"), 2, "input"),
    Case(
        "predict --probabilities onto the --image",
        _predict("scan_probabilities.tif", "scan.tif", "--probabilities"),
        2,
        "input",
    ),
    # predict onto what napari-unet did not write
    Case("predict --out another tool's TIFF", _predict("image.tif", "foreign.tif"), 2, "--overwrite"),
    Case("predict --out an existing .npy", _predict("image.tif", "old.npy"), 2, "--overwrite"),
    Case("predict --out an OME-Zarr image", _predict("image.tif", "ome.zarr"), 2, "--overwrite"),
    Case("predict --out another tool's label image", _predict("ome.zarr", "ome.zarr/labels/nuclei"), 2, "--overwrite"),
    Case("predict --out a session", _predict("image.tif", "session.zarr"), 2, "session"),
    Case("predict --out a session's strokes", _predict("image.tif", "session.zarr/labels/strokes"), 2, "labels"),
    Case("predict --out a dangling symlink", _predict("image.tif", "dangling.tif"), 2, "--overwrite"),
    Case("predict --out a folder named .tif", _predict("image.tif", "dir.tif"), 2, "folder"),
    Case("predict --out a plain folder named .zarr", _predict("image.tif", "notes.zarr"), 2, "folder"),
    Case(
        "predict --out a plain folder named .zarr, with --overwrite",
        _predict("image.tif", "notes.zarr", "--overwrite"),
        2,
        "folder",
    ),
    Case("predict --out the model folder", _predict("image.tif", "model"), 2, "use one of"),
    Case("predict --out in a missing folder", _predict("image.tif", "missing/out.tif"), 2, "does not exist"),
    Case("predict --out a name too long for its temporary", _predict("image.tif", f"{'a' * 250}.tif"), 2, "too long"),
    Case("predict a damaged OME-Zarr chunk into .zarr", _predict("damaged.zarr", "out.zarr"), 2, "damaged"),
    Case("predict a damaged OME-Zarr chunk into .tif", _predict("damaged.zarr", "out.tif"), 2, "damaged.zarr"),
    # predict where replacing is right
    Case("predict --out a new .tif", _predict("image.tif", "out.tif"), 0, changes=("out.tif",)),
    Case("predict --out napari-unet's own mask", _predict("image.tif", "mask.tif"), 0, changes=("mask.tif",)),
    Case(
        "predict --out another tool's TIFF, with --overwrite",
        _predict("image.tif", "foreign.tif", "--overwrite"),
        0,
        changes=("foreign.tif",),
    ),
    Case(
        "predict --out a .npy, with --overwrite",
        _predict("image.tif", "old.npy", "--overwrite"),
        0,
        changes=("old.npy",),
    ),
    Case(
        "predict --out into the --image's labels",
        _predict("ome.zarr", "ome.zarr/labels/unet"),
        0,
        changes=("ome.zarr/labels/unet", "ome.zarr/labels/.zattrs"),
    ),
    Case("predict --out an empty folder", _predict("image.tif", "empty"), 2, "use one of"),
    # train
    Case("train --model a folder of another tool's config.json", [*TRAIN, "--model", "other_tool"], 2, "folder"),
    Case(
        "train --model a folder of another tool's config.json, with --overwrite",
        [*TRAIN, "--model", "other_tool", "--overwrite"],
        2,
        "folder",
    ),
    Case("train --model a napari-unet model folder holding notes", [*TRAIN, "--model", "model_plus"], 2, "notes.txt"),
    Case(
        "train --model a folder holding the --image",
        [*TRAIN[:2], "project/image.tif", *TRAIN[3:], "--model", "project"],
        2,
        "input",
    ),
    Case("train --model is the --init model", [*TRAIN, "--init", "model", "--model", "model"], 2, "input"),
    Case(
        "train --model the shipped model --init names",
        [*TRAIN, "--init", "nuclei-2d", "--model", str(pretrained_path("nuclei-2d"))],
        2,
        "input",
    ),
    Case("train --model is the --image", [*TRAIN, "--model", "image.tif", "--overwrite"], 2, "input"),
    Case(
        "train --model inside the --image OME-Zarr",
        [*TRAIN[:2], "ome.zarr", *TRAIN[3:], "--model", "ome.zarr/m"],
        2,
        "input",
    ),
    Case("train --model a file", [*TRAIN, "--model", "notes.txt"], 2, "--overwrite"),
    Case("train --model a session", [*TRAIN, "--model", "session.zarr"], 2, "session"),
    Case("train --model napari-unet's own model", [*TRAIN, "--model", "model"], 0, changes=("model",)),
    Case("train --model an empty folder", [*TRAIN, "--model", "empty"], 0, changes=("empty",)),
    # export
    Case(
        "export --out another tool's package", ["export", "--model", "model", "--out", "foreign.zip"], 2, "--overwrite"
    ),
    Case("export --out a folder named .zip", ["export", "--model", "model", "--out", "empty.zip"], 2, "folder"),
    Case("export --out the --model", ["export", "--model", "model", "--out", "model"], 2, ".zip"),
    Case(
        "export --out the --image",
        ["export", "--model", "model", "--image", "image.tif", "--out", "image.tif"],
        2,
        ".zip",
    ),
    # demo
    Case(
        "demo --out a folder holding another tool's image.tif", ["demo", "--out", "other_tool_demo"], 2, "--overwrite"
    ),
    Case("demo --out a file", ["demo", "--out", "notes.txt"], 2, "notes.txt"),
]


def _prepare(ws: Path, case: Case) -> None:
    """Per-case additions to the copied workspace."""
    if case.name.startswith("export --out a folder"):
        (ws / "empty.zip").mkdir()
        (ws / "empty.zip" / "keep.txt").write_text("keep")
    if case.name.startswith("demo --out a folder"):
        (ws / "other_tool_demo").mkdir()
        tifffile.imwrite(ws / "other_tool_demo" / "image.tif", np.zeros((4, 4), np.uint8))


def run_case(workspace: Path, tmp_path: Path, case: Case, capsys, monkeypatch) -> tuple[dict, dict, str]:
    ws = tmp_path / "ws"
    shutil.copytree(workspace, ws, symlinks=True)
    (ws / "hard.tif").unlink()
    os.link(ws / "image.tif", ws / "hard.tif")  # copytree copied the hard link as a file
    _prepare(ws, case)
    monkeypatch.chdir(ws)
    before = snapshot(ws)
    capsys.readouterr()
    code = main(case.argv)
    err = capsys.readouterr().err
    assert code == case.code, err
    return before, snapshot(ws), err


def _outside(key: str, changes: tuple[str, ...]) -> bool:
    return not any(key == c or key.startswith(f"{c}/") for c in changes)


@pytest.mark.parametrize("case", CASES, ids=str)
def test_adversarial_case(workspace, tmp_path, case, capsys, monkeypatch):
    before, after, err = run_case(workspace, tmp_path, case, capsys, monkeypatch)
    assert "Traceback" not in err
    errors = [line for line in err.replace("\r", "\n").splitlines() if "napari-unet: error" in line]
    if case.code == 2:
        assert len(errors) == 1 and case.message in errors[0], err
        assert after == before  # nothing written, nothing deleted
        return
    assert not errors
    changed = {k for k in before.keys() | after.keys() if before.get(k) != after.get(k)}
    assert changed and all(not _outside(k, case.changes) for k in changed), sorted(changed)
    assert all(k in after for k in before if _outside(k, case.changes))


@contextlib.contextmanager
def tmpfs(path: Path, size: str = "512k"):
    """A real tiny file system at ``path`` (mount needs root; the test is skipped elsewhere, where the
    faked errors of tests/core/test_ownership.py and test_faults.py stand in)."""
    path.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True)
    if done.returncode != 0:
        pytest.skip("cannot mount a tmpfs here (needs root)")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=True)


def _fill(disk: Path) -> None:
    with contextlib.suppress(OSError), open(disk / "filler", "wb", buffering=0) as handle:
        while True:
            handle.write(b"\0" * 4096)


FAULTS = [
    ("full", _predict("image.tif", "disk/out.npy"), "no space left"),
    ("full", _predict("image.tif", "disk/mask.tif"), "no space left"),
    ("full", _predict("image.tif", "disk/out.zarr"), "no space left"),
    ("full", _predict("image.tif", "disk/out.tif", "--probabilities"), "no space left"),
    ("full", [*TRAIN, "--model", "disk/model"], "kept in"),
    ("full", ["export", "--model", "model", "--out", "disk/model.zip"], "no space left"),
    ("read-only", _predict("image.tif", "disk/out.tif"), "not writable"),
    ("read-only", _predict("image.tif", "disk/mask.tif"), "not writable"),
    ("read-only", _predict("image.tif", "disk/out.zarr"), "not writable"),
    ("read-only", [*TRAIN, "--model", "disk/model"], "not writable"),
    ("read-only", ["export", "--model", "model", "--out", "disk/model.zip"], "not writable"),
]


@pytest.mark.parametrize("fault, argv, message", FAULTS, ids=lambda v: " ".join(v) if isinstance(v, list) else v)
def test_full_and_read_only_disks_are_one_line_and_keep_what_was_there(
    workspace, tmp_path, fault, argv, message, capsys, monkeypatch
):
    ws = tmp_path / "ws"
    shutil.copytree(workspace, ws, symlinks=True)
    (tmp_path / "tmp").mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))  # where a model that could not be saved goes
    monkeypatch.chdir(ws)
    with tmpfs(ws / "disk") as disk:
        write_array(disk / "mask.tif", np.ones((64, 64), np.uint8))  # an earlier result
        if fault == "full":
            _fill(disk)
        else:
            subprocess.run(["mount", "-o", "remount,ro", str(disk)], check=True)
        before = snapshot(ws)
        capsys.readouterr()
        code = main(argv)
        err = capsys.readouterr().err
        assert code == 2 and "Traceback" not in err, err
        errors = [line for line in err.replace("\r", "\n").splitlines() if "napari-unet: error" in line]
        assert len(errors) == 1 and message in errors[0], err
        assert snapshot(ws) == before
    if message == "kept in":  # the trained model survived the full disk
        kept = Path(errors[0].split("kept in ")[1].split(":")[0])
        assert kept.parent == tmp_path / "tmp" and Model.load(kept).config.history
