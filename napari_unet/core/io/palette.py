"""One colour per object class, the same in napari's layers and in OME-Zarr ``image-label`` colours.

Annotation values: 0 unpainted and 1 background stay transparent; class value ``v >= 2`` takes
``CLASS_COLOURS[(v - 2) % len(CLASS_COLOURS)]`` (magenta first, as the screenshots show).
"""

from __future__ import annotations

CLASS_COLOURS = ("#ff00ff", "#00ff00", "#ffaa00", "#00aaff", "#ff3333", "#ffff00", "#aa55ff")


def class_rgba(value: int) -> list[int]:
    """RGBA (0..255) of annotation ``value``: transparent for 0 and 1, else its class colour."""
    if value < 2:
        return [0, 0, 0, 0]
    colour = CLASS_COLOURS[(value - 2) % len(CLASS_COLOURS)]
    return [int(colour[i : i + 2], 16) for i in (1, 3, 5)] + [255]
