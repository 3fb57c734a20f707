"""Live training in a real napari viewer: time to the first prediction, refreshes per minute, and how
long the Qt event loop stalls while training runs (a 10 ms QTimer's late ticks).

Needs a display (run under ``xvfb-run`` on a headless machine). Prints one JSON object::

    xvfb-run -a python benchmarks/gui_responsiveness.py --seconds 30
"""

from __future__ import annotations

import argparse
import json
import platform
import time

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=30.0, help="how long to train")
    parser.add_argument("--screenshot", help="save a screenshot of the window during training (PNG)")
    args = parser.parse_args()

    import napari
    import torch
    from qtpy.QtCore import QTimer
    from qtpy.QtWidgets import QApplication

    viewer = napari.Viewer()
    viewer.window.resize(1400, 850)
    viewer.open_sample("napari-unet", "nuclei_2d")
    _, widget = viewer.window.add_plugin_dock_widget("napari-unet", "U-Net trainer")
    app = QApplication.instance()
    for _ in range(20):  # let the window settle before measuring
        app.processEvents()
        time.sleep(0.01)

    ticks: list[float] = []
    timer = QTimer()
    timer.setInterval(10)
    timer.timeout.connect(lambda: ticks.append(time.perf_counter()))
    timer.start()
    started = time.perf_counter()
    widget.train()
    session = widget.session
    first_prediction = None
    while time.perf_counter() - started < args.seconds:
        app.processEvents()
        if first_prediction is None and session.previews_shown:
            first_prediction = time.perf_counter() - started
        time.sleep(0.001)
    if args.screenshot:
        viewer.screenshot(args.screenshot, canvas_only=False)
    refreshes = session.previews_shown
    steps = len(widget.loss_plot.losses)
    stop_started = time.perf_counter()
    widget.stop()
    while widget.session is not None:
        app.processEvents()
        time.sleep(0.001)
    stop_seconds = time.perf_counter() - stop_started
    timer.stop()
    intervals_ms = np.diff(ticks) * 1000
    stalls_ms = np.clip(intervals_ms - 10, 0, None)
    report = {
        "benchmark": "gui_responsiveness",
        "image": "nuclei 2D sample, 512x512",
        "device": str(widget.model.config.history[-1]["device"]),
        "torch_threads_training": torch.get_num_threads(),
        "cpu": platform.processor() or platform.machine(),
        "train_seconds": args.seconds,
        "first_prediction_s": round(first_prediction, 2) if first_prediction else None,
        "refreshes": refreshes,
        "refreshes_per_minute": round(refreshes * 60 / args.seconds, 1),
        "training_steps": steps,
        "stop_to_finished_s": round(stop_seconds, 3),
        "timer_ticks": len(ticks),
        "stall_p95_ms": round(float(np.percentile(stalls_ms, 95)), 1),
        "stall_max_ms": round(float(stalls_ms.max()), 1),
    }
    print(json.dumps(report, indent=2))
    widget.shutdown()
    viewer.close()


if __name__ == "__main__":
    main()
