"""The ownership rule through the Python API: napari-unet replaces what it wrote, never an input, and
another tool's file only with ``overwrite``; a failed save after training keeps the model."""

from __future__ import annotations

import errno
import os
import shutil
import time
import uuid
from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from napari_unet.core.api import train
from napari_unet.core.errors import UserInputError
from napari_unet.core.infer.zarr_output import predict_to_zarr
from napari_unet.core.io import atomic
from napari_unet.core.io.atomic import atomic_target, remove_stale_temporaries, temporary_path
from napari_unet.core.io.io import write_array
from napari_unet.core.io.label_writer import write_label_image
from napari_unet.core.io.ownership import LABELS, MODEL, PREDICTION, SESSION, check_replaceable, written_kind
from napari_unet.core.io.rescue import save_or_keep
from napari_unet.core.io.session import save_session
from napari_unet.core.models.model import Model

IMAGE = np.arange(32 * 40, dtype=np.uint16).reshape(32, 40)
STROKES = np.zeros((32, 40), np.uint8)
STROKES[2:6, 2:30], STROKES[20:24, 5:35] = 1, 2


@pytest.fixture(scope="module")
def model() -> Model:
    return train(IMAGE, STROKES, steps=1, base_channels=4, depth=2, seed=0, device="cpu")


def _writers(model: Model) -> dict:
    """Each writer of the Python API as ``write(path, **ownership_options)``, with the suffix it writes."""
    labels = np.ones((32, 40), np.uint8)
    return {
        "write_array .tif": (".tif", lambda p, **o: write_array(p, labels, **o)),
        "write_array .zarr": (".zarr", lambda p, **o: write_array(p, labels, **o)),
        "Model.save": ("", lambda p, **o: model.save(p, **o)),
        "write_label_image": (".zarr", lambda p, **o: write_label_image(labels, p, **o)),
        "predict_to_zarr": (
            ".zarr",
            lambda p, inputs=(), **o: predict_to_zarr(  # its inputs: the image (and the model)
                model, inputs[0] if inputs else p.parent / "image.npy", p, device="cpu", **o
            ),
        ),
        "save_session": (".zarr", lambda p, **o: save_session(p, IMAGE, STROKES, **o)),
    }


WRITERS = [
    "write_array .tif",
    "write_array .zarr",
    "Model.save",
    "write_label_image",
    "predict_to_zarr",
    "save_session",
]


