"""What new strokes cost the trainer on a big image: the first report (the pixel classifier's first fit)
and the refit after a few dabs, on the GUI benchmark's 4096² uint16 image (strokes in its first 512² tile),
through ``train_steps`` as the dock drives it. Prints JSON; run it at two commits to compare.

    python benchmarks/refit_cost.py [--refits 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import numpy as np
import torch
from gui_cases import large2d_case

from napari_unet.core.api import prepare_model
from napari_unet.core.models.config import TrainConfig
from napari_unet.core.models.model_sources import AUTO
from napari_unet.core.train.messages import NewAnnotations
from napari_unet.core.train.training import train_steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--refits", type=int, default=3, help="refits timed, each after 25 more dabs of each class")
    args = parser.parse_args()
    case = large2d_case(np.random.default_rng(0))
    image = case.image[None]
    model, strokes = prepare_model(image, case.strokes, init=AUTO)
    loop = train_steps(model, image, strokes, TrainConfig(steps=None, time_budget=None, seed=0))
    started = time.perf_counter()
    next(loop)
    first_report = time.perf_counter() - started
    for _ in range(3):  # the set-up (optimiser, pseudo-labels) and a few steps: not timed
        loop.send(None)
    refits, painted = [], strokes.copy()
    for refit in range(args.refits):
        for value, voxels in case.targets.items():
            chosen = voxels[refit * 25 : (refit + 1) * 25]
            painted[tuple(chosen.T)] = value
        report = loop.send([NewAnnotations(painted.copy())])
        refits.append(report.refit_seconds)
    loop.close()
    result = {
        "benchmark": "refit_cost",
        "image": case.description,
        "torch_threads": torch.get_num_threads(),
        "first_report_s": round(first_report, 3),
        "refit_s": [round(seconds, 3) for seconds in refits],
        "refit_median_s": round(statistics.median(refits), 3),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
