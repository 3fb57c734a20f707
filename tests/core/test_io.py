"""Reading and writing image files on disk (TIFF, PNG, NPY, zarr, OME-Zarr)."""

import json

import numpy as np
import pytest
import tifffile
import zarr

from napari_unet.core.errors import UserInputError
from napari_unet.core.io.io import read_image, write_array


@pytest.mark.parametrize("suffix", [".tif", ".tiff", ".npy", ".zarr"])
@pytest.mark.parametrize("shape", [(17, 23), (3, 17, 23)])
def test_write_then_read_round_trip(tmp_path, rng, suffix, shape):
    data = rng.integers(0, 5, shape).astype(np.uint8)
    write_array(tmp_path / f"out{suffix}", data, spacing=(2.0, 1.0, 1.0)[-len(shape) :])
    assert np.array_equal(read_image(tmp_path / f"out{suffix}").data, data)
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"out{suffix}"]


def test_zarr_keeps_spacing_and_is_replaced_atomically(tmp_path):
    write_array(tmp_path / "a.zarr", np.zeros((4, 5, 6), np.uint8), spacing=(3.0, 1.0, 1.0))
    write_array(tmp_path / "a.zarr", np.ones((4, 5, 6), np.uint8), spacing=(3.0, 1.0, 1.0))
    image = read_image(tmp_path / "a.zarr")
    assert image.spacing == (3.0, 1.0, 1.0) and image.data.min() == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.zarr"]


def test_png_is_read(tmp_path, rng):
    from skimage.io import imsave

    data = rng.integers(0, 255, (20, 30)).astype(np.uint8)
    imsave(tmp_path / "x.png", data)
    assert np.array_equal(read_image(tmp_path / "x.png").data, data)


def test_imagej_tiff_spacing_is_read(tmp_path):
    data = np.zeros((4, 8, 8), np.uint16)
    tifffile.imwrite(
        tmp_path / "v.tif", data, imagej=True, resolution=(1 / 0.5, 1 / 0.5), metadata={"spacing": 2.0, "axes": "ZYX"}
    )
    assert read_image(tmp_path / "v.tif").spacing == (2.0, 0.5, 0.5)


@pytest.mark.parametrize(
    ("shape", "axes", "sizes", "spacing"),
    [
        ((4, 8, 8), "ZYX", {"PhysicalSizeZ": 2.0, "PhysicalSizeY": 0.5, "PhysicalSizeX": 0.5}, (2.0, 0.5, 0.5)),
        # units other than µm are converted, so the axes compare
        ((4, 8, 8), "ZYX", {"PhysicalSizeZ": 1.5, "PhysicalSizeX": 250, "PhysicalSizeXUnit": "nm"}, (1.5, 1.0, 0.25)),
        ((2, 3, 8, 8), "CZYX", {"PhysicalSizeZ": 3.0, "PhysicalSizeY": 0.2, "PhysicalSizeX": 0.2}, (3.0, 0.2, 0.2)),
        ((8, 8), "YX", {"PhysicalSizeY": 0.7, "PhysicalSizeX": 0.7}, (0.7, 0.7)),
    ],
)
def test_ome_tiff_physical_sizes_are_read(tmp_path, shape, axes, sizes, spacing):
    tifffile.imwrite(tmp_path / "v.ome.tif", np.zeros(shape, np.uint16), ome=True, metadata={"axes": axes, **sizes})
    assert read_image(tmp_path / "v.ome.tif").spacing == pytest.approx(spacing)


