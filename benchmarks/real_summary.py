"""Summaries of a real-image benchmark run (``real_quality.py``): per-image means over seeds, per-kind
comparisons with the forest, the issue-18 targets, and the tables printed to stderr."""

from __future__ import annotations

import sys
from collections import Counter
from collections.abc import Sequence

import numpy as np
from real_images import KINDS

METRICS = ("iou", "f1", "f1_split")
LOSS_MARGIN = 0.02  # an image counts as lost to the forest below its IoU minus this


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
