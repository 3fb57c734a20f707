"""Out-of-core prediction into OME-Zarr labels: same result as in memory, valid NGFF, lazy reads,
atomic replacement (also under SIGKILL), and a real dask.distributed cluster."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import numpy as np
import pytest
import zarr
from ome_zarr.writer import write_multiscales_metadata

from napari_unet.core.api import train
from napari_unet.core.data.synthetic import synthetic_nuclei
from napari_unet.core.errors import UserInputError
from napari_unet.core.infer.blockwise import BlockPlan
from napari_unet.core.infer.inference import predict
from napari_unet.core.infer.zarr_output import predict_to_zarr
from napari_unet.core.io.io import read_image
from napari_unet.core.io.ngff import ngff_format, read_ome_image
from napari_unet.core.models.model import UNET

TILE = 64
BLOCK = 96


def _unet(model):
    """These tests are about the U-Net's tiled blocks: show the U-Net whatever the trainer chose (block-wise
    prediction of the pixel classifier and the blend: test_selection.py)."""
    model.config.selection = {**model.config.selection, "chosen": UNET}
    return model


@pytest.fixture(scope="module")
def model_2d(nuclei_2d):
    return _unet(train(nuclei_2d.image, nuclei_2d.strokes, steps=80, seed=0, base_channels=8, depth=3, device="cpu"))


@pytest.fixture(scope="module")
def model_3d(nuclei_3d):
    return _unet(
        train(
            nuclei_3d.image,
            nuclei_3d.strokes,
            steps=10,
            seed=0,
            base_channels=4,
            depth=3,
            spacing=(2.0, 1.0, 1.0),
            device="cpu",
            patch_size=(8, 32, 32),
        )
    )


def write_ome_image(path, data, axes, scale, translation=None, version="0.4", chunks=None):
    """An OME-Zarr image with one level, written with ome-zarr-py's metadata writer."""
    group = zarr.open_group(str(path), mode="w", zarr_format=2 if version == "0.4" else 3)
    group.create_array("0", data=data, chunks=chunks or tuple(min(s, 64) for s in data.shape))
    transforms = [{"type": "scale", "scale": scale}]
    if translation is not None:
        transforms.append({"type": "translation", "translation": translation})
    write_multiscales_metadata(
        group,
        [{"path": "0", "coordinateTransformations": transforms}],
        fmt=ngff_format(version),
        axes=[{"name": n, "type": {"c": "channel", "t": "time"}.get(n, "space")} for n in axes],
    )
    return path


@pytest.fixture(scope="module")
def image_2d():
    return synthetic_nuclei((300, 230), seed=21).image


@pytest.mark.parametrize("version", ["0.4", "0.5"])
def test_out_of_core_equals_in_memory_and_copies_the_geometry(tmp_path, model_2d, image_2d, version):
    source = write_ome_image(tmp_path / "img.zarr", image_2d, "yx", [0.5, 0.25], [10.0, 20.0], version)
    plan = BlockPlan.for_model(model_2d, image_2d.shape, TILE, 0.25, BLOCK)
    assert len(plan.blocks) > 4  # really cut into blocks

    predict_to_zarr(model_2d, source, tmp_path / "out.zarr", tile_size=TILE, block_size=BLOCK, device="cpu")

    whole = predict(model_2d, image_2d, tile_size=TILE, probabilities=True, device="cpu")
    group = zarr.open_group(str(tmp_path / "out.zarr"), mode="r")
    written = np.asarray(group["0"])
    assert len(np.unique(whole.labels)) == 2  # a real two-class result, not a constant
    # blocks see other tiles than one whole-image pass: few voxels flip, nearly all of them ones the
    # (briefly trained) model is unsure of (a voxel near the edges of its tiles in one pass can move more)
    differ = written != whole.labels
    assert differ.mean() < 0.03
    assert np.mean(np.abs(whole.probabilities[1][differ] - 0.5) < 0.2) > 0.9
    ome = read_ome_image(group)
    assert (ome.version, ome.scale, ome.translation) == (version, [0.5, 0.25], [10.0, 20.0])
    assert [a["name"] for a in ome.axes] == ["y", "x"]