@pytest.mark.parametrize("zarr_format", [2, 3])
def test_ome_zarr_full_resolution_and_scale(tmp_path, rng, zarr_format):
    data = rng.integers(0, 1000, (6, 32, 32)).astype(np.uint16)
    root = zarr.open_group(str(tmp_path / "img.ome.zarr"), mode="w", zarr_format=zarr_format)
    root.create_array("0", data=data)
    root.create_array("1", data=data[:, ::2, ::2])
    multiscales = [
        {
            "axes": [{"name": n, "type": "space"} for n in "zyx"],
            "datasets": [
                {"path": "0", "coordinateTransformations": [{"type": "scale", "scale": [2.0, 0.5, 0.5]}]},
                {"path": "1", "coordinateTransformations": [{"type": "scale", "scale": [2.0, 1.0, 1.0]}]},
            ],
        }
    ]
    if zarr_format == 3:
        root.attrs["ome"] = {"version": "0.5", "multiscales": multiscales}
    else:
        root.attrs["multiscales"] = [{"version": "0.4", **multiscales[0]}]
    image = read_image(tmp_path / "img.ome.zarr")
    assert np.array_equal(image.data, data) and image.spacing == (2.0, 0.5, 0.5)


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("missing.tif", None, "file not found"),
        ("image.bmpx", b"x", "supported formats"),
        ("broken.tif", b"not a tiff at all", "cannot read"),
        ("broken.npy", b"\x93NUMPY garbage", "cannot read"),
    ],
)
def test_unreadable_input_is_a_clear_error(tmp_path, name, content, message):
    if content is not None:
        (tmp_path / name).write_bytes(content)
    with pytest.raises(UserInputError, match=message):
        read_image(tmp_path / name)


def test_pickled_npy_is_refused(tmp_path):
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(UserInputError, match="cannot read"):
        read_image(tmp_path / "obj.npy")


def test_bad_output_paths_are_refused_before_writing(tmp_path):
    with pytest.raises(UserInputError, match="does not exist"):
        write_array(tmp_path / "nope" / "out.tif", np.zeros((2, 2), np.uint8))
    with pytest.raises(UserInputError, match="use one of"):
        write_array(tmp_path / "out.jpg", np.zeros((2, 2), np.uint8))
    (tmp_path / "folder.zarr").mkdir()
    (tmp_path / "folder.zarr" / "notes.txt").write_text(json.dumps({}))
    with pytest.raises(UserInputError, match="not a zarr store"):
        write_array(tmp_path / "folder.zarr", np.zeros((2, 2), np.uint8))
    assert (tmp_path / "folder.zarr" / "notes.txt").exists()


@pytest.mark.parametrize(
    ("shape", "options", "channel_axis", "spacing"),
    [
        ((3, 8, 8), {}, None, None),  # a 3-plane stack with no metadata stays a volume
        ((5, 8, 8), {"imagej": True, "resolution": (2.0, 2.0), "metadata": {"axes": "ZYX"}}, None, (1.0, 0.5, 0.5)),
        ((2, 8, 8), {"metadata": {"axes": "CYX"}}, 0, None),  # axes stated by the writer
        # ImageJ channels without slices (issue 22: read as 2 planes before)
        ((2, 8, 8), {"imagej": True, "resolution": (2.0, 2.0), "metadata": {"channels": 2}}, 0, (0.5, 0.5)),
        ((4, 8, 8), {"imagej": True, "metadata": {"axes": "TYX"}}, None, (1.0, 1.0, 1.0)),  # frames are not channels
        ((2, 8, 8), {"ome": True, "metadata": {"axes": "CYX"}}, 0, None),  # OME-XML SizeC
        ((2, 8, 8), {"ome": True, "metadata": {"axes": "ZYX"}}, None, None),
        ((3, 2, 8, 8), {"ome": True, "metadata": {"axes": "ZCYX"}}, 1, None),
        ((2, 3, 8, 8), {"ome": True, "metadata": {"axes": "CZYX"}}, 0, None),
        (
            (3, 2, 8, 8),
            {"imagej": True, "resolution": (2.0, 2.0), "metadata": {"axes": "ZCYX", "spacing": 3.0}},
            1,
            (3.0, 0.5, 0.5),
        ),
        ((8, 8, 3), {}, 2, None),  # RGB samples
    ],
)
def test_tiff_channel_axis_only_where_the_file_states_it(tmp_path, shape, options, channel_axis, spacing):
    tifffile.imwrite(tmp_path / "t.tif", np.zeros(shape, np.uint8 if shape[-1] == 3 else np.uint16), **options)
    image = read_image(tmp_path / "t.tif")
    assert image.channel_axis == channel_axis and image.spacing == spacing


