"""Active learning: does quality rise faster when strokes go where the model suggests than at random places?

Two simulated users start from the same sparse strokes and the same model (round 0: trained from
scratch on a 512² synthetic nuclei image). Each round both score the current model (foreground IoU,
instance F1 of the seeded watershed against the dense truth), then paint the same number of new
pixels from the truth: "suggested" inside the most uncertain windows (``suggest_regions`` on the
entropy of the predicted probabilities), "random" inside random windows of the same size. Both then
fine-tune their own model for the same time (or steps). Prints one JSON object::

    .venv/bin/python benchmarks/active_learning.py --seeds 10 11 --rounds 4 --seconds-per-round 8 --plot al.png

``--steps-per-round N`` trains a fixed number of steps per round instead of a time budget, so that
machine load cannot favour one user; ``--plot`` needs matplotlib (skipped with a note without it).
"""

from __future__ import annotations

import argparse
import copy
import datetime
import json
import platform
import sys
import time

import numpy as np
import torch
from scipy import ndimage as ndi
from skimage.draw import line_nd

from napari_unet.core.api import predict, train
from napari_unet.core.data.synthetic import SyntheticSample, synthetic_nuclei
from napari_unet.core.instances.metrics import foreground_iou, instance_f1
from napari_unet.core.instances.postprocess import certainty, instances_from_labels
from napari_unet.core.instances.uncertainty import entropy, suggest_regions
from napari_unet.core.models.devices import resolve_device
from napari_unet.core.models.model import Model

SHAPE = (512, 512)
USERS = ("suggested", "random")
LINE_LENGTHS = {2: (6.0, 22.0), 1: (10.0, 35.0)}  # as in synthetic.simulate_strokes: nuclei, background
MARGIN = 2.0  # strokes stay this far (pixels) from object boundaries, like a careful user

Box = tuple[slice, ...]


# --- the simulated user -------------------------------------------------------------------------


def truth_masks(instances: np.ndarray) -> dict:
    """Where a careful user may paint: nuclei (2) and background (1) at least ``MARGIN`` from a
    boundary, and the background gaps next to nuclei (where users paint to separate objects)."""
    inside = ndi.distance_transform_edt(instances > 0)
    outside = ndi.distance_transform_edt(instances == 0)
    return {2: inside >= MARGIN, 1: outside >= MARGIN, "gaps": (outside >= MARGIN) & (outside <= 5)}


def _first_run(line: tuple[np.ndarray, ...], keep: np.ndarray) -> tuple[np.ndarray, ...]:
    """The part of a rasterised line before it first leaves ``keep``."""
    stop = len(keep) if keep.all() else int(np.argmin(keep))
    return tuple(c[:stop] for c in line)


def _paint_class(
    work: np.ndarray, instances: np.ndarray, masks: dict, box: Box, value: int, budget: int, rng: np.random.Generator
) -> list[np.ndarray]:
    """Short lines of class ``value`` inside ``box`` on unpainted allowed pixels of ``work`` (painted
    in place), at most ``budget`` pixels; returns their ``(n, ndim)`` coordinates in painting order."""
    lo = np.array([s.start for s in box])
    hi = np.array([s.stop for s in box]) - 1
    allowed = masks[value]
    starts = np.argwhere(allowed[box]) + lo
    gaps = np.argwhere(masks["gaps"][box]) + lo if value == 1 else starts[:0]
    strokes: list[np.ndarray] = []
    painted = 0
    for _ in range(300):
        if painted >= budget or not len(starts):
            break
        pool = gaps if len(gaps) and rng.random() < 0.5 else starts
        start = pool[rng.integers(len(pool))]
        if work[tuple(start)]:
            continue
        direction = rng.standard_normal(len(start))
        length = rng.uniform(*LINE_LENGTHS[value])
        end = np.clip(np.rint(start + direction / np.linalg.norm(direction) * length), lo, hi)  # whole pixels:
        line = tuple(np.asarray(c) for c in line_nd(start, end, endpoint=True))  # no pixel twice
        line = _first_run(line, allowed[line])
        if value == 2:  # stay within the nucleus the stroke started in
            line = _first_run(line, instances[line] == instances[tuple(start)])
        new = work[line] == 0
        coords = np.stack([c[new] for c in line], axis=1)[: budget - painted]
        work[tuple(coords.T)] = value
        strokes.append(np.column_stack([coords, np.full(len(coords), value)]))
        painted += len(coords)
    return strokes


