"""What the trainer returns against its candidates and the forest, at several time budgets, on real images.

Per dev image of the 2018 Data Science Bowl (``../shared/data/dsb2018/dev``, strokes simulated by
``real_images.simulate_strokes``) and budget: foreground IoU of the scikit-image forest on all strokes
(``baselines.py``, the reference), and of the trained model's pixel classifier, U-Net, blend and chosen
candidate (what ``predict`` returns), with the held-out scores behind the choice. One JSON line per run::

    OMP_NUM_THREADS=1 python benchmarks/candidates.py --budgets 1 3 10 30 --ids 05040e2e959c 0c2550a23b8a --seed 0
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))

from baselines import random_forest_segmentation
from real_images import load_image, load_index, simulate_strokes

from napari_unet.core.api import train
from napari_unet.core.infer.inference import predict_normalized
from napari_unet.core.instances.metrics import foreground_iou
from napari_unet.core.models.model import BLEND, PIXEL_CLASSIFIER, UNET
from napari_unet.core.validation import as_channels_first


def _iou(probabilities: np.ndarray, truth: np.ndarray) -> float:
    """Foreground IoU of the candidates' own argmax (with specks: it compares candidates, not what predict returns)."""
    return round(foreground_iou(probabilities.argmax(0) + 1 == 2, truth > 0), 4)


def run(entry: dict, seed: int, budget: float) -> dict:
    image = load_image("dev", entry["id"], entry["kind"])
    strokes = simulate_strokes(image.labels, seed)
    reference = random_forest_segmentation(image.image, strokes, seed=seed, channel_axis=image.channel_axis)
    reports = []
    started = time.perf_counter()
    model = train(
        image.image, strokes, channel_axis=image.channel_axis, time_budget=budget, seed=seed, callback=reports.append
    )
    wall = time.perf_counter() - started
    raw = as_channels_first(image.image, image.channel_axis)
    normalized = model.normalize(raw)
    forest = model.pixel_classifier.probabilities(model.classifier_input(raw, normalized))
    unet = predict_normalized(model, normalized)
    candidates = {PIXEL_CLASSIFIER: forest, UNET: unet, BLEND: model.combine(forest, unet)}
    return {
        "id": entry["id"],
        "kind": entry["kind"],
        "seed": seed,
        "budget": budget,
        "steps": model.config.history[-1]["steps"],
        "wall": round(wall, 2),
        "first_report": round(reports[0].elapsed, 2),
        "reference": round(foreground_iou(reference == 2, image.labels > 0), 4),
        "forest": _iou(forest, image.labels),
        "unet": _iou(unet, image.labels),
        "blend": _iou(candidates[BLEND], image.labels),
        "chosen": _iou(candidates[model.chosen], image.labels),
        "choice": model.chosen,
        "selection": model.config.selection,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budgets", type=float, nargs="+", default=[1, 3, 10, 30])
    parser.add_argument("--ids", nargs="+", required=True)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1 on a shared machine)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    entries = {entry["id"]: entry for entry in load_index("dev")}
    warm = load_image("dev", args.ids[0], entries[args.ids[0]]["kind"])  # imports and first-step costs
    train(warm.image, simulate_strokes(warm.labels, 0), channel_axis=warm.channel_axis, time_budget=2, seed=0)
    for image_id in args.ids:
        for budget in args.budgets:
            print(json.dumps(run(entries[image_id], args.seed, budget)), flush=True)


if __name__ == "__main__":
    main()
