"""napari finds the plugin from the installed package and every python_name imports."""

import importlib

import numpy as np
from npe2 import PluginManager, PluginManifest


def test_napari_discovers_the_installed_plugin():
    manager = PluginManager()
    manager.discover()
    assert "napari-unet" in manager._manifests


def test_every_python_name_imports():
    manifest = PluginManifest.from_distribution("napari-unet")
    assert manifest.name == "napari-unet"
    for command in manifest.contributions.commands:
        assert command.id.startswith("napari-unet.")
        module, attr = command.python_name.split(":")
        assert callable(getattr(importlib.import_module(module), attr))


def test_sample_data_contributions_give_an_image_and_strokes():
    from napari_unet._sample_data import nuclei_2d, nuclei_3d

    for make, ndim in ((nuclei_2d, 2), (nuclei_3d, 3)):
        (image, image_meta, image_type), (strokes, strokes_meta, strokes_type) = make()
        assert (image_type, strokes_type) == ("image", "labels")
        assert image.ndim == ndim and strokes.shape == image.shape
        assert set(np.unique(strokes)) == {0, 1, 2}
        assert image_meta["scale"] == strokes_meta["scale"]


def test_zarr_reader_and_labels_writer_are_declared():
    manifest = PluginManifest.from_distribution("napari-unet")
    (reader,) = manifest.contributions.readers
    assert reader.filename_patterns == ["*.zarr"] and reader.accepts_directories
    (writer,) = manifest.contributions.writers
    assert writer.layer_types == ["labels"] and writer.filename_extensions == [".zarr"]
