"""The simulated user of benchmarks/real_quality.py paints as the dsb2018 README says: lines through about one
nucleus in ten that stay inside it, background lines a few pixels away from every nucleus, 0.1–0.5% of the
pixels, the same strokes for the same seed (real images from tests/data/dsb2018)."""

import sys
from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage as ndi

sys.path.insert(0, str(Path(__file__).parents[2] / "benchmarks"))

from real_images import StrokeProtocol, simulate_strokes

DATA = Path(__file__).parents[1] / "data" / "dsb2018"
IMAGES = sorted(path.stem for path in DATA.glob("*.npz"))


def _labels(name: str) -> np.ndarray:
    with np.load(DATA / f"{name}.npz") as data:
        return data["labels"]


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("name", IMAGES)
def test_strokes_follow_the_protocol(name, seed):
    labels = _labels(name)
    protocol = StrokeProtocol()
    strokes = simulate_strokes(labels, seed)
    assert strokes.dtype == np.uint8 and set(np.unique(strokes)) == {0, 1, 2}
    assert 0.001 <= (strokes > 0).mean() <= 0.005
    # each nucleus line lies inside one nucleus, through about one nucleus in ten
    lines, count = ndi.label(strokes == 2, structure=np.ones((3, 3)))
    for index in range(1, count + 1):
        assert len(np.unique(labels[lines == index])) == 1
    assert (labels[strokes == 2] > 0).all()
    painted_nuclei = len(np.unique(labels[strokes == 2]))
    assert painted_nuclei == max(1, round(protocol.nucleus_share * labels.max()))
    # background lines keep more than the margin away from every nucleus, and there are several
    distance = ndi.distance_transform_edt(labels == 0)
    assert (distance[strokes == 1] > protocol.margin).all()
    assert ndi.label(strokes == 1, structure=np.ones((3, 3)))[1] >= protocol.min_background_lines


@pytest.mark.parametrize("name", IMAGES)
def test_strokes_are_seeded(name):
    labels = _labels(name)
    np.testing.assert_array_equal(simulate_strokes(labels, 5), simulate_strokes(labels, 5))
    assert (simulate_strokes(labels, 5) != simulate_strokes(labels, 6)).any()


def test_one_small_nucleus_still_gets_a_stroke_inside_it():
    labels = np.zeros((64, 64), np.uint16)
    labels[30:34, 40:43] = 1  # 12 pixels: too small to erode by 2 and keep a quarter
    strokes = simulate_strokes(labels, 0)
    assert (strokes == 2).any() and (labels[strokes == 2] == 1).all()
    assert (strokes == 1).any()