def _hashes(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("writer", WRITERS)
def test_each_writer_replaces_its_own_output_and_refuses_other_files_and_inputs(model, tmp_path, writer):
    suffix, write = _writers(model)[writer]
    np.save(tmp_path / "image.npy", IMAGE)
    ours = tmp_path / f"ours{suffix}"
    write(ours)
    write(ours)  # its own output: replaced without asking
    foreign = tmp_path / f"foreign{suffix}"
    if suffix == ".tif":
        tifffile.imwrite(foreign, IMAGE)
    else:
        foreign.mkdir()
        (foreign / ".zgroup" if suffix else foreign / "config.json").write_text('{"zarr_format": 2}')
    before = _hashes(tmp_path)
    with pytest.raises(UserInputError, match=r"not written by napari-unet|did not write") as refused:
        write(foreign)
    assert "\n" not in str(refused.value)
    with pytest.raises(UserInputError, match="input"):
        write(ours, overwrite=True, inputs=[ours])  # its own output, but an input of this call
    assert _hashes(tmp_path) == before
    if suffix:  # another tool's file or zarr store, replaced when asked; a folder never
        write(foreign, overwrite=True)
        assert written_kind(foreign) is not None
    else:
        with pytest.raises(UserInputError, match="never replaces such a folder"):
            write(foreign, overwrite=True)


@pytest.mark.parametrize(
    "write, kind",
    [
        (lambda p: write_array(p / "a.tif", IMAGE), PREDICTION),
        (lambda p: write_array(p / "a.zarr", IMAGE), PREDICTION),
        (lambda p: write_label_image(IMAGE, p / "a.zarr"), LABELS),
        (lambda p: save_session(p / "a.zarr", IMAGE, np.zeros_like(IMAGE, np.uint8)), SESSION),
    ],
)
def test_outputs_carry_their_kind(tmp_path, write, kind):
    assert written_kind(write(tmp_path)) == kind


def test_npy_and_other_tools_files_are_not_ours(tmp_path):
    np.save(tmp_path / "a.npy", IMAGE)
    tifffile.imwrite(tmp_path / "b.tif", IMAGE)
    (tmp_path / "c.tif").write_bytes(b"damaged")
    assert [written_kind(tmp_path / n) for n in ("a.npy", "b.tif", "c.tif", "missing.tif")] == [None] * 4


def test_a_model_folder_is_replaced_only_while_it_holds_nothing_else(model, tmp_path):
    folder = model.save(tmp_path / "m")
    assert written_kind(folder) == MODEL
    (folder / "notes.txt").write_text("mine")
    with pytest.raises(UserInputError, match=r"notes\.txt"):
        model.save(folder, overwrite=True)
    assert (folder / "notes.txt").read_text() == "mine"
    (tmp_path / "empty").mkdir()
    assert written_kind(model.save(tmp_path / "empty")) == MODEL
    (tmp_path / "file").write_text("a file")
    assert written_kind(model.save(tmp_path / "file", overwrite=True)) == MODEL  # a file replaced by a folder


def test_a_pretrained_model_named_as_an_input_is_not_replaced(model):
    from napari_unet.core.models.model_sources import pretrained_path

    with pytest.raises(UserInputError, match=r"is the input .*pretrained/nuclei-2d"):  # train --init nuclei-2d
        model.save(pretrained_path("nuclei-2d"), overwrite=True, inputs=["nuclei-2d"])


RELATIONS = {  # how a target may relate to an input; True: it is (or holds, or lies in) the input
    "same path": True,
    "symlink to it": True,
    "spelled with ..": True,
    "hard link": True,
    "inside it": True,
    "holding it": True,
    "through a linked folder": True,
    "sibling": False,
    "its labels group": False,
}


def _target(root: Path, relation: str, source: Path) -> Path:
    if relation == "same path":
        return source
    if relation == "symlink to it":
        os.symlink(source, root / "link")
        return root / "link"
    if relation == "spelled with ..":
        (root / "sub").mkdir()
        return root / "sub" / ".." / source.relative_to(root)
    if relation == "hard link":
        os.link(source, root / "hard")
        return root / "hard"
    if relation == "inside it":
        return source / "inner.zarr"
    if relation == "holding it":
        return source.parent
    if relation == "through a linked folder":
        os.symlink(source.parent, root / "linked")
        return root / "linked" / source.name
    if relation == "sibling":
        return root / "data" / "other.zarr"
    return source / "labels" / "new"


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    relation=st.sampled_from(sorted(RELATIONS)),
    kind=st.sampled_from([PREDICTION, LABELS, MODEL]),
    overwrite=st.booleans(),
    folder=st.booleans(),
)
def test_an_input_is_never_replaced_however_the_path_is_spelled(tmp_path, relation, kind, overwrite, folder):
    root = tmp_path / uuid.uuid4().hex
    (root / "data").mkdir(parents=True)
    source = root / "data" / ("image.zarr" if folder else "image.tif")
    if folder or relation in ("inside it", "its labels group"):
        source.mkdir()
    else:
        source.write_bytes(b"pixels")
    if relation == "hard link" and folder:
        relation = "same path"  # folders have no hard links
    target = _target(root, relation, source)
    labels_beside = relation == "its labels group" and kind != MODEL
    if RELATIONS[relation] or (relation == "its labels group" and not labels_beside):
        with pytest.raises(UserInputError, match="input"):
            check_replaceable(target, kind, overwrite=overwrite, inputs=[str(source)])
    else:
        assert check_replaceable(target, kind, overwrite=overwrite, inputs=[str(source)]) == target
    shutil.rmtree(root)


def test_stale_temporaries_only_of_dead_writers_and_only_ours_are_removed(tmp_path, caplog):
    target = tmp_path / "masks.tif"
    dead = subprocess_pid_that_exited()
    stale = temporary_path(target, pid=dead)
    live = temporary_path(target)
    lookalikes = [
        tmp_path / ".napari-unet-tmp-notes-masks.tif",
        temporary_path(tmp_path / "other.tif", pid=dead),
    ]
    for path in [stale, live, *lookalikes]:
        path.write_text("x")
    with caplog.at_level("INFO", logger="napari_unet.core.io.atomic"):
        assert remove_stale_temporaries(target) == [stale]
    assert all(p.exists() for p in [live, *lookalikes])
    assert caplog.messages == [f"removed {stale}, left by a writer that died"]  # logged, not warned