def plan_strokes(
    strokes: np.ndarray, instances: np.ndarray, masks: dict, boxes: list[Box], budget: int, rng: np.random.Generator
) -> np.ndarray:
    """New pixels a user paints from the truth in ``boxes``: ``(n, ndim + 1)`` rows of coordinates and
    value, in painting order, ``n <= budget``, only where ``strokes`` is unpainted.

    The budget is shared evenly by the boxes (what one box cannot take passes to the next); in each
    box half goes to nuclei and half to background, one class taking the rest when the other runs out.
    """
    work = strokes.copy()
    planned: list[np.ndarray] = [np.zeros((0, strokes.ndim + 1), np.int64)]
    total = 0
    for index, box in enumerate(boxes):
        box_budget = (budget - total) // (len(boxes) - index)
        got = 0
        for value, share in ((2, box_budget // 2), (1, box_budget), (2, box_budget)):
            lines = _paint_class(work, instances, masks, box, value, min(share, box_budget) - got, rng)
            planned += lines
            got += sum(len(line) for line in lines)
        total += got
    return np.concatenate(planned).astype(np.int64)


def random_boxes(shape: tuple[int, ...], window: int, count: int, rng: np.random.Generator) -> list[Box]:
    """``count`` non-overlapping ``window``-sized boxes anywhere in the image."""
    boxes: list[Box] = []
    for _ in range(1000):
        if len(boxes) == count:
            break
        corner = [int(rng.integers(0, s - window + 1)) for s in shape]
        box = tuple(slice(c, c + window) for c in corner)
        if not any(all(a.start < b.stop and b.start < a.stop for a, b in zip(box, other)) for other in boxes):
            boxes.append(box)
    return boxes


# --- training and scoring -----------------------------------------------------------------------


def fit(sample: SyntheticSample, strokes: np.ndarray, args: argparse.Namespace, seed: int, init: Model | None) -> Model:
    """Train from scratch (``init`` None) or fine-tune ``init`` in place for one round."""
    steps = args.steps_per_round
    budget = None if steps else args.seconds_per_round
    return train(sample.image, strokes, init=init, steps=steps, time_budget=budget, seed=seed, device=args.device)


def score(model: Model, sample: SyntheticSample, device: str) -> tuple[dict, np.ndarray]:
    """Foreground IoU, instance F1 and mean entropy of ``model`` on ``sample``, and the entropy map."""
    prediction = predict(model, sample.image, probabilities=True, device=device)
    uncertainty = entropy(prediction.probabilities)
    sure = certainty(prediction.probabilities)  # objects split where the model is unsure, as --instances does
    scores = {
        "iou": round(foreground_iou(prediction.labels == 2, sample.instances > 0), 4),
        "f1": round(instance_f1(instances_from_labels(prediction.labels, certainty=sure), sample.instances), 4),
        "mean_entropy": round(float(uncertainty.mean()), 4),
    }
    return scores, uncertainty


def choose_boxes(user: str, uncertainty: np.ndarray, strokes: np.ndarray, args: argparse.Namespace, key: list) -> list:
    """Where ``user`` paints next: the most uncertain unpainted windows, or random ones (seeded by ``key``)."""
    if user == "suggested":
        return [found.box for found in suggest_regions(uncertainty, args.window, args.regions, painted=strokes)]
    return random_boxes(SHAPE, args.window, args.regions, np.random.default_rng(key))


def run_seed(seed: int, args: argparse.Namespace) -> dict:
    """Both users on one synthetic image; per-round rows for each."""
    started = time.perf_counter()
    sample = synthetic_nuclei(SHAPE, seed=seed, stroke_fraction=args.stroke_fraction)
    masks = truth_masks(sample.instances)
    initial = fit(sample, sample.strokes, args, seed, init=None)
    strokes = {user: sample.strokes.copy() for user in USERS}
    models = {user: copy.deepcopy(initial) for user in USERS}  # fine-tuning changes a model in place
    rows: dict[str, list[dict]] = {user: [] for user in USERS}
    for round_index in range(args.rounds + 1):
        uncertainty = {}
        for user in USERS:
            scores, uncertainty[user] = score(models[user], sample, args.device)
            painted = round(float((strokes[user] > 0).mean()), 6)
            steps = models[user].config.history[-1]["steps"]
            rows[user].append({"round": round_index, "painted_fraction": painted, **scores, "steps": steps})
        if round_index == args.rounds:
            break
        key = [seed, round_index]
        boxes = {user: choose_boxes(user, uncertainty[user], strokes[user], args, key) for user in USERS}
        budget = args.pixels_per_region * args.regions
        hand = {user: np.random.default_rng([*key, 1]) for user in USERS}  # the same hand for both users
        plans = {
            user: plan_strokes(strokes[user], sample.instances, masks, boxes[user], budget, hand[user])
            for user in USERS
        }
        added = min(len(plan) for plan in plans.values())  # exactly the same number of new pixels
        for user in USERS:
            new = plans[user][:added]
            strokes[user][tuple(new[:, :-1].T)] = new[:, -1]
            rows[user][-1].update(boxes=[[s.start for s in box] for box in boxes[user]], added_pixels=added)
            models[user] = fit(sample, strokes[user], args, seed * 1000 + round_index + 1, init=models[user])
    return {
        "seed": seed,
        "objects": int(sample.instances.max()),
        "seconds": round(time.perf_counter() - started, 1),
        **rows,
    }


# --- report -------------------------------------------------------------------------------------


def summarise(results: list[dict], rounds: int) -> dict:
    """Mean IoU/F1/painted fraction per round for each user, and the gain of suggested over random."""
    summary: dict = {"rounds": list(range(rounds + 1))}
    for user in USERS:
        summary[user] = {
            key: [round(float(np.mean([r[user][k][key] for r in results])), 6) for k in range(rounds + 1)]
            for key in ("painted_fraction", "iou", "f1", "mean_entropy")
        }
    summary["gain"] = {
        key: [round(s - r, 4) for s, r in zip(summary["suggested"][key], summary["random"][key])]
        for key in ("iou", "f1")
    }
    summary["mean_gain_after_round_0"] = {
        key: round(float(np.mean(values[1:])), 4) if rounds else 0.0 for key, values in summary["gain"].items()
    }
    return summary


def plot(results: list[dict], summary: dict, path: str) -> str | None:
    """IoU and F1 against round for both users (means bold, seeds thin); None if it was written."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "matplotlib is not installed: no plot"
    figure, axes = plt.subplots(1, 2, figsize=(9, 3.5), constrained_layout=True)
    for axis, key, title in zip(axes, ("iou", "f1"), ("foreground IoU", "instance F1")):
        for user, colour in zip(USERS, ("tab:orange", "tab:blue")):
            for result in results:
                axis.plot(summary["rounds"], [row[key] for row in result[user]], color=colour, alpha=0.25, lw=1)
            axis.plot(summary["rounds"], summary[user][key], color=colour, marker="o", lw=2, label=user)
        axis.set(xlabel="round (strokes added)", title=title, xticks=summary["rounds"])
        axis.grid(alpha=0.3)
    axes[0].legend()
    figure.savefig(path, dpi=120)
    return None


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[10, 11])
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--seconds-per-round", type=float, default=8.0)
    parser.add_argument("--steps-per-round", type=int, default=None, help="fixed steps instead of seconds")
    parser.add_argument("--regions", type=int, default=3, help="windows painted per round")
    parser.add_argument("--window", type=int, default=48)
    parser.add_argument("--pixels-per-region", type=int, default=48, help="new painted pixels per window")
    parser.add_argument("--stroke-fraction", type=float, default=0.0005, help="initial strokes")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--plot", default=None, help="PNG of IoU and F1 against round (needs matplotlib)")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    started = time.perf_counter()
    results = [run_seed(seed, args) for seed in args.seeds]
    summary = summarise(results, args.rounds)
    report = {
        "benchmark": "active_learning",
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "device": str(resolve_device(args.device)),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "cpu": platform.processor() or platform.machine(),
        "parameters": {**vars(args), "shape": list(SHAPE), "margin": MARGIN},
        "seconds": round(time.perf_counter() - started, 1),
        "summary": summary,
        "seeds": results,
    }
    if args.plot:
        note = plot(results, summary, args.plot)
        report["plot"] = note or args.plot
        if note:
            print(note, file=sys.stderr)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
