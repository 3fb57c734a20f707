"""The first Train of a napari session: how long the dock takes to open and how long the first mask takes
after Train, each in a fresh process (nothing of the engine imported before), on the GUI benchmark's real
dev image (a 2018 Data Science Bowl image read from ../shared, with simulated strokes). Needs a display;
prints one JSON object::

    xvfb-run -a -s "-screen 0 1600x1000x24" python benchmarks/gui_cold_start.py --runs 3
"""

from __future__ import annotations

import argparse
import datetime
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))


def one_session(image_file: str, strokes_file: str) -> dict:
    """In this (fresh) process: open a viewer with the image and strokes, time the dock's opening, click
    Train and time the first mask on screen."""
    import napari
    from qtpy.QtWidgets import QApplication

    viewer = napari.Viewer()
    viewer.window.resize(1500, 900)
    image = viewer.add_image(np.load(image_file), name="real")
    strokes = viewer.add_labels(np.load(strokes_file), name="real strokes")
    app = QApplication.instance()
    started = time.perf_counter()
    _, widget = viewer.window.add_plugin_dock_widget("napari-unet", "U-Net trainer")
    dock_s = time.perf_counter() - started
    widget.image_combo.value, widget.strokes_combo.value = image, strokes
    app.processEvents()
    started = time.perf_counter()
    widget.train()
    first_mask_s = None
    while first_mask_s is None and time.perf_counter() - started < 60:
        app.processEvents()
        time.sleep(0.002)
        if widget.session is not None and widget.session.previews_shown:
            first_mask_s = time.perf_counter() - started
    widget.stop()
    while widget.session is not None:
        app.processEvents()
        time.sleep(0.005)
    widget.shutdown()
    viewer.close()
    return {"dock_open_s": round(dock_s, 2), "first_mask_s": None if first_mask_s is None else round(first_mask_s, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="fresh sessions, one after another")
    parser.add_argument("--session", nargs=2, help=argparse.SUPPRESS)  # image and strokes files: one session here
    args = parser.parse_args()
    if args.session:
        print(json.dumps(one_session(*args.session)))
        return
    from gui_cases import REAL_ID
    from real_images import load_image, simulate_strokes

    real = load_image("dev", REAL_ID, "fluo")
    with tempfile.TemporaryDirectory() as folder:
        files = [str(Path(folder) / "image.npy"), str(Path(folder) / "strokes.npy")]
        np.save(files[0], real.image)
        np.save(files[1], simulate_strokes(real.labels, seed=0))
        sessions = []
        for _ in range(args.runs):
            done = subprocess.run(
                [sys.executable, __file__, "--session", *files], capture_output=True, text=True, check=True
            )
            sessions.append(json.loads(done.stdout.strip().splitlines()[-1]))
    print(
        json.dumps(
            {
                "benchmark": "gui_cold_start",
                "date": datetime.date.today().isoformat(),
                "image": f"dsb2018 dev {REAL_ID} (fluo, {real.image.shape[0]}x{real.image.shape[1]})",
                "sessions": sessions,
            }
        )
    )


if __name__ == "__main__":
    main()
