"""Pretrained starts on real images, zero-shot (no strokes, no training): the 40 dev images of the 2018 Data
Science Bowl (``../shared/data/dsb2018/dev``: fluorescence, stained tissue in RGB, brightfield).

Per image: foreground IoU, instance F1 at IoU 0.5 of connected components ("f1") and of the watershed split
of ``--instances`` ("f1_split"); per kind and over all images: mean and worst image. A model that refuses an
image (e.g. RGB for a model without ``rgb_weights``) scores 0 there and the image is listed as refused.
Prints one JSON object::

    python benchmarks/pretrained_real.py --models nuclei-2d /path/to/other_model
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
from time_to_quality import environment

from napari_unet.core.api import predict
from napari_unet.core.errors import UserInputError
from napari_unet.core.infer.inference import labels_from_probabilities
from napari_unet.core.instances.metrics import connected_instances, foreground_iou, instance_f1
from napari_unet.core.instances.postprocess import certainty, instances_from_labels
from napari_unet.core.models.model_sources import open_model

DATA = Path(os.environ.get("NAPARI_UNET_DSB2018", Path(__file__).resolve().parents[2] / "shared/data/dsb2018"))
KINDS = ("fluo", "color", "bright")
METRICS = ("iou", "f1", "f1_split")


def score(probabilities: np.ndarray, truth: np.ndarray, keep_specks: bool = False) -> dict[str, float]:
    """Scores of class probabilities ``(2, Y, X)`` (class 1 = nucleus) against instance ``truth`` ``(Y, X)``:
    their mask (less specks, as ``predict`` returns it, unless ``keep_specks``), its connected components,
    and the objects of ``--instances`` (split where the model is unsure)."""
    labels = labels_from_probabilities(probabilities, keep_specks)
    foreground = labels == 2
    objects = instances_from_labels(labels, certainty=certainty(probabilities))
    return {
        "iou": round(foreground_iou(foreground, truth > 0), 4),
        "f1": round(instance_f1(connected_instances(foreground), truth), 4),
        "f1_split": round(instance_f1(objects, truth), 4),
    }


def evaluate(model_source: str, index: list[dict], folder: Path, device: str) -> dict:
    """Per-image scores of one model over the images of ``index`` and their summaries."""
    model = open_model(model_source)
    rows, refused, seconds = [], [], 0.0
    for entry in index:
        with np.load(folder / f"{entry['id']}.npz") as data:
            image, truth = data["image"], data["labels"]
        try:
            started = time.perf_counter()
            channel_axis = -1 if image.ndim == 3 else None
            prediction = predict(model, image, channel_axis=channel_axis, probabilities=True, device=device)
            seconds += time.perf_counter() - started
            scores = score(prediction.probabilities, truth)
        except UserInputError:
            refused.append(entry["id"])
            scores = dict.fromkeys(METRICS, 0.0)
        rows.append({"id": entry["id"], "kind": entry["kind"], **scores})
    return {"model": model_source, "predict_seconds": round(seconds, 1), "refused": refused, **summary(rows)}


def summary(rows: list[dict]) -> dict:
    """Mean and worst image per kind and over all images, and the rows themselves."""
    groups = {kind: [r for r in rows if r["kind"] == kind] for kind in KINDS}
    groups["all"] = rows
    table = {}
    for name, group in groups.items():
        if not group:
            continue
        worst = min(group, key=lambda r: r["f1_split"])
        table[name] = {
            "images": len(group),
            **{m: round(float(np.mean([r[m] for r in group])), 4) for m in METRICS},
            "worst": {"id": worst["id"], **{m: worst[m] for m in METRICS}},
        }
    return {"summary": table, "images": rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["nuclei-2d"], help="pretrained names or model directories")
    parser.add_argument("--data-dir", type=Path, default=DATA, help="the dsb2018 folder (holds dev/)")
    parser.add_argument("--kinds", nargs="+", choices=KINDS, default=list(KINDS))
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    folder = args.data_dir / "dev"
    index = [e for e in json.loads((folder / "index.json").read_text()) if e["kind"] in args.kinds]
    results = [evaluate(source, index, folder, args.device) for source in args.models]
    for result in results:
        print(result["model"], json.dumps(result["summary"]), file=sys.stderr)
    print(json.dumps({"benchmark": "pretrained_real_zero_shot", **environment(), "models": results}, indent=2))


if __name__ == "__main__":
    main()
