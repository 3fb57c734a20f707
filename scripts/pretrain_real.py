"""Training mosaics from real images: crops of the 2018 Data Science Bowl train split (dsb2018).

Each ``ID.npz`` holds ``image`` (uint8 ``YX``, or ``YXC`` RGB) and ``labels`` (uint16 instances);
``index.json`` gives each image's ``kind`` (``fluo``, ``color``, ``bright``). Every image is reduced to
one channel (RGB by :data:`DSB_RGB_WEIGHTS`, as the model then does itself) and normalised whole, as
prediction does; its annotations (:func:`dense_annotations`) paint every nucleus (2) and about as
much background (1): all of it near nuclei, including a 1-pixel line where two nuclei touch (so the
network learns to keep them apart), and a random share of the rest.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import ndimage as ndi
from skimage.transform import resize

from napari_unet.core.models.config import NormalizationConfig
from napari_unet.core.models.normalization import normalize, reduce_rgb

# Red carries most of the stain contrast (hematoxylin absorbs it; on the 40 train RGB images the
# red channel alone separates nuclei best in the worst image); a little G and B keeps
# single-colour composites (e.g. blue DAPI saved as RGB) visible. Recorded in the model's config.
DSB_RGB_WEIGHTS = (0.8, 0.1, 0.1)
CROP = 256
GRID = (4, 8)
CROPS_PER_KIND = {"fluo": 16, "color": 8, "bright": 8}  # per mosaic of 32: rare kinds drawn more often
ZOOM_RANGE = (0.75, 1.33)  # random scale of each crop, log-uniform
BAND = 3  # background pixels this close to a nucleus are always painted


def dense_annotations(instances: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Instances ``(Y, X)`` → uint8 annotations: 2 = nucleus; 1 = background within ``BAND`` pixels of a
    nucleus, on a 1-pixel line where two nuclei touch (the pixels of a nucleus whose right or lower
    neighbour is another nucleus), and on a random share of the farther background; 0 elsewhere.

    The trainer's loss weighs each painted class the same, so painting all of a background that covers
    ~90% of an image would weigh each nucleus pixel ~9× a background pixel and push the boundaries
    outwards; painting about as much background as nucleus keeps them where the labels put them.
    """
    nucleus = instances > 0
    annotations = np.where(nucleus, 2, 0).astype(np.uint8)
    down = nucleus[:-1] & nucleus[1:] & (instances[:-1] != instances[1:])
    annotations[:-1][down] = 1
    right = nucleus[:, :-1] & nucleus[:, 1:] & (instances[:, :-1] != instances[:, 1:])
    annotations[:, :-1][right] = 1
    near = ndi.distance_transform_edt(~nucleus) <= BAND
    annotations[near & ~nucleus] = 1
    far = np.flatnonzero(~near)
    wanted = int((annotations == 2).sum()) - int((annotations == 1).sum())
    if wanted > 0 or not nucleus.any():
        count = min(far.size, wanted if nucleus.any() else far.size)
        annotations.ravel()[rng.choice(far, size=count, replace=False)] = 1
    return annotations


def prepared_image(image: np.ndarray) -> np.ndarray:
    """uint8 ``YX`` or ``YXC`` → normalised float32 ``YX`` (RGB reduced first), as the model sees it."""
    channels_first = np.moveaxis(image, -1, 0) if image.ndim == 3 else image[None]
    return normalize(reduce_rgb(channels_first, list(DSB_RGB_WEIGHTS)), NormalizationConfig())[0]


@dataclass
class RealCrops:
    """The train split in memory, grouped by kind: ``{kind: [(normalised image, annotations)]}``."""

    images: dict[str, list[tuple[np.ndarray, np.ndarray]]]

    @classmethod
    def load(cls, folder: Path, rng: np.random.Generator) -> RealCrops:
        images: dict[str, list] = {kind: [] for kind in CROPS_PER_KIND}
        for item in json.loads((Path(folder) / "index.json").read_text()):
            with np.load(Path(folder) / f"{item['id']}.npz") as data:
                pair = prepared_image(data["image"]), dense_annotations(data["labels"], rng)
            images[item["kind"]].append(pair)
        return cls(images)

    def crop(self, kind: str, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """A random ``CROP``² crop of a random image of ``kind``, zoomed by a random factor."""
        image, annotations = self.images[kind][rng.integers(len(self.images[kind]))]
        zoom = float(np.exp(rng.uniform(*np.log(ZOOM_RANGE))))
        window = [min(s, round(CROP / zoom)) for s in image.shape]
        start = [int(rng.integers(s - w + 1)) for s, w in zip(image.shape, window)]
        box = tuple(slice(a, a + w) for a, w in zip(start, window))
        if window == [CROP, CROP]:
            return image[box], annotations[box]
        zoomed = resize(image[box], (CROP, CROP), order=1, anti_aliasing=False).astype(np.float32)
        labels = resize(annotations[box], (CROP, CROP), order=0, preserve_range=True, anti_aliasing=False)
        return zoomed, labels.astype(np.uint8)

    def mosaic(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """``GRID`` crops side by side in random places: ``(image float32, annotations uint8)``."""
        kinds = [kind for kind, count in CROPS_PER_KIND.items() for _ in range(count)]
        rng.shuffle(kinds)
        image = np.zeros([g * CROP for g in GRID], np.float32)
        annotations = np.zeros(image.shape, np.uint8)
        for kind, (row, column) in zip(kinds, np.ndindex(*GRID)):
            box = (slice(row * CROP, (row + 1) * CROP), slice(column * CROP, (column + 1) * CROP))
            image[box], annotations[box] = self.crop(kind, rng)
        return image, annotations


def real_description(rounds: int, seconds: float, steps: int | None, init: str | None) -> str:
    """The model card's account of the real recipe and its data."""
    start = f"from `{init}` (the synthetic recipe: `scripts/pretrain.py --dim 2`)" if init else "from scratch"
    length = f"--steps {steps}" if steps else f"--seconds {seconds:g}"
    return (
        "## Recipe and data\n\n"
        f"Trained {start} by `scripts/pretrain.py --dim 2 --data <dsb2018>/train "
        f"--rounds {rounds} {length}{f' --init {init}' if init else ''}` "
        "on the train split (355 images) of the 2018 Data Science Bowl stage-1 training set (BBBC038, "
        "community-fixed labels; CC0 1.0; Caicedo et al., Nature Methods 16, 1247–1253, 2019): fluorescence, "
        "stained tissue (RGB) and brightfield nuclei, every nucleus labelled. Each round trains on a fresh mosaic "
        f"of {GRID[0] * GRID[1]} random {CROP}² crops ({', '.join(f'{n} {k}' for k, n in CROPS_PER_KIND.items())}), "
        f"zoomed by {ZOOM_RANGE[0]}–{ZOOM_RANGE[1]}×, each from an image normalised whole as prediction does; "
        "annotations paint every nucleus (2) and about as much background (1): all background within "
        f"{BAND} px of a nucleus, a 1-pixel line between touching nuclei and a random share of the rest "
        "(the loss weighs classes equally, so this keeps boundaries unbiased); "
        "batches of 8 patches of 192², half of them with random contrast, brightness and noise. RGB images are "
        "reduced to one channel with the weights above, by the model itself. The 40 dev images of the same set "
        "were never trained on (their scores: docs/benchmarks.md)."
    )
