"""Quality on real images: what ``napari_unet.train`` + ``predict`` return vs scikit-image's random forest.

The 40 dev images of the 2018 Data Science Bowl (``../shared/data/dsb2018/dev``: fluorescence, stained
tissue, brightfield), strokes simulated from the dense labels as its README describes (``real_images.py``),
several stroke seeds per image; the forest runs on the very same strokes in the same run. Scores against
the dense labels: foreground IoU, and instance F1 at IoU 0.5 of connected components ("f1") and of the
watershed split of ``--instances`` ("f1_split"). Summaries per kind and overall (images first averaged over
seeds): mean, worst image, win rate against the forest, share of images lost by more than 0.02 IoU, and the
issue-18 targets. Full run (about 50 min on 2 cores)::

    python benchmarks/real_quality.py --out docs/real-quality-DATE.json

Tuning subset (about 5 min): ``--quick`` (2 images per kind, 10 s, no curve). Options: ``--set KEY=VALUE``
(any TrainConfig field), ``--init MODEL`` (fine-tune from it; ``none``: a new network; default ``auto``, what
the API starts from), ``--zero-shot MODEL`` (its mask with no
strokes and no training), ``--no-train`` (forest and zero-shot only).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))

from baselines import random_forest_probabilities
from pretrained_real import score
from real_images import DATA, KINDS, StrokeProtocol, load_image, load_index, select, simulate_strokes
from real_summary import criteria, finetune_drops, print_tables, summarize

from napari_unet.core.api import load_model, predict, train
from napari_unet.core.errors import UserInputError
from napari_unet.core.models.config import TrainConfig
from napari_unet.core.models.model import UNET, Model
from napari_unet.core.models.model_sources import DEFAULT_START

# what the candidate choice rested on (see napari_unet.core.train.selection), kept in each row
SELECTION_FIELDS = (
    "start_kept",
    "start_vouched",
    "start_contradicted",
    "start_unjudged_classes",
    "network_start_agreement",
    "blend_weight",
)


def train_and_score(image, strokes, truth, budget: str, seed: int, args, settings: dict) -> dict:
    """Train through the public API for ``budget`` ("30s" or "200steps"), predict the whole image, score it."""
    channel_axis = -1 if image.ndim == 3 else None
    started = time.perf_counter()
    try:
        model = train(
            image,
            strokes,
            channel_axis=channel_axis,
            init=None if args.init == "none" else args.init,
            **budget_arguments(budget),
            device=args.device,
            seed=seed,
            **settings,
        )
    except UserInputError as error:
        return {"error": str(error)}
    train_seconds = time.perf_counter() - started
    started = time.perf_counter()
    returned = predict(model, image, channel_axis=channel_axis, probabilities=True, device=args.device).probabilities
    predict_seconds = time.perf_counter() - started
    network = (
        returned
        if model.chosen == UNET
        else predict(
            Model(model.network, model.config), image, channel_axis=channel_axis, probabilities=True, device=args.device
        ).probabilities
    )
    last = {
        k: v for k, v in model.config.history[-1].items() if k not in ("date", "image", "versions", "painted_voxels")
    }
    return {
        **score(returned, truth),
        "network": score(network, truth),  # the U-Net's own mask, whichever candidate train returned
        "steps": last.get("steps"),
        "train_seconds": round(train_seconds, 2),
        "predict_seconds": round(predict_seconds, 2),
        "history": last,
        "selection": {key: (model.config.selection or {}).get(key) for key in SELECTION_FIELDS},
    }


def warm_up(device: str) -> None:
    """One short training and prediction, so one-time start-up costs (imports, kernel set-up) do not
    land in the first image's time budget."""
    image = np.random.default_rng(0).integers(0, 255, (96, 96), dtype=np.uint8)
    strokes = np.zeros(image.shape, np.uint8)
    strokes[10, 10:40], strokes[50, 10:40] = 1, 2
    predict(train(image, strokes, steps=2, time_budget=None, device=device, seed=0), image, device=device)