def test_label_image_is_valid_ngff_with_a_nearest_pyramid(tmp_path, model_2d, image_2d):
    from ome_zarr.io import parse_url
    from ome_zarr.reader import Label, Reader
    from ome_zarr_models.v04 import ImageLabel

    big = np.tile(image_2d, (2, 3))  # 600×690: halved until at most 256
    source = write_ome_image(tmp_path / "img.zarr", big, "yx", [1.0, 1.0])
    predict_to_zarr(model_2d, source, tmp_path / "out.zarr", tile_size=TILE, device="cpu")

    validated = ImageLabel.from_zarr(zarr.open_group(str(tmp_path / "out.zarr"), mode="r"))  # raises if invalid
    assert validated.attributes.image_label.colors[0].label_value == 1
    nodes = list(Reader(parse_url(str(tmp_path / "out.zarr")))())
    assert any(isinstance(spec, Label) for spec in nodes[0].specs)
    levels = [np.asarray(level) for level in nodes[0].data]
    assert [level.shape for level in levels] == [(600, 690), (300, 345), (150, 173)]
    np.testing.assert_array_equal(levels[2], levels[0][::4, ::4])
    attrs = dict(zarr.open_group(str(tmp_path / "out.zarr"), mode="r").attrs)
    assert attrs["multiscales"][0]["datasets"][1]["coordinateTransformations"][0]["scale"] == [2.0, 2.0]
    assert {"label-value": 2, "class": "class 2"} in attrs["image-label"]["properties"]


def test_writing_into_the_images_labels_group_lists_it_once(tmp_path, model_2d, image_2d):
    from ome_zarr.io import parse_url
    from ome_zarr.reader import Reader

    source = write_ome_image(tmp_path / "img.zarr", image_2d, "yx", [1.0, 1.0], version="0.5")
    for _ in range(2):
        predict_to_zarr(model_2d, source, source / "labels" / "unet", tile_size=TILE, device="cpu")

    labels = zarr.open_group(str(source / "labels"), mode="r")
    assert dict(labels.attrs)["ome"]["labels"] == ["unet"]
    assert sorted(p.name for p in (source / "labels").iterdir()) == ["unet", "zarr.json"]
    assert read_ome_image(zarr.open_group(str(source), mode="r")).label_names == ["unet"]
    names = [node.metadata.get("name") for node in Reader(parse_url(str(source)))()]
    assert "unet" in names


def test_3d_anisotropic_with_channels(tmp_path, model_3d, nuclei_3d):
    volume = np.stack([nuclei_3d.image] * 1)  # CZYX with one channel
    source = write_ome_image(tmp_path / "vol.zarr", volume, "czyx", [1.0, 2.0, 1.0, 1.0], chunks=(1, 4, 16, 16))
    out = tmp_path / "out.zarr"
    predict_to_zarr(model_3d, source, out, tile_size=32, block_size=24, device="cpu", probabilities=True)
    whole = predict(model_3d, nuclei_3d.image, tile_size=32, device="cpu", probabilities=True)
    written = read_image(out)
    assert written.data.shape == nuclei_3d.image.shape
    assert written.spacing == (2.0, 1.0, 1.0)
    # blocks put tile borders elsewhere than the whole volume does: small differences, and only a
    # 10-step model's near-ties may change class
    assert np.abs(read_image(tmp_path / "out_probabilities.zarr").data - whole.probabilities).mean() < 0.01
    changed = written.data != whole.labels
    assert changed.mean() < 0.02
    assert np.mean(np.abs(whole.probabilities[1] - whole.probabilities[0])[changed] < 0.2) > 0.9  # as in 2D


class CountingArray:
    """A zarr array wrapper that records which regions were read."""

    def __init__(self, array):
        self.array, self.reads = array, []
        self.shape, self.dtype = array.shape, array.dtype

    def __getitem__(self, key):
        self.reads.append(key)
        return self.array[key]


