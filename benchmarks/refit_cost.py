"""What new strokes cost the trainer on a big image: the first report (the pixel classifier's first fit)
and the refit after a few dabs, through ``train_steps`` as the dock drives it, on one of the GUI benchmark's
images: the 4096² uint16 plane (strokes in its first 512² tile) or the 64×1024² zarr volume (the dock trains
on the strokes' box plus its margin). Also the U-Net steps taken in the seconds after each refit. Prints JSON;
run it at two commits to compare.

    python benchmarks/refit_cost.py [--case large2d|zarr3d] [--refits 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from gui_cases import Case, dock_inputs, make_case

from napari_unet.core.api import prepare_model
from napari_unet.core.models.config import TrainConfig
from napari_unet.core.models.model_sources import AUTO
from napari_unet.core.train.messages import NewAnnotations
from napari_unet.core.train.training import train_steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--case", choices=("large2d", "zarr3d"), default="large2d")
    parser.add_argument("--refits", type=int, default=3, help="refits timed, each after 25 more dabs of each class")
    parser.add_argument("--after", type=float, default=3.0, help="seconds of training counted after each refit")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        case = make_case(args.case, Path(folder))
        result = {"benchmark": "refit_cost", "image": case.description, **_measure(case, args.refits, args.after)}
    print(json.dumps(result))


def _measure(case: Case, refits: int, after: float) -> dict:
    """Train on the strokes' box as the dock does; time the first report and each refit, and count the U-Net
    steps in the ``after`` seconds that follow each refit."""
    image, strokes, box = dock_inputs(case)
    spacing = case.spacing if strokes.ndim == 3 else None
    model, strokes = prepare_model(image, strokes, spacing=spacing, init=AUTO)
    loop = train_steps(model, image, strokes, TrainConfig(steps=None, time_budget=None, seed=0))
    started = time.perf_counter()
    next(loop)
    first_report = time.perf_counter() - started
    for _ in range(3):  # the set-up (optimiser, pseudo-labels) and a few steps: not timed
        loop.send(None)
    seconds, steps_after, painted = [], [], strokes.copy()
    offsets = np.array([s.start for s in box])
    for refit in range(refits):
        for value, voxels in case.targets.items():
            chosen = voxels[refit * 25 : (refit + 1) * 25] - offsets
            painted[tuple(chosen.T)] = value
        report = loop.send([NewAnnotations(painted.copy())])
        seconds.append(report.refit_seconds)
        first_step, until = report.step, time.perf_counter() + after
        while time.perf_counter() < until:
            report = loop.send(None)
        steps_after.append(report.step - first_step)
    loop.close()
    return {
        "box": [s.stop - s.start for s in box],
        "torch_threads": torch.get_num_threads(),
        "first_report_s": round(first_report, 3),
        "refit_s": [round(s, 3) for s in seconds],
        "refit_median_s": round(statistics.median(seconds), 3),
        f"steps_in_{after:g}_s_after_refit": steps_after,
    }


if __name__ == "__main__":
    main()
