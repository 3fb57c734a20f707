"""napari sample-data contributions: an image with a few strokes, ready to train."""

from __future__ import annotations


def _layers(dim: int) -> list[tuple]:
    from .sample_data import nuclei_sample

    sample = nuclei_sample(dim)
    name = f"nuclei {dim}D"
    return [
        (sample.image.copy(), {"name": name, "scale": sample.spacing}, "image"),
        (sample.strokes.copy(), {"name": f"{name} strokes", "scale": sample.spacing}, "labels"),
    ]


def nuclei_2d() -> list[tuple]:
    """Synthetic 2D nuclei (512×512) with strokes: 1 = background, 2 = nucleus."""
    return _layers(2)


def nuclei_3d() -> list[tuple]:
    """Synthetic 3D nuclei (48×128×128, Z spacing 2) with strokes: 1 = background, 2 = nucleus."""
    return _layers(3)
