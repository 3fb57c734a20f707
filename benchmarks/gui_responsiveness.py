"""Live training in a real napari viewer while a simulated user paints: how long the Qt event loop stalls,
how soon a prediction layer and a mask as good as the forest appear, how often it refreshes, how fast Stop
ends the worker and shows the final model's mask, peak memory, and training steps/s in the dock against
the same training run headless in the same process. The peer for the stalls, in the same run: napari
itself with the same dabs painted and nothing training (``napari_alone_*``).

Three cases (see gui_cases.py): ``real`` (a 2018 Data Science Bowl dev image, read from ../shared),
``large2d`` (4096² uint16) and ``zarr3d`` (64×1024×1024 uint16 zarr, opened lazily). Each case runs in
its own process (so peak memory is its own). Needs a display; prints one JSON object::

    xvfb-run -a -s "-screen 0 1600x1000x24" python benchmarks/gui_responsiveness.py --seconds 30 --stops 20
"""

from __future__ import annotations

import argparse
import datetime
import functools
import itertools
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from gui_cases import CASES, Case, dock_inputs, forest_iou, make_case
from gui_probes import TICK_MS, LoopProbe, MemoryPeak, run_event_loop, timed_full_collection

PAINT_EVERY_S = 0.2


def rate(reports: list[tuple[int, float]]) -> float | None:
    """U-Net steps per second between the first and last report of a step (report 0 is the forest's)."""
    steps = [(s, t) for s, t in reports if s >= 1]
    if len(steps) < 2 or steps[-1][1] <= steps[0][1]:
        return None
    return (steps[-1][0] - steps[0][0]) / (steps[-1][1] - steps[0][1])


def headless_rate(case: Case, seconds: float) -> float | None:
    """Steps/s of the same training run without napari (same image box and strokes), with torch's own
    thread count, as ``napari-unet train`` runs; stopped after ``seconds`` of steps."""
    from napari_unet.core.api import prepare_model
    from napari_unet.core.models.config import TrainConfig
    from napari_unet.core.train.training import train_steps

    image, strokes, _ = dock_inputs(case)
    spacing = case.spacing if strokes.ndim == 3 else None
    model, annotations = prepare_model(image, strokes, dim=None, spacing=spacing, init=None)
    loop = train_steps(model, image, annotations, TrainConfig(time_budget=None, steps=None))
    reports = [(0, next(loop).elapsed)]
    while reports[-1][1] - reports[0][1] < seconds:
        report = loop.send(None)
        reports.append((report.step, report.elapsed))
    loop.close()  # no end-of-training pass: only the rate is wanted
    return rate(reports)


def open_viewer(case: Case):
    import napari

    viewer = napari.Viewer()
    viewer.window.resize(1500, 900)
    image = viewer.add_image(case.image, name=case.name, scale=case.spacing)
    strokes = viewer.add_labels(case.strokes.copy(), name=f"{case.name} strokes", scale=case.spacing)
    strokes.brush_size = 3
    if case.strokes.ndim == 3:
        viewer.dims.set_current_step(0, int(np.median(case.targets[2][:, 0])))
    _, widget = viewer.window.add_plugin_dock_widget("napari-unet", "U-Net trainer")
    widget.image_combo.value, widget.strokes_combo.value = image, strokes
    return viewer, widget, strokes


def settle(app, seconds: float) -> None:
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        app.processEvents()
        time.sleep(0.005)


