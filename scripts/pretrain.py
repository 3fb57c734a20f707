"""Pretrain the generalist starting points shipped in ``napari_unet/pretrained/`` (no downloads).

    python scripts/pretrain.py --dim 2 --rounds 8 --seconds 40
    python scripts/pretrain.py --dim 3 --rounds 8 --seconds 60
    python scripts/pretrain.py --dim 3 --rounds 10 --seconds 60 --seed 1 --resume
    python scripts/pretrain.py --dim 2 --data ../shared/data/dsb2018/train --rounds 12 --steps 1100 \
        --init nuclei-2d --out /tmp/nuclei-2d-real

Synthetic recipe (without ``--data``): each round draws a fresh mosaic of synthetic nuclei
tiles, every tile with its own random look (:func:`~napari_unet.core.data.synthetic.random_style`:
noise, blur, texture, debris, haze, illumination), nucleus size and crowding, and in 3D its own
Z voxel size (1-3× XY). Each tile is normalised on its own, as prediction does, and labelled densely (1 = background,
2 = nucleus). The same trainer users run then trains on the mosaic for ``--seconds``, starting
from the previous round's weights. The held-out styles the benchmark uses
(benchmarks/pretrained.py) are fixed combinations from other seeds, never drawn here.

Real recipe (``--data``, 2D, see :mod:`pretrain_real`): mosaics of crops of the 2018 Data Science Bowl
train split (fluorescence, stained tissue in RGB, brightfield), fresh crops every round.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from pretrain_real import DSB_RGB_WEIGHTS, RealCrops, real_description

from napari_unet.core.api import train
from napari_unet.core.data.synthetic import random_style, synthetic_nuclei
from napari_unet.core.models.config import NormalizationConfig
from napari_unet.core.models.model import Model
from napari_unet.core.models.model_sources import open_model
from napari_unet.core.models.normalization import normalize

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


def round_learning_rate(round_index: int, rounds: int, base: float = 2e-3) -> float:
    """Each round restarts the trainer's warm-up and cosine; across rounds the peak decays to 15%."""
    return base * (0.15 + 0.85 * 0.5 * (1 + np.cos(np.pi * min(1.0, round_index / max(rounds - 1, 1)))))


def without_pixel_classifier(model: Model) -> None:
    """A generalist ships the U-Net alone: the trainer's pixel classifier fits only the last mosaic."""
    model.pixel_classifier = None
    model.config.pixel_classifier = model.config.selection = None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dim", type=int, choices=(2, 3), required=True)
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=40.0, help="training time per round")
    parser.add_argument("--steps", type=int, help="training steps per round (instead of --seconds: repeatable)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data", type=Path, help="real 2D recipe: the dsb2018 train/ folder (index.json + ID.npz)")
    parser.add_argument("--out", type=Path, help="model directory (default napari_unet/pretrained/nuclei-<dim>d)")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads for torch")
    parser.add_argument("--init", help="start from this model (directory or pretrained name) instead of scratch")
    parser.add_argument("--resume", action="store_true", help="go on from the model already in --out")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(args.seed)
    out = args.out or OUT / f"nuclei-{args.dim}d"
    model = Model.load(out) if args.resume else open_model(args.init) if args.init else None
    crops = RealCrops.load(args.data, rng) if args.data else None
    first = sum("--data" in run["image"]["name"] for run in model.config.history) if args.resume and crops else 0
    for round_index in range(first, args.rounds):
        if crops is not None:
            image, annotations = crops.mosaic(rng)
            settings = {
                "intensity_probability": 0.5,  # half the patches as the images are, half with new contrast and noise
                "patch_size": [192, 192],  # dense labels: context pays, not the stroke count
                "batch_size": 8,
                "learning_rate": round_learning_rate(round_index, args.rounds),
                "image_name": f"dsb2018 train crops mosaic, round {round_index + 1} (scripts/pretrain.py --data)",
            }
        else:
            image, annotations = mosaic(args.dim, rng)
            settings = {
                "intensity_probability": 1.0,  # generalists must not depend on one image's contrast and noise
                "image_name": f"synthetic nuclei mosaic, round {round_index + 1} (scripts/pretrain.py)",
            }
        model = train(
            image,
            annotations,
            dim=args.dim,
            spacing=MODEL_SPACING[args.dim],
            init=model,
            steps=args.steps,
            time_budget=None if args.steps else args.seconds,
            seed=args.seed + round_index,
            pseudo_label_weight=0.0,  # every voxel is labelled: no pixel classifier's guesses needed
            **settings,
        )
        without_pixel_classifier(model)
        print(f"round {round_index + 1}/{args.rounds}: loss {model.config.history[-1]['final_loss']:.3f}", flush=True)
        model.config.class_names = ["background", "nucleus"]
        if crops is not None:
            model.config.normalization.rgb_weights = list(DSB_RGB_WEIGHTS)
            model.config.description = real_description(args.rounds, args.seconds, args.steps, args.init)
        model.save(out)  # every round: a stopped run is usable and goes on with --resume
    print(out)


if __name__ == "__main__":
    main()