class CountingStore(zarr.storage.WrapperStore):
    """A store that records every key read from it."""

    def __init__(self, store):
        super().__init__(store)
        self.keys = []

    async def get(self, key, prototype, byte_range=None):
        self.keys.append(key)
        return await self._store.get(key, prototype, byte_range)


def test_lazy_read_touches_only_the_chunks_it_needs(tmp_path, image_2d):
    from napari_unet.core.io.lazy import ChannelsFirstView

    source = write_ome_image(tmp_path / "img.zarr", image_2d, "yx", [1.0, 1.0])
    lazy = read_image(source, lazy=True)
    assert isinstance(lazy.data, zarr.Array)  # opened, not loaded
    store = CountingStore(zarr.storage.LocalStore(str(source / "0"), read_only=True))
    array = zarr.open_array(store=store, mode="r")
    store.keys.clear()
    region = ChannelsFirstView(array)[(slice(None), slice(0, 64), slice(64, 128))]
    assert region.shape == (1, 64, 64)
    assert store.keys == ["0.1"]  # one 64×64 chunk of 20


def test_blocks_read_only_their_region(model_2d, image_2d):
    from napari_unet.core.infer.blockwise import BlockSettings, predict_blocks_local
    from napari_unet.core.io.lazy import ChannelsFirstView

    counting = CountingArray(image_2d)
    plan = BlockPlan.for_model(model_2d, image_2d.shape, TILE, 0.25, BLOCK)
    labels = np.zeros(image_2d.shape, np.uint8)
    settings = BlockSettings(
        ChannelsFirstView(counting), [[0.0, 1.0]], plan, labels, tile_size=TILE, overlap=0.25, device="cpu"
    )
    predict_blocks_local(model_2d, settings)
    largest = max(np.prod([s.stop - s.start for s in key]) for key in counting.reads)
    assert len(counting.reads) == len(plan.blocks)
    assert largest <= np.prod([b + 2 * h for b, h in zip(plan.block_shape, plan.halo)])
    assert largest < image_2d.size / 2
    assert labels.min() >= 1  # every block was written


def test_bad_outputs_are_refused_before_any_work(tmp_path, model_2d, image_2d):
    source = write_ome_image(tmp_path / "img.zarr", image_2d, "yx", [1.0, 1.0])
    plain = tmp_path / "plain.zarr"
    zarr.open_group(str(plain), mode="w")
    with pytest.raises(UserInputError, match=r"must be a \.zarr path"):  # plain zarr: no image labels
        predict_to_zarr(model_2d, source, plain / "labels" / "x", device="cpu")
    with pytest.raises(UserInputError, match="do not fit"):
        other = write_ome_image(tmp_path / "other.zarr", image_2d[:100], "yx", [1.0, 1.0])
        predict_to_zarr(model_2d, source, other / "labels" / "x", device="cpu")
    with pytest.raises(UserInputError, match=r"\.zarr path"):
        predict_to_zarr(model_2d, source, tmp_path / "out.tif", device="cpu")
    with pytest.raises(UserInputError, match="probabilities are not labels"):
        predict_to_zarr(model_2d, source, source / "labels" / "x", probabilities=True, device="cpu")
    with pytest.raises(UserInputError, match=r"cannot write OME-Zarr 0\.3"):
        predict_to_zarr(model_2d, source, tmp_path / "out.zarr", ngff_version="0.3", device="cpu")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["img.zarr", "other.zarr", "plain.zarr"]
    assert not (source / "labels").exists() and not (tmp_path / "other.zarr" / "labels").exists()


def test_probabilities_are_an_ome_zarr_image(tmp_path, model_2d, image_2d):
    source = write_ome_image(tmp_path / "img.zarr", image_2d, "yx", [1.0, 1.0])
    predict_to_zarr(model_2d, source, tmp_path / "out.zarr", probabilities=True, tile_size=TILE, device="cpu")
    probabilities = read_image(tmp_path / "out_probabilities.zarr")
    assert probabilities.channel_axis == 0 and probabilities.data.shape == (2, *image_2d.shape)
    np.testing.assert_allclose(probabilities.data.sum(0), 1.0, atol=1e-4)


