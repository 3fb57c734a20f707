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
(any TrainConfig field), ``--init MODEL`` (fine-tune from it), ``--zero-shot MODEL`` (its mask with no
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
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))

from baselines import random_forest_segmentation
from pretrained_real import score
from real_images import DATA, KINDS, StrokeProtocol, load_image, load_index, select, simulate_strokes

from napari_unet.core.api import load_model, predict, train
from napari_unet.core.config import TrainConfig
from napari_unet.core.errors import UserInputError
from napari_unet.core.model import UNET, Model

METRICS = ("iou", "f1", "f1_split")
LOSS_MARGIN = 0.02  # an image counts as lost to the forest below its IoU minus this


def train_and_score(image, strokes, truth, budget: str, seed: int, args, settings: dict) -> dict:
    """Train through the public API for ``budget`` ("30s" or "200steps"), predict the whole image, score it."""
    channel_axis = -1 if image.ndim == 3 else None
    started = time.perf_counter()
    try:
        model = train(
            image,
            strokes,
            channel_axis=channel_axis,
            init=args.init,
            **budget_arguments(budget),
            device=args.device,
            seed=seed,
            **settings,
        )
    except UserInputError as error:
        return {"error": str(error)}
    train_seconds = time.perf_counter() - started
    started = time.perf_counter()
    mask = predict(model, image, channel_axis=channel_axis, device=args.device).labels
    predict_seconds = time.perf_counter() - started
    network_mask = (
        mask
        if model.chosen == UNET
        else predict(Model(model.network, model.config), image, channel_axis=channel_axis, device=args.device).labels
    )
    last = {
        k: v for k, v in model.config.history[-1].items() if k not in ("date", "image", "versions", "painted_voxels")
    }
    return {
        **score(mask, truth),
        "network": score(network_mask, truth),  # the U-Net's own mask, whichever candidate train returned
        "steps": last.get("steps"),
        "train_seconds": round(train_seconds, 2),
        "predict_seconds": round(predict_seconds, 2),
        "history": last,
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
        mask = predict(model, image, channel_axis=channel_axis, device=device).labels
    except UserInputError as error:
        return {"error": str(error)}
    return score(mask, truth)


def run_image(entry: dict, budgets: Sequence[str], args, settings: dict, zero_model) -> list[dict]:
    """One row per stroke seed: the forest, the API's model at each budget, and the zero-shot mask."""
    item = load_image("dev", entry["id"], entry["kind"], args.data_dir)
    zero = zero_shot_score(zero_model, item.image, item.labels, args.device) if zero_model is not None else None
    rows = []
    for seed in args.seeds:
        strokes = simulate_strokes(item.labels, seed)
        started = time.perf_counter()
        forest = random_forest_segmentation(item.image, strokes, seed=seed, channel_axis=item.channel_axis)
        row = {
            "image": item.id,
            "kind": item.kind,
            "shape": list(item.image.shape),
            "nuclei": int(entry["n"]),
            "seed": seed,
            "painted_fraction": round(float((strokes > 0).mean()), 5),
            "painted": {str(v): int((strokes == v).sum()) for v in (1, 2)},
            "forest": {**score(forest, item.labels), "seconds": round(time.perf_counter() - started, 2)},
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


def per_image(rows: list[dict], method: str, budget: str | None = None, part: str | None = None) -> dict[str, dict]:
    """Scores of one method averaged over seeds per image: ``{id: {kind, iou, f1, f1_split, steps}}``;
    an image where the method failed (refused the input) on any seed is ``{kind, error}``. ``part``
    picks a nested result (``"network"``: the U-Net's own mask)."""
    grouped: dict[str, list[dict]] = {}
    for row in rows:
        result = row[method] if budget is None else row[method].get(budget)
        if result is None:
            continue
        if part is not None and "error" not in result:
            result = {**result[part], "steps": result.get("steps")}
        grouped.setdefault(row["image"], []).append({**result, "kind": row["kind"]})
    images = {}
    for image, results in grouped.items():
        errors = [r["error"] for r in results if "error" in r]
        if errors:
            images[image] = {"kind": results[0]["kind"], "error": errors[0]}
            continue
        images[image] = {"kind": results[0]["kind"]}
        for metric in (*METRICS, "steps"):
            values = [r[metric] for r in results if r.get(metric) is not None]
            if values:
                images[image][metric] = float(np.mean(values))
    return images


def compare(method: dict[str, dict], forest: dict[str, dict], kind: str | None) -> dict:
    """Summary of a method against the forest over the images of ``kind`` (None: all); images the method
    refused are counted in ``failed`` and left out of the rest."""
    ids = sorted(i for i in method if i in forest and (kind is None or method[i]["kind"] == kind))
    failed = [i for i in ids if "error" in method[i]]
    ids = [i for i in ids if i not in failed]
    if not ids:
        return {"images": 0, "failed": len(failed)}
    mine = {m: np.array([method[i][m] for i in ids]) for m in METRICS}
    peer = {m: np.array([forest[i][m] for i in ids]) for m in METRICS}
    delta = mine["iou"] - peer["iou"]
    worst, lost = int(np.argmin(mine["iou"])), int(np.argmin(delta))
    summary = {
        "images": len(ids),
        "failed": len(failed),
        "mean": {m: round(float(mine[m].mean()), 4) for m in METRICS},
        "forest_mean": {m: round(float(peer[m].mean()), 4) for m in METRICS},
        "delta": {m: round(float((mine[m] - peer[m]).mean()), 4) for m in METRICS},
        "win_rate": round(float((delta > 0).mean()), 3),
        "lost_share": round(float((delta < -LOSS_MARGIN).mean()), 3),
        "worst_image": {"id": ids[worst], "iou": round(float(mine["iou"][worst]), 4)},
        "largest_loss": {"id": ids[lost], "delta_iou": round(float(delta[lost]), 4)},
    }
    steps = [method[i]["steps"] for i in ids if "steps" in method[i]]
    if steps:
        summary["mean_steps"] = round(float(np.mean(steps)), 1)
    return summary


def summarize(rows: list[dict], budgets: Sequence[str], main: str, curve_ids: set[str], zero_shot: bool) -> dict:
    """Per kind and overall: the main budget on every image, the other budgets on the curve images (the
    main budget there too, as ``unet_{main}_curve``) and the zero-shot mask."""
    forest = per_image(rows, "forest")
    groups = [None, *[k for k in KINDS if any(r["kind"] == k for r in rows)]]
    summary = {}
    for budget in budgets:
        method = per_image(rows, "unet", budget)
        summary[f"unet_{budget}"] = {kind or "all": compare(method, forest, kind) for kind in groups}
        for kind in groups:  # which model train returned (its history's "chosen"), counted over runs
            runs = [r["unet"][budget] for r in rows if budget in r["unet"] and kind in (None, r["kind"])]
            chosen = Counter(str(run.get("history", {}).get("chosen", "unet")) for run in runs if "error" not in run)
            summary[f"unet_{budget}"][kind or "all"]["chosen"] = dict(chosen)
        network = per_image(rows, "unet", budget, part="network")
        summary[f"network_{budget}"] = {kind or "all": compare(network, forest, kind) for kind in groups}
        if budget == main and len(budgets) > 1 and set(method) - curve_ids:
            method = {i: scores for i, scores in method.items() if i in curve_ids}
            summary[f"unet_{budget}_curve"] = {kind or "all": compare(method, forest, kind) for kind in groups}
    if zero_shot:
        method = per_image(rows, "zero_shot")
        summary["zero_shot"] = {kind or "all": compare(method, forest, kind) for kind in groups}
    return summary


def finetune_drops(rows: list[dict], budget: str) -> dict:
    """Per image, how far the fine-tuned model's IoU falls below its start's zero-shot IoU (positive: worse)."""
    tuned, start = per_image(rows, "unet", budget), per_image(rows, "zero_shot")
    drops = {
        i: round(start[i]["iou"] - tuned[i]["iou"], 4) for i in tuned if "iou" in tuned[i] and "iou" in start.get(i, {})
    }
    worst = max(drops, key=drops.get) if drops else None
    return {"images": len(drops), "worst": {"id": worst, "drop": drops[worst]} if worst else None, "drops": drops}


def criteria(summary: dict, main: str, curve: Sequence[str], drops: dict | None) -> list[dict]:
    """The issue-18 targets that this run measured (full dev set, 30 s, ≥ 2 seeds for the real verdict).
    A target fails when the method refused any of its images (e.g. a grey model on colour images)."""
    checks = []

    def check(name: str, row: dict | None, value, target: float, at_most: bool = False) -> None:
        if not row or not (row.get("images") or row.get("failed")):
            return
        value = value(row) if row.get("images") else None
        passed = value is not None and (value <= target if at_most else value >= target) and not row.get("failed")
        entry = {"target": name, "value": None if value is None else round(value, 4), "pass": bool(passed)}
        checks.append({**entry, "failed_images": row["failed"]} if row.get("failed") else entry)

    table = summary.get(f"unet_{main}", {})
    for group, row in table.items():
        check(f"{main} {group}: IoU - forest >= 0.05", row, lambda r: r["delta"]["iou"], 0.05)
        check(f"{main} {group}: CC F1 - forest >= 0.10", row, lambda r: r["delta"]["f1"], 0.10)
    lost = "share of images lost by > 0.02 IoU <= 0.10"
    check(f"{main}: {lost}", table.get("all"), lambda r: r["lost_share"], 0.10, at_most=True)
    check(f"{main} fluo: --instances F1 >= 0.80", table.get("fluo"), lambda r: r["mean"]["f1_split"], 0.80)
    for budget in curve:
        if budget != main:
            row = summary.get(f"unet_{budget}", {}).get("all")
            check(f"{budget} (curve images): IoU - forest >= -0.01", row, lambda r: r["delta"]["iou"], -0.01)
    zero = summary.get("zero_shot", {})
    check("zero-shot fluo: --instances F1 >= 0.90", zero.get("fluo"), lambda r: r["mean"]["f1_split"], 0.90)
    check("zero-shot all kinds: --instances F1 >= 0.70", zero.get("all"), lambda r: r["mean"]["f1_split"], 0.70)
    if drops and drops["worst"]:
        row = {"images": drops["images"], "drop": drops["worst"]["drop"]}
        check(f"{main} fine-tuning: worst IoU drop below the start <= 0.02", row, lambda r: r["drop"], 0.02, True)
    return checks


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


def print_tables(report: dict, file=sys.stderr) -> None:
    header = f"{'':20s}{'kind':7s}{'n':>3s} {'IoU':>6s} {'forest':>6s} {'Δ':>6s}  {'CC F1':>6s} {'forest':>6s}"
    header += f" {'Δ':>6s}  {'inst F1':>7s} {'forest':>6s}  {'win':>4s} {'lost':>4s}  worst image (IoU)"
    print(header, file=file)
    for name, table in report["summary"].items():
        for kind, row in table.items():
            if not row.get("images"):
                print(f"{name:20s}{kind:7s}  0 images ({row.get('failed', 0)} refused)", file=file)
                continue
            mean, peer, delta = row["mean"], row["forest_mean"], row["delta"]
            print(
                f"{name:20s}{kind:7s}{row['images']:3d} {mean['iou']:6.3f} {peer['iou']:6.3f} {delta['iou']:+6.3f}"
                f"  {mean['f1']:6.3f} {peer['f1']:6.3f} {delta['f1']:+6.3f}  {mean['f1_split']:7.3f}"
                f" {peer['f1_split']:6.3f}  {row['win_rate']:4.2f} {row['lost_share']:4.2f}"
                f"  {row['worst_image']['id']} ({row['worst_image']['iou']:.3f})",
                file=file,
            )
    for check in report["criteria"]:
        refused = f" ({check['failed_images']} images refused)" if check.get("failed_images") else ""
        print(f"{'PASS' if check['pass'] else 'FAIL'}  {check['target']}: {check['value']}{refused}", file=file)


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
    parser.add_argument("--init", help="fine-tune from this model (directory, .zip or pretrained name)")
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
    same_start = args.init is not None and args.init == args.zero_shot and not args.no_train
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
