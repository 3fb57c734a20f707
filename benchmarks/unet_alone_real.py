"""The U-Net's own mask on real dev images (not the candidate ``train`` returns), for tuning its defaults.

Fixed steps, one torch thread, float32; after ``train`` the model's choice is set to the U-Net, so ``predict``
shows the network alone. Scores foreground IoU and the predicted foreground share against the dense labels, and
the scikit-image forest on the same strokes (cached in ``--forest-cache``). Appends one JSON line per run::

    python benchmarks/unet_alone_real.py --images 05040e2e959c --seeds 0 1 --steps 150 --set smoothness_weight=0
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))

from baselines import random_forest_segmentation
from real_images import DATA, load_image, load_index, simulate_strokes

from napari_unet.core.api import predict, train
from napari_unet.core.instances.metrics import foreground_iou


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", nargs="+", required=True, help="dev image ids (first 12 characters)")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=JSON", help="a TrainConfig field")
    parser.add_argument("--blend", action="store_true", help="also score the blend of the U-Net and the forest")
    parser.add_argument("--tag", default="")
    parser.add_argument("--out", default="unet-alone.jsonl")
    parser.add_argument("--forest-cache", default="unet-alone-forest.json")
    args = parser.parse_args()
    torch.set_num_threads(1)
    settings = {key: json.loads(value) for key, value in (kv.split("=", 1) for kv in args.set)}
    index = {entry["id"][:12]: entry for entry in load_index("dev", DATA)}
    cache_path = Path(args.forest_cache)
    cache = json.loads(cache_path.read_text()) if cache_path.exists() else {}
    for name in args.images:
        entry = index[name]
        item = load_image("dev", entry["id"], entry["kind"])
        truth = item.labels > 0
        for seed in args.seeds:
            strokes, key = simulate_strokes(item.labels, seed), f"{name}:{seed}"
            if key not in cache:
                forest = random_forest_segmentation(item.image, strokes, seed=seed, channel_axis=item.channel_axis)
                cache[key] = foreground_iou(forest == 2, truth)
                cache_path.write_text(json.dumps(cache))
            started = time.perf_counter()
            model = train(
                item.image,
                strokes,
                steps=args.steps,
                time_budget=None,
                seed=seed,
                channel_axis=item.channel_axis,
                device="cpu",
                precision="fp32",
                **settings,
            )
            seconds = time.perf_counter() - started
            selection = model.config.selection or {}
            if model.config.selection:
                model.config.selection = {**model.config.selection, "chosen": "unet"}
            mask = predict(model, item.image, channel_axis=item.channel_axis, device="cpu").labels == 2
            blend = {}
            if args.blend and model.config.selection:
                model.config.selection = {**model.config.selection, "chosen": "blend"}
                blended = predict(model, item.image, channel_axis=item.channel_axis, device="cpu").labels == 2
                blend = {
                    "blend_iou": round(foreground_iou(blended, truth), 4),
                    "blend_fg": round(float(blended.mean()), 4),
                }
            row = {
                "tag": args.tag,
                "set": settings,
                "steps": args.steps,
                "image": name,
                "kind": entry["kind"],
                "seed": seed,
                "unet_iou": round(foreground_iou(mask, truth), 4),
                "unet_fg": round(float(mask.mean()), 4),
                "true_fg": round(float(truth.mean()), 4),
                "forest_iou": round(cache[key], 4),
                **blend,
                "held_out": selection.get("held_out_accuracy"),
                "train_s": round(seconds, 1),
            }
            print(json.dumps(row), flush=True)
            with open(args.out, "a") as file:
                file.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