def zero_shot_score(model, image, truth, device: str) -> dict:
    """The mask of ``model`` as it is (no strokes, no training)."""
    channel_axis = -1 if image.ndim == 3 else None
    try:
        prediction = predict(model, image, channel_axis=channel_axis, probabilities=True, device=device)
    except UserInputError as error:
        return {"error": str(error)}
    return score(prediction.probabilities, truth)


def run_image(entry: dict, budgets: Sequence[str], args, settings: dict, zero_model) -> list[dict]:
    """One row per stroke seed: the forest, the API's model at each budget, and the zero-shot mask."""
    item = load_image("dev", entry["id"], entry["kind"], args.data_dir)
    zero = zero_shot_score(zero_model, item.image, item.labels, args.device) if zero_model is not None else None
    rows = []
    for seed in args.seeds:
        strokes = simulate_strokes(item.labels, seed)
        started = time.perf_counter()
        forest = random_forest_probabilities(item.image, strokes, seed=seed, channel_axis=item.channel_axis)
        forest_seconds = round(time.perf_counter() - started, 2)
        row = {
            "image": item.id,
            "kind": item.kind,
            "shape": list(item.image.shape),
            "nuclei": int(entry["n"]),
            "seed": seed,
            "painted_fraction": round(float((strokes > 0).mean()), 5),
            "painted": {str(v): int((strokes == v).sum()) for v in (1, 2)},
            # the forest as scikit-image gives it, and with the clean-up of predict, for reference
            "forest": {**score(forest, item.labels, keep_specks=True), "seconds": forest_seconds},
            "forest_without_specks": score(forest, item.labels),
            "unet": {},
        }
        for budget in budgets:
            row["unet"][budget] = train_and_score(item.image, strokes, item.labels, budget, seed, args, settings)
            log = row["unet"][budget]
            print(
                f"{item.id} {item.kind:6s} seed {seed} {budget}: "
                + (
                    log["error"]
                    if "error" in log
                    else f"IoU {log['iou']:.3f} (forest {row['forest']['iou']:.3f}), "
                    f"{log['steps']} steps, chosen: {log['history'].get('chosen', 'unet')}"
                ),
                file=sys.stderr,
                flush=True,
            )
        if zero is not None:
            row["zero_shot"] = zero
        rows.append(row)
    return rows


def seconds(budget: float) -> str:
    """The key of a time budget: ``"30s"``."""
    return f"{budget:g}s"


def budget_arguments(budget: str) -> dict:
    """``train`` arguments for a budget key: ``"30s"`` (seconds) or ``"200steps"`` (steps, no time limit)."""
    if budget.endswith("steps"):
        return {"steps": int(budget.removesuffix("steps")), "time_budget": None}
    return {"time_budget": float(budget.removesuffix("s"))}


def parse_settings(pairs: Sequence[str]) -> dict:
    """``KEY=VALUE`` pairs (VALUE read as JSON, else a string) for :class:`TrainConfig`."""
    known = {f.name for f in dataclasses.fields(TrainConfig)} - {"steps", "time_budget", "seed", "device"}
    settings = {}
    for pair in pairs:
        key, _, value = pair.partition("=")
        if key not in known or not value:
            raise SystemExit(f"--set {pair}: give KEY=VALUE with KEY one of {', '.join(sorted(known))}")
        try:
            settings[key] = json.loads(value)
        except json.JSONDecodeError:
            settings[key] = value
    return settings


