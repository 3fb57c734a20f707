"""Quality regression on real images: a fixed number of training steps with a fixed seed on three dev images
of the 2018 Data Science Bowl (fluorescence, stained tissue, brightfield crop; tests/data/dsb2018), through the
public API (``train`` + ``predict``, whatever model it returns), on one torch thread in float32 so the numbers
do not depend on the machine's cores or bfloat16 support. Fails when an image's foreground IoU falls more than
TOLERANCE below the value recorded here.

Re-record after a change that moves quality on purpose (and say so in the commit)::

    python tests/core/test_real_quality_regression.py   # prints RECORDED_IOU to paste below
"""

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from napari_unet.core.api import predict, train
from napari_unet.core.instances.metrics import foreground_iou

DATA = Path(__file__).parents[1] / "data" / "dsb2018"
STEPS = 100
SEED = 0
TOLERANCE = 0.03
# Foreground IoU of train(steps=STEPS, seed=SEED, precision="fp32") + predict (1 thread) on each image's strokes,
# recorded when a start that gets every stroke right began to be kept as it is (2026-12-03: the fluorescence and
# tissue images keep it; before: 0.9189, 0.8611, 0.5277, recorded when predict began to drop specks). Update here.
RECORDED_IOU = {
    "05040e2e959c": 0.9209,  # fluo 256×256
    "4d4f254f3b8b": 0.8766,  # color 256×320
    "4217e25defac": 0.5277,  # bright, a 256×256 crop (the start is not kept: the classifier contradicts it)
}


def measure(name: str) -> float:
    """Foreground IoU of the model the API trains in STEPS steps on the stored strokes of image ``name``."""
    with np.load(DATA / f"{name}.npz") as data:
        image, labels, strokes = data["image"], data["labels"], data["strokes"]
    channel_axis = -1 if image.ndim == 3 else None
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        model = train(
            image, strokes, channel_axis=channel_axis, steps=STEPS, time_budget=None, seed=SEED, precision="fp32"
        )
        mask = predict(model, image, channel_axis=channel_axis, precision="fp32").labels
    finally:
        torch.set_num_threads(threads)
    return foreground_iou(mask == 2, labels > 0)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(RECORDED_IOU))
def test_real_image_iou_does_not_regress(name):
    iou = measure(name)
    assert iou >= RECORDED_IOU[name] - TOLERANCE, (
        f"{name}: foreground IoU {iou:.4f} < recorded {RECORDED_IOU[name]:.4f} - {TOLERANCE}"
    )


if __name__ == "__main__":
    print({name: round(measure(name), 4) for name in RECORDED_IOU}, file=sys.stdout)