def paint(strokes, case: Case, count: int) -> None:
    """The simulated user's ``count``-th dab: background and nucleus in turn, at the case's targets."""
    value = 1 + count % 2
    points = case.targets[value]
    strokes.paint(tuple(int(c) for c in points[(count // 2) % len(points)]), value)


def iou_now(viewer, case: Case) -> float | None:
    if case.truth is None or f"{case.name} prediction" not in viewer.layers:
        return None
    from napari_unet.core.instances.metrics import foreground_iou

    return float(foreground_iou(np.asarray(viewer.layers[f"{case.name} prediction"].data) == 2, case.truth > 0))


def napari_alone(strokes, case: Case, seconds: float) -> dict:
    """The peer in the same run: napari's own event-loop stalls and CPU while the same dabs are painted
    and nothing trains (then the strokes are put back as they were)."""
    before = np.array(strokes.data, copy=True)
    dabs = itertools.count()
    probe = LoopProbe()
    probe.timer.start()
    cpu = os.times()
    run_event_loop(seconds, [(PAINT_EVERY_S, lambda: paint(strokes, case, next(dabs)))])
    used = os.times()
    probe.stop()
    strokes.data = before
    cores = (used.user + used.system - cpu.user - cpu.system) / seconds
    stalls = probe.summary()
    return {f"napari_alone_{key}": stalls[key] for key in ("stall_p50_ms", "stall_p95_ms", "stall_max_ms")} | {
        "napari_alone_cpu_cores": round(cores, 2)
    }


def train_and_paint(viewer, widget, strokes, case: Case, seconds: float, screenshot: str | None) -> dict:
    """Train for ``seconds`` with a dab every 0.2 s; when things first appeared, relative to Train."""
    reports: list[tuple[int, float]] = []
    seen = {"layer": None, "mask": None, "within_forest": None}
    ious: list[float] = []
    dabs = itertools.count()
    started = time.perf_counter()
    widget.train()
    session = widget.session
    session.worker.yielded.connect(lambda r: reports.append((r.step, r.elapsed)))
    shown = 0

    def watch() -> None:
        nonlocal screenshot, shown
        now = time.perf_counter()
        if seen["layer"] is None and f"{case.name} prediction" in viewer.layers:
            seen["layer"] = now - started
        if session.previews_shown > shown:
            shown = session.previews_shown
            seen["mask"] = seen["mask"] or now - started
            iou = iou_now(viewer, case)
            if iou is not None:
                ious.append(iou)
                if seen["within_forest"] is None and iou >= case.forest_iou - 0.02:
                    seen["within_forest"] = now - started
        if screenshot and now - started >= seconds / 2:
            viewer.screenshot(screenshot, canvas_only=False)
            screenshot = None

    run_event_loop(seconds, [(PAINT_EVERY_S, lambda: paint(strokes, case, next(dabs))), (TICK_MS / 1000, watch)])
    return {
        "first_layer_s": _round(seen["layer"]),
        "first_mask_s": _round(seen["mask"]),
        "first_mask_within_forest_s": _round(seen["within_forest"]),
        "ious_on_screen": [round(i, 3) for i in ious],
        "refreshes_per_minute": round(shown * 60 / seconds, 1),
        "dabs_painted": next(dabs),
        "dock_steps_per_s": _round(rate(reports)),
        "showing_at_end": widget.status.text().split("\n")[1] if "\n" in widget.status.text() else None,
    }


def _round(value: float | None, digits: int = 2) -> float | None:
    return None if value is None else round(value, digits)


def stop_and_wait(app, widget, timeout: float = 120.0, final_too: bool = True) -> tuple[float, float | None]:
    """Press Stop: seconds until the training worker finished, and (``final_too``) until the final model's
    mask of the region on screen was written (None if it did not come within ``timeout``)."""
    session = widget.session
    finished: list[float] = []
    session.worker.finished.connect(lambda: finished.append(time.perf_counter()))
    pressed = time.perf_counter()
    widget.stop()
    while not finished and time.perf_counter() - pressed < timeout:
        app.processEvents()
        time.sleep(0.001)
    final = session.final if final_too else None
    while final is not None and final.regions_done < 1 and time.perf_counter() - pressed < timeout:
        app.processEvents()
        time.sleep(0.001)
    shown = time.perf_counter() - pressed if final is not None and final.regions_done else None
    return finished[0] - pressed, shown


def _record_step(steps: list[int], report) -> None:
    steps.append(report.step)


def more_stops(app, widget, count: int, memory: MemoryPeak) -> tuple[list[float], list[int]]:
    """``count`` more Train → Stop cycles, Stop pressed while a preview is on its way (when it comes); the
    seconds from each Stop until the worker finished, and the peak memory growth (MB) by the end of each."""
    latencies, peaks = [], []
    for _ in range(count):
        widget.train()
        session = widget.session
        steps: list[int] = []
        session.worker.yielded.connect(functools.partial(_record_step, steps))
        started = time.perf_counter()
        while (not steps or steps[-1] < 3 or not session.preview_pending) and time.perf_counter() - started < 60:
            app.processEvents()
            time.sleep(0.001)
        latencies.append(stop_and_wait(app, widget, final_too=False)[0])
        peaks.append(round((memory.peak - memory.start_rss) / 2**20))
    return latencies, peaks


def run_case(name: str, seconds: float, stops: int, screenshot: str | None) -> dict:
    from qtpy.QtWidgets import QApplication

    with tempfile.TemporaryDirectory() as folder:
        case = make_case(name, Path(folder))
        headless = headless_rate(case, seconds)
        memory = MemoryPeak()
        viewer, widget, strokes = open_viewer(case)
        app = QApplication.instance()
        settle(app, 1.0)
        alone = napari_alone(strokes, case, min(seconds, 10.0))
        settle(app, 1.0)
        probe = LoopProbe()
        probe.timer.start()
        memory.start()
        result = train_and_paint(viewer, widget, strokes, case, seconds, screenshot)
        probe.stop()  # the stalls while painting and training; then, apart, while stopping
        painting_peak = memory.peak
        stops_probe = LoopProbe()
        stops_probe.timer.start()
        stop_s, final_shown_s = stop_and_wait(app, widget)
        first_stop_peak = memory.peak
        more, peaks = more_stops(app, widget, stops - 1, memory)
        latencies = [stop_s, *more]
        stops_probe.stop()
        memory.stop()
        full_collection_s = timed_full_collection()
        history = widget.model.config.history[-1]
        report = {"case": name, "image": case.description, "forest_iou": _round(case.forest_iou, 3)}
        if case.truth is not None:  # the forest on the strokes as painted by the end (the simulated ones + dabs)
            report["forest_iou_on_final_strokes"] = round(forest_iou(case, np.array(strokes.data)), 3)
        report |= (
            result
            | probe.summary()
            | alone
            | {
                "headless_steps_per_s": _round(headless),
                "dock_vs_headless": _round(result["dock_steps_per_s"] / headless)
                if headless and result["dock_steps_per_s"]
                else None,
                "stops_stall_max_ms": stops_probe.summary()["stall_max_ms"],
                "full_collection_at_end_ms": round(full_collection_s * 1000, 1),
                "stop_to_worker_finished_s": [round(s, 3) for s in latencies],
                "stop_p95_s": round(float(np.percentile(latencies, 95)), 3),
                "stop_to_final_mask_on_screen_s": _round(final_shown_s),
                "peak_rss_growth_mb": round((memory.peak - memory.start_rss) / 2**20),
                "peak_rss_growth_while_painting_mb": round((painting_peak - memory.start_rss) / 2**20),
                "peak_rss_growth_to_first_final_mask_mb": round((first_stop_peak - memory.start_rss) / 2**20),
                "peak_rss_growth_by_later_cycle_mb": peaks,
                "painted_voxels_trained_on": history["painted_voxels"],
                "held_out_voxels": history["held_out_voxels"],
            }
        )
        widget.shutdown()
        viewer.close()
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--case", choices=[*CASES, "all"], default="all")
    parser.add_argument("--seconds", type=float, default=30.0, help="how long to train and paint")
    parser.add_argument("--stops", type=int, default=5, help="Train → Stop cycles timed (the first is the long run)")
    parser.add_argument("--screenshot", help="save a screenshot of the window half-way through (PNG; one case)")
    args = parser.parse_args()
    if args.case != "all":
        print(json.dumps(run_case(args.case, args.seconds, args.stops, args.screenshot)), flush=True)
        return
    runs = []
    for case in CASES:
        command = [sys.executable, __file__, "--case", case, "--seconds", str(args.seconds), "--stops", str(args.stops)]
        # stderr passes through, so a failing case shows why
        out = subprocess.run(command, stdout=subprocess.PIPE, text=True, check=False).stdout
        runs.append(json.loads(out.strip().splitlines()[-1]))
        print(json.dumps(runs[-1]), file=sys.stderr, flush=True)  # kept if a later case is cut short
    import torch

    print(
        json.dumps(
            {
                "benchmark": "gui_responsiveness",
                "date": datetime.date.today().isoformat(),
                "cpu": platform.processor() or platform.machine(),
                "cores": os.cpu_count(),
                "torch": torch.__version__,
                "torch_threads_default": torch.get_num_threads(),
                "seconds": args.seconds,
                "cases": runs,
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