def environment(args) -> dict:
    def cpu_model() -> str:
        for line in Path("/proc/cpuinfo").read_text().splitlines() if Path("/proc/cpuinfo").exists() else []:
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
        return platform.processor() or platform.machine()

    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=Path(__file__).parent
        ).stdout.strip()
    except OSError:
        commit = ""
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "git_commit": commit,
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "device": args.device,
        "cuda": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
    }


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--time-budget", type=float, help="seconds of training per run (default 30; --quick: 10)")
    parser.add_argument("--steps", type=int, help="train a fixed number of steps instead (no time limit, no curve)")
    parser.add_argument("--curve", type=float, nargs="*", help="more budgets, on the curve images (default 1 3 10 30)")
    parser.add_argument("--curve-images", type=int, default=2, help="images per kind for the curve (default 2)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1], help="stroke (and training) seeds")
    parser.add_argument("--kinds", nargs="+", choices=KINDS, default=list(KINDS))
    parser.add_argument("--limit", type=int, help="the first N images of each kind (--quick: 2)")
    parser.add_argument("--images", nargs="+", help="exactly these image ids")
    parser.add_argument("--quick", action="store_true", help="tuning subset: --limit 2 --time-budget 10 --curve")
    parser.add_argument(
        "--init",
        default="auto",
        help="start from this model (directory, .zip or pretrained name); default 'auto', the API's default "
        "start; 'none' for a new network",
    )
    parser.add_argument("--zero-shot", metavar="MODEL", help="also score MODEL's mask with no strokes, no training")
    parser.add_argument("--no-train", action="store_true", help="no training: the forest and --zero-shot only")
    parser.add_argument("--set", dest="settings", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's own)")
    parser.add_argument("--data-dir", type=Path, default=DATA, help="the dsb2018 folder (holds dev/)")
    parser.add_argument("--out", type=Path, help="write the JSON here (default: stdout)")
    args = parser.parse_args(argv)
    main_budget = args.time_budget if args.time_budget is not None else (10.0 if args.quick else 30.0)
    curve = args.curve if args.curve is not None else ([] if args.quick or args.steps else [1.0, 3.0, 10.0, 30.0])
    main_key = f"{args.steps}steps" if args.steps else seconds(main_budget)
    curve_keys = [seconds(b) for b in sorted(curve)]
    limit = args.limit if args.limit is not None else (2 if args.quick else None)
    settings = parse_settings(args.settings)
    if args.threads:
        torch.set_num_threads(args.threads)
    entries = select(load_index("dev", args.data_dir), args.kinds, limit, args.images)
    if not entries:
        raise SystemExit("no images chosen: check --kinds, --limit and --images")
    curve_ids = {e["id"] for e in select(entries, args.kinds, args.curve_images)}
    zero_model = load_model(args.zero_shot) if args.zero_shot else None
    if not args.no_train:
        warm_up(args.device)
    head = {
        "benchmark": "real_quality",
        "data": "dsb2018/dev",
        "command": " ".join(["python benchmarks/real_quality.py", *(argv if argv is not None else sys.argv[1:])]),
        "subset": len(entries) < len(load_index("dev", args.data_dir)) or len(args.seeds) < 2,
        **environment(args),
        "budget": main_key,
        "curve": curve_keys,
        "curve_images": sorted(curve_ids),
        "seeds": args.seeds,
        "init": args.init,
        "zero_shot": args.zero_shot,
        "settings": settings,
        "stroke_protocol": dataclasses.asdict(StrokeProtocol()),
    }
    trained = [] if args.no_train else list(dict.fromkeys([*curve_keys, main_key]))
    # every dev image is 2D grey or 8-bit RGB with one object class: "auto" starts them all from DEFAULT_START
    start = DEFAULT_START if args.init == "auto" else args.init
    same_start = start == args.zero_shot and not args.no_train
    rows = []
    for done, entry in enumerate(entries, start=1):
        budgets = [] if args.no_train else [main_key]
        if not args.no_train and entry["id"] in curve_ids:
            budgets += [b for b in curve_keys if b != main_key]
        rows += run_image(entry, budgets, args, settings, zero_model)
        summary = summarize(rows, trained, main_key, curve_ids, zero_model is not None)
        drops = finetune_drops(rows, main_key) if same_start else None
        report = {
            **head,
            "images_done": f"{done}/{len(entries)}",
            "summary": summary,
            "finetune_drops": drops,
            "criteria": criteria(summary, main_key, curve_keys, drops),
            "rows": rows,
        }
        if args.out:  # after every image, so a long run that stops early keeps what it measured
            partial = args.out.with_name(args.out.name + ".partial")
            partial.write_text(json.dumps(report, indent=1) + "\n")
            os.replace(partial, args.out)
    print_tables(report)
    if not args.out:
        print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
