"""Pretrain the generalist starting points shipped in ``napari_unet/pretrained/`` (no downloads).

    python scripts/pretrain.py --dim 2 --rounds 8 --seconds 40
    python scripts/pretrain.py --dim 3 --rounds 8 --seconds 60
    python scripts/pretrain.py --dim 3 --rounds 10 --seconds 60 --seed 1 --resume

Recipe: each round draws a fresh mosaic of synthetic nuclei tiles, every tile with its own
random look (:func:`~napari_unet.core.synthetic.random_style`: noise, blur, texture, debris,
haze, illumination), nucleus size and crowding, and in 3D its own Z voxel size (1-3× XY). Each
tile is normalised on its own, as prediction does, and labelled densely (1 = background,
2 = nucleus). The same trainer users run then trains on the mosaic for ``--seconds``, starting
from the previous round's weights. The held-out styles the benchmark uses
(benchmarks/pretrained.py) are fixed combinations from other seeds, never drawn here.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from napari_unet.core.api import train
from napari_unet.core.config import NormalizationConfig
from napari_unet.core.model import Model
from napari_unet.core.normalization import normalize
from napari_unet.core.synthetic import random_style, synthetic_nuclei

OUT = Path(__file__).resolve().parents[1] / "napari_unet" / "pretrained"
TILE = {2: (192, 192), 3: (24, 96, 96)}
GRID = {2: (4, 4), 3: (2, 2, 2)}
MODEL_SPACING = {2: (1.0, 1.0), 3: (2.0, 1.0, 1.0)}


def random_tile(dim: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """One normalised tile (float32) and its dense annotations (1 = background, 2 = nucleus)."""
    radius = float(rng.uniform(4.0, 16.0))
    spacing = (float(rng.choice([1.0, 2.0, 3.0])), 1.0, 1.0) if dim == 3 else (1.0, 1.0)
    sample = synthetic_nuclei(
        TILE[dim],
        spacing=spacing,
        radius_range=(0.7 * radius, 1.3 * radius),
        density=float(rng.uniform(0.15, 0.6)),
        stroke_fraction=0.0001,
        style=random_style(rng),
        seed=int(rng.integers(1_000_000, 2**31)),  # far from the benchmark's seeds
    )
    image = normalize(sample.image[None], NormalizationConfig())[0]
    return image, sample.semantic


def mosaic(dim: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Tiles of different looks side by side: ``(image, annotations)`` with the grid's shape."""
    grid, tile = GRID[dim], TILE[dim]
    image = np.zeros([g * t for g, t in zip(grid, tile)], np.float32)
    annotations = np.zeros(image.shape, np.uint8)
    for index in np.ndindex(*grid):
        box = tuple(slice(i * t, (i + 1) * t) for i, t in zip(index, tile))
        image[box], annotations[box] = random_tile(dim, rng)
    return image, annotations


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dim", type=int, choices=(2, 3), required=True)
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=40.0, help="training time per round")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--resume", action="store_true", help="go on from the model already in napari_unet/pretrained")
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    out = OUT / f"nuclei-{args.dim}d"
    model = Model.load(out) if args.resume else None
    for round_index in range(args.rounds):
        image, annotations = mosaic(args.dim, rng)
        model = train(
            image,
            annotations,
            dim=args.dim,
            spacing=MODEL_SPACING[args.dim],
            init=model,
            time_budget=args.seconds,
            seed=args.seed + round_index,
            intensity_probability=1.0,  # generalists must not depend on one image's contrast and noise
            image_name=f"synthetic nuclei mosaic, round {round_index + 1} (scripts/pretrain.py)",
        )
        print(f"round {round_index + 1}/{args.rounds}: loss {model.config.history[-1]['final_loss']:.3f}", flush=True)
    model.config.class_names = ["background", "nucleus"]
    model.save(out)
    print(out)


if __name__ == "__main__":
    main()
