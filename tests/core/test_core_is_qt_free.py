"""The core must import no Qt/napari: it runs on GPU machines and in headless jobs without them."""

import subprocess
import sys

FORBIDDEN = ("qtpy", "PyQt5", "PyQt6", "PySide2", "PySide6", "napari", "magicgui", "superqt")


def test_core_and_cli_import_no_gui_modules():
    code = (
        "import sys, pkgutil, importlib, napari_unet.core as core, napari_unet.cli, napari_unet.sample_data\n"
        "for m in pkgutil.walk_packages(core.__path__, 'napari_unet.core.'): importlib.import_module(m.name)\n"
        f"print(sorted(n for n in sys.modules if n.split('.')[0] in {FORBIDDEN!r}))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_package_import_is_lazy():
    code = "import sys, napari_unet; print('torch' in sys.modules, 'napari' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.split() == ["False", "False"]


def test_core_imports_nothing_from_outside_core():
    """The core is a package of its own: no import (absolute, or relative and resolved against the module's
    package) of a ``napari_unet`` module outside ``napari_unet.core``, in any of its subpackages, so it can move
    or ship alone."""
    import ast
    from pathlib import Path

    import napari_unet.core as core

    root = Path(core.__file__).parent
    outside = []
    for path in sorted(root.rglob("*.py")):
        parts = ["napari_unet", "core", *path.relative_to(root).with_suffix("").parts]
        package = parts if parts[-1] == "__init__" else parts[:-1]
        package = package[:-1] if package[-1] == "__init__" else package
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package[: len(package) - (node.level - 1)]
                    names = [".".join(base + ([node.module] if node.module else []))]
                else:
                    names = [node.module or ""]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            else:
                continue
            for name in names:
                if name.split(".")[0] == "napari_unet" and name.split(".")[:2] != ["napari_unet", "core"]:
                    outside.append(f"{path.relative_to(root)}: {name}")
    assert outside == []
