"""The core must import no Qt/napari: it runs on GPU machines and in headless jobs without them."""

import subprocess
import sys

FORBIDDEN = ("qtpy", "PyQt5", "PyQt6", "PySide2", "PySide6", "napari", "magicgui", "superqt")


def test_core_and_cli_import_no_gui_modules():
    code = (
        "import sys, pkgutil, importlib, napari_unet.core as core, napari_unet.cli, napari_unet.sample_data\n"
        "for m in pkgutil.iter_modules(core.__path__): importlib.import_module('napari_unet.core.' + m.name)\n"
        f"print(sorted(n for n in sys.modules if n.split('.')[0] in {FORBIDDEN!r}))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_package_import_is_lazy():
    code = "import sys, napari_unet; print('torch' in sys.modules, 'napari' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.split() == ["False", "False"]


def test_core_imports_nothing_from_outside_core():
    """The core is a package of its own: no ``napari_unet.X`` import (absolute, or relative ``..``)
    outside ``napari_unet.core``, so it can move or ship alone."""
    import ast
    from pathlib import Path

    import napari_unet.core as core

    outside = []
    for path in sorted(Path(core.__file__).parent.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                names = [node.module or ""] if node.level == 0 else ([] if node.level == 1 else [".."])
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            else:
                continue
            for name in names:
                if name == ".." or (name.startswith("napari_unet") and not name.startswith("napari_unet.core")):
                    outside.append(f"{path.name}: {name}{node.module or ''}")
    assert outside == []
