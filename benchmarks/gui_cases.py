"""The images benchmarks/gui_responsiveness.py trains on in a viewer: a real dev image, a 4096² uint16
plane and a 64×1024×1024 uint16 volume on disk (zarr, opened lazily), each with strokes, the truth
where there is one, and where the simulated user paints next."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

REAL_ID = "193ffaa5272d"  # fluorescence, 520×696, 157 nuclei (dev split: never trained on)
CASES = ("real", "large2d", "zarr3d")


@dataclass
class Case:
    """``image``: the layer's data (numpy or zarr), ``strokes`` (0/1/2), ``truth`` (0 = background,
    else nucleus; None: not scored), ``spacing``, and voxels where paint of each value goes (``targets``)."""

    name: str
    description: str
    image: object
    strokes: np.ndarray
    truth: np.ndarray | None
    spacing: tuple[float, ...]
    targets: dict[int, np.ndarray] = field(default_factory=dict)
    forest_iou: float | None = None


def _targets(truth: np.ndarray, near: tuple[slice, ...], rng: np.random.Generator) -> dict[int, np.ndarray]:
    """200 voxels of each class inside ``near``: where the simulated user paints during training."""
    from scipy import ndimage as ndi

    local = truth[near] > 0
    inside = ndi.binary_erosion(local, iterations=2)
    outside = ndi.distance_transform_edt(~local) > 4
    offsets = np.array([s.start for s in near])
    chosen = {}
    for value, mask in ((2, inside), (1, outside)):
        voxels = np.argwhere(mask)
        chosen[value] = voxels[rng.choice(len(voxels), size=min(200, len(voxels)), replace=False)] + offsets
    return chosen


def dock_inputs(case: Case) -> tuple[np.ndarray, np.ndarray, tuple[slice, ...]]:
    """What the dock trains on for ``case``: the ``(C, *box)`` pixels, the box's strokes and the box (the
    strokes' box plus its margin for a lazy image, else the whole image)."""
    from napari_unet._inputs import LayerPixels, training_box, whole

    pixels = LayerPixels(case.image, rgb=False)
    dim = min(case.strokes.ndim, 3)
    box = training_box(case.strokes, dim) if pixels.lazy else whole(case.strokes.shape)
    return pixels.read(box), case.strokes[box], box


def real_case(rng: np.random.Generator) -> Case:
    """A dev image of the 2018 Data Science Bowl with simulated strokes, scored against its labels and
    against the scikit-image random forest on the same strokes."""
    from real_images import load_image, simulate_strokes

    real = load_image("dev", REAL_ID, "fluo")
    strokes = simulate_strokes(real.labels, seed=0)
    whole = tuple(slice(0, s) for s in real.labels.shape)
    description = f"dsb2018 dev {REAL_ID} (fluo, {real.image.shape[0]}x{real.image.shape[1]})"
    targets = _targets(real.labels, whole, rng)
    case = Case("real", description, real.image, strokes, real.labels, (1.0, 1.0), targets)
    case.forest_iou = forest_iou(case, strokes)
    return case


def forest_iou(case: Case, strokes: np.ndarray) -> float:
    """Foreground IoU of scikit-image's random forest trained on ``strokes`` of the case's image."""
    from baselines import random_forest_segmentation

    from napari_unet.core.instances.metrics import foreground_iou

    forest = random_forest_segmentation(case.image, strokes)
    return float(foreground_iou(forest == 2, case.truth > 0))


def large2d_case(rng: np.random.Generator) -> Case:
    """The 2D sample tiled 8×8 (4096², uint16), strokes in its first tile only."""
    from napari_unet.core.data.synthetic import nuclei_sample

    sample = nuclei_sample(2)
    image = np.tile(sample.image, (8, 8)).astype(np.uint16)
    strokes = np.zeros(image.shape, np.uint8)
    strokes[:512, :512] = sample.strokes
    targets = _targets(sample.instances, (slice(0, 512), slice(0, 512)), rng)
    return Case("large2d", "2D sample tiled to 4096x4096 uint16", image, strokes, None, (1.0, 1.0), targets)


def make_case(name: str, folder: Path, seed: int = 0) -> Case:
    rng = np.random.default_rng(seed)
    if name == "real":
        return real_case(rng)
    return large2d_case(rng) if name == "large2d" else zarr3d_case(rng, folder)


def zarr3d_case(rng: np.random.Generator, folder: Path) -> Case:
    """The 3D sample tiled to 64×1024×1024 uint16 in a zarr on disk (chunks 16×256×256), opened lazily;
    strokes on the first tile only."""
    import zarr

    from napari_unet.core.data.synthetic import nuclei_sample

    sample = nuclei_sample(3)
    z, y, x = sample.image.shape
    reps = (-(-64 // z), -(-1024 // y), -(-1024 // x))
    volume = np.tile(sample.image, reps)[:64, :1024, :1024].astype(np.uint16)
    path = str(folder / "volume.zarr")
    zarr.open_array(path, mode="w", shape=volume.shape, chunks=(16, 256, 256), dtype="u2")[:] = volume
    strokes = np.zeros(volume.shape, np.uint8)
    del volume
    strokes[:z, :y, :x] = sample.strokes
    targets = _targets(sample.instances, (slice(0, z), slice(0, y), slice(0, x)), rng)
    description = "3D sample tiled to 64x1024x1024 uint16, zarr on disk"
    return Case("zarr3d", description, zarr.open_array(path, mode="r"), strokes, None, sample.spacing, targets)