def test_rgb_png_has_its_channel_axis(tmp_path, rng):
    from skimage.io import imsave

    imsave(tmp_path / "rgb.png", rng.integers(0, 255, (12, 10, 3)).astype(np.uint8))
    image = read_image(tmp_path / "rgb.png")
    assert image.data.shape == (12, 10, 3) and image.channel_axis == -1


def _ome_zarr(path, data, axes, levels=("0",), scale=None):
    """A minimal OME-Zarr image (NGFF 0.4, zarr v2) with ``axes`` as given (dicts or bare names)."""
    root = zarr.open_group(str(path), mode="w", zarr_format=2)
    root.create_array("0", data=data)
    transforms = [{"type": "scale", "scale": scale or [1.0] * data.ndim}]
    datasets = [{"path": level, "coordinateTransformations": transforms} for level in levels]
    root.attrs["multiscales"] = [{"version": "0.4", "axes": axes, "datasets": datasets}]
    return path


@pytest.mark.parametrize(
    "axes",
    [
        [{"name": "c", "type": "channel"}, {"name": "y", "type": "space"}, {"name": "x", "type": "space"}],
        [{"name": "c"}, {"name": "y"}, {"name": "x"}],  # types are optional in NGFF 0.4
        ["c", "y", "x"],  # NGFF 0.3: names only
    ],
)
def test_ome_zarr_c_axis_is_channels_never_planes(tmp_path, rng, axes):
    data = rng.integers(0, 100, (2, 16, 16)).astype(np.uint16)
    image = read_image(_ome_zarr(tmp_path / "c.ome.zarr", data, axes))
    assert image.channel_axis == 0 and image.axes == "CYX" and image.spacing == (1.0, 1.0)
    assert image.view().shape == (2, 16, 16)


@pytest.mark.parametrize(
    ("write", "message"),
    [
        (
            lambda p: tifffile.imwrite(
                p / "t.tif", np.zeros((2, 8, 8), np.uint16), imagej=True, metadata={"channels": 2}
            ),
            "contradicts its ImageJ metadata, which gives axes CYX \\(channels on axis 0\\)",
        ),
        (
            lambda p: tifffile.imwrite(p / "t.tif", np.zeros((2, 8, 8), np.uint16), ome=True, metadata={"axes": "ZYX"}),
            "contradicts its OME-XML, which gives axes ZYX \\(no channel axis\\)",
        ),
    ],
)
def test_a_channel_axis_that_contradicts_the_metadata_is_refused(tmp_path, write, message):
    write(tmp_path)
    image = read_image(tmp_path / "t.tif")
    with pytest.raises(UserInputError, match=message) as refused:
        image.resolve_channel_axis(1)
    assert "\n" not in str(refused.value)
    assert image.resolve_channel_axis(image.channel_axis) == image.channel_axis  # the same axis is fine


def test_a_channel_axis_is_taken_where_the_file_states_no_axes(tmp_path):
    np.save(tmp_path / "a.npy", np.zeros((2, 8, 8), np.uint16))
    image = read_image(tmp_path / "a.npy")
    assert image.resolve_channel_axis(None) is None and image.resolve_channel_axis(0) == 0
    assert image.channels_first(0)[0].shape == (2, 8, 8)


@pytest.mark.parametrize(
    ("levels", "scale", "message"),
    [
        (("s0",), None, "names pyramid level 's0', but the store holds no such array"),
        (("0",), [1.0, 1.0], "the scale of level '0' has 2 values for its 3 axes"),
        ((), None, "names no full-resolution level"),
    ],
)
def test_damaged_ome_zarr_metadata_is_one_line_naming_the_store(tmp_path, levels, scale, message):
    axes = [{"name": n, "type": "space"} for n in "zyx"]
    path = _ome_zarr(tmp_path / "img.ome.zarr", np.zeros((2, 4, 4), np.uint8), axes, levels, scale)
    for lazy in (False, True):
        with pytest.raises(UserInputError, match=message) as refused:
            read_image(path, lazy=lazy)
        assert "img.ome.zarr" in str(refused.value) and "\n" not in str(refused.value)
