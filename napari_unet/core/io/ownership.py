"""May this path be replaced? napari-unet replaces only what it wrote itself, and never an input.

Every write goes through :func:`.atomic.atomic_target`, which asks :func:`check_replaceable` first.
napari-unet recognises its own outputs by the marks it writes:

- a model folder: ``config.json`` with ``"format": "napari-unet-model"`` and no files but the model's;
- a TIFF: the Software tag ``napari-unet KIND``;
- a zarr array or group (label image, probabilities, plain array): the attribute ``napari-unet``
  (``{"output": KIND}``); a session: the attribute ``napari-unet-session``;
- a bioimage.io ``.zip``: a description whose ``config`` holds the napari-unet model config.

``.npy`` files carry no metadata, so replacing one needs ``overwrite``. ``overwrite`` also allows
replacing another tool's file or zarr store, but never a plain folder, a model folder holding other
files, or an input (resolved paths: symlinks, ``..`` and hard links are seen through; an output
inside an input or holding one is refused, except ``IMAGE.zarr/labels/NAME`` beside the image's arrays).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path

from ..errors import UserInputError

MARKER = "napari-unet"  # zarr attribute key and TIFF Software tag
SESSION_KEY = "napari-unet-session"
MODEL = "model"
PREDICTION = "prediction"  # masks, instances, probabilities: what predict writes
LABELS = "labels"  # a label image saved on request (strokes, a Labels layer)
SESSION = "session"
PACKAGE = "package"
_LABEL_IMAGES = (PREDICTION, LABELS)
_PRETRAINED_DIR = Path(__file__).resolve().parents[2] / "pretrained"  # where a pretrained name's model lives


def zarr_mark(kind: str) -> dict:
    """The attribute value that marks a zarr array or group as napari-unet's ``kind`` of output."""
    return {"output": kind}


def tiff_software(kind: str) -> str:
    return f"{MARKER} {kind}"


def _model_folder_kind(path: Path) -> str | None:
    from ..models.model import MODEL_FILES

    try:
        config = json.loads((path / "config.json").read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(config, dict) or config.get("format") != "napari-unet-model":
        return None
    return MODEL if all(entry.name in MODEL_FILES for entry in path.iterdir()) else None


def _zarr_kind(path: Path) -> str | None:
    import zarr

    try:
        attrs = dict(zarr.open(str(path), mode="r").attrs)
    except Exception:  # not a zarr store, or a damaged one: not recognisably ours
        return None
    if SESSION_KEY in attrs:
        return SESSION
    mark = attrs.get(MARKER)
    return mark.get("output") if isinstance(mark, dict) else None


def _tiff_kind(path: Path) -> str | None:
    import tifffile

    try:
        with tifffile.TiffFile(path) as tif:
            software = tif.pages.first.tags.get("Software")
            value = str(software.value) if software is not None else ""
    except Exception:  # not a readable TIFF
        return None
    marker, _, kind = value.partition(" ")
    return kind if marker == MARKER and kind else None


def _package_kind(path: Path) -> str | None:
    import zipfile

    import yaml

    from ..bioimageio.bioimageio_import import CONFIG_KEY, DESCRIPTION_FILES

    try:
        with zipfile.ZipFile(path) as package:
            name = next((n for n in DESCRIPTION_FILES if n in package.namelist()), None)
            description = yaml.safe_load(package.read(name)) if name else None
    except Exception:  # not a readable zip or YAML
        return None
    config = description.get("config") if isinstance(description, dict) else None
    return PACKAGE if isinstance(config, dict) and isinstance(config.get(CONFIG_KEY), dict) else None


def written_kind(path: str | os.PathLike) -> str | None:
    """Which kind of napari-unet output ``path`` is, by the marks napari-unet writes; None for
    anything else (another tool's file, a symlink, a ``.npy``, a damaged file)."""
    path = Path(path)
    if path.is_symlink() or not path.exists():
        return None
    if path.is_dir():
        if (path / "config.json").is_file():
            return _model_folder_kind(path)
        return _zarr_kind(path)
    suffix = path.suffix.lower()
    if suffix in (".tif", ".tiff"):
        return _tiff_kind(path)
    if suffix == ".zip":
        return _package_kind(path)
    return None


def _resolved(path: Path) -> Path:
    return Path(os.path.realpath(path))


def _inside(inner: Path, outer: Path) -> bool:
    return inner != outer and inner.is_relative_to(outer)


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def _input_paths(inputs: Iterable) -> list[Path]:
    """The inputs that are on disk: paths, and the folders of pretrained names (``nuclei-2d``)."""
    paths = []
    for given in inputs:
        if not isinstance(given, (str, os.PathLike)):
            continue  # e.g. a model object
        if os.path.lexists(given):
            paths.append(Path(given))
        elif isinstance(given, str) and "/" not in given and (_PRETRAINED_DIR / given).is_dir():
            paths.append(_PRETRAINED_DIR / given)
    return paths


def _is_labels_of(target: Path, image: Path) -> bool:
    """``target`` is ``image/labels/NAME`` (beside an OME-Zarr image's arrays, not one of them)."""
    return target.parent.name == "labels" and target.parent.parent == image


def _check_inputs(target: Path, kind: str, inputs: Iterable) -> None:
    real = _resolved(target)
    for given in _input_paths(inputs):
        source = _resolved(given)
        if real == source or _same_file(target, given):
            problem = f"is the input {given}"
        elif _inside(real, source) and not (kind in _LABEL_IMAGES and _is_labels_of(real, source)):
            problem = f"is inside the input {given}"
        elif _inside(source, real):
            problem = f"holds the input {given}"
        else:
            continue
        raise UserInputError(f"{target} {problem}: napari-unet never replaces its inputs; choose another output path")


def _describe_folder(path: Path) -> str:
    entries = sorted(entry.name for entry in path.iterdir())
    shown = ", ".join(entries[:3]) + (", …" if len(entries) > 3 else "")
    return f"{len(entries)} entries: {shown}"


def check_replaceable(target: str | os.PathLike, kind: str, *, overwrite: bool = False, inputs: Iterable = ()) -> Path:
    """Refuse, with one line, to write a ``kind`` of output at ``target`` where that would replace
    an input or something napari-unet did not write (see the module docstring); returns ``target``.

    ``inputs`` are the paths the command reads (images, labels, models); ``overwrite`` allows
    replacing another tool's file or zarr store that is not an input.
    """
    target = Path(target)
    _check_inputs(target, kind, inputs)
    if not os.path.lexists(target):
        return target
    found = written_kind(target)
    if found == kind:
        return target
    is_folder = target.is_dir() and not target.is_symlink()
    if is_folder and not any(target.iterdir()):
        return target  # an empty folder: nothing to lose
    zarr_store = is_folder and any((target / name).exists() for name in ("zarr.json", ".zarray", ".zgroup"))
    if found is not None:
        what = f"holds napari-unet's {found}, not a {kind}"
    elif zarr_store:
        what = "is a zarr store napari-unet did not write"
    elif is_folder:
        what = f"is a folder holding files napari-unet did not write ({_describe_folder(target)})"
    else:
        what = "exists and was not written by napari-unet"
    if is_folder and not zarr_store:
        raise UserInputError(f"{target} {what}: napari-unet never replaces such a folder; choose another path")
    if overwrite:
        return target
    raise UserInputError(
        f"{target} {what}: choose another path, or replace it with --overwrite (overwrite=True in Python)"
    )