def test_another_machines_temporary_is_removed_only_when_long_unchanged(tmp_path):
    """On a shared file system a process id from another machine means nothing here: its
    temporary stays while anything in it changed within ``STALE_AGE``."""
    target = tmp_path / "masks.zarr"
    dead = subprocess_pid_that_exited()  # dead here, but on the other machine it may be at work
    at_work = temporary_path(target, host="0badc0de", pid=dead)
    abandoned = temporary_path(target, host="0badc0de", pid=dead)
    for path in (at_work, abandoned):
        (path / "0").mkdir(parents=True)
        (path / "0" / "chunk").write_text("x")
    old = time.time() - atomic.STALE_AGE - 60
    for path in (abandoned, abandoned / "0", abandoned / "0" / "chunk", at_work):
        os.utime(path, (old, old))  # at_work: only its newest chunk is recent
    assert remove_stale_temporaries(target) == [abandoned]
    assert at_work.exists()


def test_data_and_folder_are_flushed_around_the_rename(tmp_path, monkeypatch):
    """Every written file and folder reaches the disk before the rename, the rename after it (the
    real calls run; the spies only record their order)."""
    events = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd):
        events.append(("fsync", os.readlink(f"/proc/self/fd/{fd}")))
        real_fsync(fd)

    def replace(source, destination):
        events.append(("replace", str(destination)))
        real_replace(source, destination)

    monkeypatch.setattr(atomic.os, "fsync", fsync)
    monkeypatch.setattr(atomic.os, "replace", replace)
    target = tmp_path / "out.zarr"
    with atomic_target(target, PREDICTION) as tmp:
        (tmp / "0").mkdir(parents=True)
        (tmp / "0" / "chunk").write_text("x")
    flushed = [Path(path).relative_to(tmp_path).parts for kind, path in events[:-2] if kind == "fsync"]
    assert sorted(p[1:] for p in flushed) == [(), ("0",), ("0", "chunk")]  # the temporary, all of it
    assert events[-2:] == [("replace", str(target)), ("fsync", str(tmp_path))]


def subprocess_pid_that_exited() -> int:
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    return int(done.stdout)


def test_a_full_disk_reported_by_torch_is_one_line_and_nothing_is_left(model, tmp_path, monkeypatch):
    def full(*args, **kwargs):  # what torch.save raises on a full disk: no errno
        raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 40512 vs 40408")

    monkeypatch.setattr(torch, "save", full)
    monkeypatch.setattr(atomic.shutil, "disk_usage", lambda path: shutil._ntuple_diskusage(100, 100, 0))
    with pytest.raises(UserInputError, match="no space left on device; free some space") as raised:
        model.save(tmp_path / "m")
    assert "\n" not in str(raised.value)
    assert list(tmp_path.iterdir()) == []


def test_a_bug_inside_a_write_is_not_hidden(tmp_path):
    with pytest.raises(ZeroDivisionError), atomic_target(tmp_path / "x.tif", PREDICTION):
        1 / 0  # noqa: B018
    assert list(tmp_path.iterdir()) == []


def test_a_failed_save_after_training_keeps_the_model_and_says_where(model, tmp_path, monkeypatch):
    target = tmp_path / "run" / "model"
    target.parent.mkdir()
    real_save = Model.save

    def save(self, path, **options):
        if Path(path) == target:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_save(self, path, **options)

    monkeypatch.setattr(Model, "save", save)
    with pytest.raises(UserInputError, match="kept in") as raised:
        save_or_keep(model, target)
    kept = Path(str(raised.value).split("kept in ")[1].split(":")[0])
    assert kept.parent == target.parent and not target.exists()
    assert Model.load(kept).config.to_dict() == model.config.to_dict()


def test_when_nowhere_can_hold_the_model_the_message_says_so(model, tmp_path, monkeypatch):
    def save(self, path, **options):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(Model, "save", save)
    with pytest.raises(UserInputError, match="could not be kept anywhere"):
        save_or_keep(model, tmp_path / "model")


def test_a_file_that_appears_at_the_target_during_a_write_is_kept(tmp_path):
    target = tmp_path / "masks.tif"
    with pytest.raises(UserInputError, match="not written by napari-unet"), atomic_target(target, PREDICTION) as tmp:
        tmp.write_bytes(b"new masks")
        tifffile.imwrite(target, IMAGE)  # another program writes there while napari-unet works
    np.testing.assert_array_equal(tifffile.imread(target), IMAGE)
    assert [p.name for p in tmp_path.iterdir()] == ["masks.tif"]
