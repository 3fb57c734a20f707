"""The simulated user of benchmarks/active_learning.py paints fairly: the same number of new pixels in
any boxes, only where nothing is painted, inside the boxes, with the true class."""

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parents[2] / "benchmarks"))

from active_learning import plan_strokes, random_boxes, truth_masks

from napari_unet.core.data.synthetic import synthetic_nuclei


@pytest.mark.parametrize("box_seed", [0, 1, 2])
def test_simulated_user_paints_the_budget_from_truth_inside_boxes(box_seed):
    sample = synthetic_nuclei((256, 256), seed=3, stroke_fraction=0.002)
    boxes = random_boxes(sample.instances.shape, 48, 3, np.random.default_rng(box_seed))
    assert len(boxes) == 3
    plan = plan_strokes(
        sample.strokes, sample.instances, truth_masks(sample.instances), boxes, 144, np.random.default_rng(0)
    )
    coords, values = tuple(plan[:, :-1].T), plan[:, -1]
    assert len(plan) == 144
    assert len(np.unique(plan[:, :-1], axis=0)) == len(plan)
    assert (sample.strokes[coords] == 0).all()
    np.testing.assert_array_equal(values == 2, sample.instances[coords] > 0)
    inside = np.zeros(sample.instances.shape, bool)
    for box in boxes:
        inside[box] = True
    assert inside[coords].all()
