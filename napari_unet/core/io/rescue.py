"""Keep a trained model when saving it fails, so a long training run is never lost to a full disk,
a read-only folder or a target that became unsafe to replace while it trained."""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path

from ..errors import UserInputError
from ..models.model import Model


def _keep(model: Model, path: Path) -> Path | None:
    """Save ``model`` under a new name beside ``path``, else in the temporary folder, else in the
    home folder; the first that works, or None."""
    name = f"{path.name}.unsaved-{time.strftime('%Y%m%d-%H%M%S')}"
    folders = dict.fromkeys(os.path.realpath(f) for f in (path.parent, tempfile.gettempdir(), Path.home()))
    for folder in folders:
        candidate = Path(folder) / name
        if os.path.lexists(candidate) or not Path(folder).is_dir():
            continue
        try:
            return model.save(candidate)
        except Exception:  # this folder failed too (full, read-only…): try the next one
            continue
    return None


def save_or_keep(model: Model, path: str | os.PathLike, *, overwrite: bool = False, inputs: Iterable = ()) -> Path:
    """:meth:`Model.save` to ``path``; if that fails, keep the model elsewhere and raise one line
    that says why and where it is (see :func:`_keep`)."""
    path = Path(path)
    try:
        return model.save(path, overwrite=overwrite, inputs=inputs)
    except Exception as error:  # any failure to save must not lose the trained model
        kept = _keep(model, path)
        reason = str(error) if isinstance(error, UserInputError) else f"cannot write {path}: {type(error).__name__}"
        if isinstance(error, OSError) and error.strerror:
            reason = f"cannot write {path}: {error.strerror}"
        where = (
            f"the trained model was kept in {kept}: move it where you want it"
            if kept is not None
            else "the trained model could not be kept anywhere else either (free some space and train again)"
        )
        raise UserInputError(f"{reason}; {where}") from None