KILLED_WRITER = """
import sys
from napari_unet.core.infer.blockwise import BlockSettings
from napari_unet.core.infer.zarr_output import predict_to_zarr
from napari_unet.core.models.model import Model

original_write = BlockSettings.write

def slow_write(self, *args):
    original_write(self, *args)
    print("block written", flush=True)
    import time; time.sleep(0.2)

BlockSettings.write = slow_write
predict_to_zarr(Model.load(sys.argv[1]), sys.argv[2], sys.argv[3], tile_size=64, block_size=96, device="cpu")
"""


def test_sigkill_mid_export_leaves_the_previous_result(tmp_path, model_2d, image_2d):
    source = write_ome_image(tmp_path / "img.zarr", image_2d, "yx", [1.0, 1.0])
    out = tmp_path / "out.zarr"
    predict_to_zarr(model_2d, source, out, tile_size=TILE, device="cpu")
    before = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    model_2d.save(tmp_path / "model")

    writer = subprocess.Popen(
        [sys.executable, "-c", KILLED_WRITER, str(tmp_path / "model"), str(source), str(out)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert writer.stdout.readline().strip() == "block written"  # mid-export
    os.kill(writer.pid, signal.SIGKILL)
    writer.wait()
    leftovers = [p for p in tmp_path.iterdir() if p.name.startswith(".napari-unet-tmp-")]
    assert leftovers  # the half-written temporary is there, beside the intact output
    after = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert after == before
    assert read_image(out).data.shape == image_2d.shape

    predict_to_zarr(model_2d, source, out, tile_size=TILE, device="cpu")  # the next run cleans up
    assert sorted(p.name for p in tmp_path.iterdir()) == ["img.zarr", "model", "out.zarr"]


def test_a_dask_cluster_gives_the_local_result(tmp_path, model_2d, image_2d):
    from distributed import Client, LocalCluster

    source = write_ome_image(tmp_path / "img.zarr", image_2d, "yx", [1.0, 1.0])
    blocks = {"tile_size": TILE, "block_size": BLOCK}
    predict_to_zarr(model_2d, source, tmp_path / "local.zarr", **blocks, device="cpu")
    predict_to_zarr(model_2d, source, tmp_path / "local_objects.zarr", **blocks, device="cpu", instances=True)
    with (
        LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster,
        Client(cluster) as client,
    ):
        times = predict_to_zarr(model_2d, source, tmp_path / "cluster.zarr", **blocks, client=client)
        predict_to_zarr(model_2d, source, tmp_path / "cluster_objects.zarr", **blocks, client=client, instances=True)
        worker_pids = set(client.run(os.getpid).values())
    assert len(worker_pids) == 2 and os.getpid() not in worker_pids
    assert times.blocks == len(BlockPlan.for_model(model_2d, image_2d.shape, TILE, 0.25, BLOCK).blocks)
    for name in ("", "_objects"):  # the workers also write the certainty the objects are split with
        local = np.asarray(zarr.open_group(str(tmp_path / f"local{name}.zarr"), mode="r")["0"])
        remote = np.asarray(zarr.open_group(str(tmp_path / f"cluster{name}.zarr"), mode="r")["0"])
        np.testing.assert_array_equal(remote, local)


def test_instances_out_of_core_match_the_whole_image_ones(tmp_path, model_2d, image_2d):
    from napari_unet.core.instances.metrics import instance_f1
    from napari_unet.core.instances.postprocess import certainty, instances_from_labels

    source = write_ome_image(tmp_path / "img.zarr", image_2d, "yx", [1.0, 1.0])
    predict_to_zarr(model_2d, source, tmp_path / "objects.zarr", tile_size=TILE, block_size=BLOCK, instances=True)
    written = read_image(tmp_path / "objects.zarr").data
    prediction = predict(model_2d, image_2d, tile_size=TILE, probabilities=True, device="cpu")
    whole = instances_from_labels(prediction.labels, certainty=certainty(prediction.probabilities))
    assert written.dtype == np.int32 and written.max() > 10
    assert sorted(np.unique(written))[1:] == list(range(1, written.max() + 1))
    assert instance_f1(written, whole) > 0.95  # blocks (and their borders) change next to nothing
    assert sorted(p.name for p in tmp_path.iterdir()) == ["img.zarr", "objects.zarr"]  # no scratch left
    attrs = dict(zarr.open_group(str(tmp_path / "objects.zarr"), mode="r").attrs)
    assert "colors" not in attrs["image-label"]  # object ids are not classes


def test_instances_of_a_2d_model_on_a_stack_use_volume_blocks(tmp_path, model_2d):
    from napari_unet.core.instances.instance_blocks import instance_block_shape
    from napari_unet.core.instances.metrics import instance_f1
    from napari_unet.core.instances.postprocess import certainty, instances_from_labels

    assert instance_block_shape((4, 96, 96), (16, 32, 32), (2.0, 1.0, 1.0)) == (96, 192, 192)
    assert instance_block_shape((96, 96), (32, 32)) == (96, 96)  # prediction blocks, when thick enough
    stack = synthetic_nuclei((24, 120, 100), spacing=(2.0, 1.0, 1.0), seed=22).image
    source = write_ome_image(tmp_path / "stack.zarr", stack, "zyx", [2.0, 1.0, 1.0])
    predict_to_zarr(model_2d, source, tmp_path / "objects.zarr", tile_size=TILE, block_size=BLOCK, instances=True)
    written = read_image(tmp_path / "objects.zarr").data
    prediction = predict(model_2d, stack, tile_size=TILE, probabilities=True, device="cpu")
    whole = instances_from_labels(prediction.labels, (2.0, 1.0, 1.0), certainty=certainty(prediction.probabilities))
    # the few voxels that flip between block-wise and whole prediction (see above) can split or merge
    # a touching pair differently: a handful of ~40 objects
    assert written.max() > 5 and instance_f1(written, whole) > 0.9


def test_every_pyramid_level_is_the_strided_full_resolution(tmp_path):
    from napari_unet.core.io.label_writer import write_label_image

    rng = np.random.default_rng(3)
    labels = np.kron(rng.integers(1, 4, (75, 163)), np.ones((16, 16), np.int64)).astype(np.uint8)  # 1200×2608
    write_label_image(labels, tmp_path / "masks.zarr")
    group = zarr.open_group(str(tmp_path / "masks.zarr"), mode="r")
    level0 = np.asarray(group["0"])
    np.testing.assert_array_equal(level0, labels)
    for level in range(1, len(list(group.array_keys()))):
        step = 2**level
        np.testing.assert_array_equal(np.asarray(group[str(level)]), level0[::step, ::step])


@pytest.mark.parametrize("spacing", [(1.0, 1.0, 1.0), (2.0, 1.0, 1.0), (3.0, 1.0, 1.0), (5.0, 0.5, 0.5)])
def test_pyramid_levels_halve_the_axes_the_network_pools(spacing):
    from napari_unet.core.io.ngff import pyramid_factors
    from napari_unet.core.models.network import pool_strides_for_spacing

    factors = pyramid_factors((600, 2048, 2048), spacing)
    assert factors == [tuple(level) for level in pool_strides_for_spacing(spacing, len(factors) + 1)]
    assert pyramid_factors((1, 2048, 2048), spacing)[0] == (1, 2, 2)  # an axis one voxel long stays


def test_a_time_axis_is_dropped_when_single_and_refused_otherwise(tmp_path, image_2d):
    single = write_ome_image(tmp_path / "t1.zarr", image_2d[None], "tyx", [1.0, 0.5, 0.5])
    image = read_image(single, lazy=True)
    assert image.view().shape == (1, *image_2d.shape) and image.spacing == (0.5, 0.5)
    np.testing.assert_array_equal(read_image(single).data, image_2d)
    several = write_ome_image(tmp_path / "t3.zarr", np.stack([image_2d] * 3), "tyx", [1.0, 1.0, 1.0])
    with pytest.raises(UserInputError, match=r"non-spatial axis \(t=3\): save one time point"):
        read_image(several, lazy=True)
