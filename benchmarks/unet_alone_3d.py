"""The synthetic 3D guard for loss-default changes at a fixed step count: the U-Net's own mask and what
``train`` returns, on ``synthetic_nuclei`` (48×128×128, spacing 2, 1, 1; 0.2% painted); one torch thread,
float32. Prints one JSON line per seed::

    python benchmarks/unet_alone_3d.py --steps 150 --seeds 10 11 --set smoothness_weight=0
"""

from __future__ import annotations

import argparse
import json

import torch

from napari_unet.core.api import predict, train
from napari_unet.core.data.synthetic import synthetic_nuclei
from napari_unet.core.instances.metrics import foreground_iou


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--seeds", nargs="+", type=int, default=[10, 11])
    parser.add_argument("--set", action="append", default=[], metavar="KEY=JSON", help="a TrainConfig field")
    args = parser.parse_args()
    torch.set_num_threads(1)
    settings = {key: json.loads(value) for key, value in (kv.split("=", 1) for kv in args.set)}
    for seed in args.seeds:
        sample = synthetic_nuclei((48, 128, 128), spacing=(2.0, 1.0, 1.0), seed=seed, stroke_fraction=0.002)
        model = train(
            sample.image,
            sample.strokes,
            spacing=sample.spacing,
            steps=args.steps,
            time_budget=None,
            device="cpu",
            seed=seed,
            precision="fp32",
            **settings,
        )
        chosen, truth = model.chosen, sample.instances > 0
        returned = foreground_iou(predict(model, sample.image, device="cpu").labels == 2, truth)
        if model.config.selection:
            model.config.selection = {**model.config.selection, "chosen": "unet"}
        alone = foreground_iou(predict(model, sample.image, device="cpu").labels == 2, truth)
        row = {"seed": seed, "steps": args.steps, "set": settings, "unet_iou": round(alone, 4)}
        print(json.dumps({**row, "returned_iou": round(returned, 4), "chosen": chosen}), flush=True)


if __name__ == "__main__":
    main()
