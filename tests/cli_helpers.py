"""Helpers shared by the command-line tests: run ``train`` on the ``files`` fixture, check a refusal."""

from napari_unet.cli import main


def train_argv(files, *extra) -> list[str]:
    """``napari-unet train`` arguments on the fixture files, with ``extra`` arguments."""
    return ["train", "--image", str(files / "image.tif"), "--labels", str(files / "strokes.tif"), *map(str, extra)]


def run_train(files, *extra):
    """``napari-unet train`` on the fixture files, with ``extra`` arguments; returns the exit code."""
    return main(train_argv(files, *extra))


def snapshot(folder):
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def refused(capsys, files, argv, *messages):
    """Run ``argv``; it must exit 2 with one stderr line holding every message, writing nothing."""
    before = snapshot(files)
    code = main([str(a) for a in argv])
    err = capsys.readouterr().err
    assert code == 2, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    for message in messages:
        assert message in err, err
    assert snapshot(files) == before
