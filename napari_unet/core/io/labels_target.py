"""Where a label image goes: a standalone ``.zarr``, or ``IMAGE.zarr/labels/NAME`` inside an
OME-Zarr image; checked before any work is done."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ..errors import UserInputError
from .io import check_output_path
from .ngff import ome_metadata, read_ome_image


@dataclass(frozen=True)
class LabelsTarget:
    """Where a label image goes: a standalone ``.zarr``, or ``IMAGE.zarr/labels/NAME``."""

    root: Path
    image_root: Path | None = None

    @property
    def name(self) -> str:
        return self.root.name

    @property
    def standalone(self) -> bool:
        return self.image_root is None

    @classmethod
    def parse(cls, out: str | os.PathLike) -> LabelsTarget:
        """Check ``out`` before any work: ``IMAGE.zarr/labels/NAME`` (IMAGE an OME-Zarr image)
        writes into that image's labels; any other path must be a writable ``.zarr`` path. Paths
        become absolute, so dask workers started elsewhere write to the same place."""
        out = Path(out).absolute()
        if is_image_labels_path(out):
            if not os.access(out.parent.parent, os.W_OK):
                raise UserInputError(f"{out.parent.parent} is not writable: write to a standalone X.zarr instead")
            return cls(out, out.parent.parent)
        if out.suffix.lower() != ".zarr":
            raise UserInputError(f"out-of-core output must be a .zarr path (or IMAGE.zarr/labels/NAME), got {out}")
        return cls(check_output_path(out))

    def check_shape(self, shape: tuple[int, ...]) -> None:
        """A label image inside an image's ``labels/`` must cover that image's spatial shape."""
        if self.image_root is None:
            return
        import zarr

        group = zarr.open_group(str(self.image_root), mode="r")
        image = read_ome_image(group)
        image_shape = tuple(group[image.array_path].shape[a] for a in image.spatial_axes)
        if tuple(shape) != image_shape:
            raise UserInputError(
                f"labels of shape {tuple(shape)} do not fit {self.image_root} (spatial shape {image_shape}): "
                "write them to a standalone X.zarr instead"
            )

    def version(self, requested: str) -> str:
        """The NGFF version to write: the image's own inside ``IMAGE.zarr/labels``, else ``requested``."""
        if self.image_root is None:
            return requested
        import zarr

        found = ome_metadata(dict(zarr.open_group(str(self.image_root), mode="r").attrs))
        return found[0] if found else "0.4"


def is_image_labels_path(out: str | os.PathLike) -> bool:
    """Whether ``out`` is ``IMAGE/labels/NAME`` with IMAGE an OME-Zarr image on disk."""
    import zarr

    out = Path(out)
    if out.parent.name != "labels" or not out.parent.parent.is_dir():
        return False
    try:
        return ome_metadata(dict(zarr.open_group(str(out.parent.parent), mode="r").attrs)) is not None
    except Exception:  # not a zarr group at all
        return False


def probabilities_path(out: Path) -> Path:
    """Where the class probabilities of the label image ``out`` go: ``<out>_probabilities.<ext>``."""
    return out.with_name(f"{out.stem}_probabilities{out.suffix}")
