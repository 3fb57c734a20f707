"""The live loop's region arithmetic: the box a lazy image is trained on, regions moved in and out of it,
the pieces a preview of the screen is cut into, the tiles left after Stop, and how often previews come."""

import numpy as np
import pytest

from napari_unet._inputs import ACROSS_MARGIN, IN_PLANE_MARGIN, LayerPixels, shift, training_box, whole
from napari_unet._previews import PIECE_VOXELS, PreviewPlan, first_preview_region, interval, pieces


def test_the_training_box_is_the_strokes_plus_context_within_the_image():
    strokes = np.zeros((40, 600, 700), np.uint8)
    strokes[20, 300, 400] = 1
    strokes[22, 350, 690] = 2
    assert training_box(strokes, model_dim=3) == (
        slice(20 - ACROSS_MARGIN, 23 + ACROSS_MARGIN),
        slice(300 - IN_PLANE_MARGIN, 351 + IN_PLANE_MARGIN),
        slice(400 - IN_PLANE_MARGIN, 700),  # clipped at the image's edge
    )
    assert training_box(strokes, model_dim=2)[0] == slice(20, 23)  # a 2D model needs no planes around
    assert training_box(np.zeros((5, 5), np.uint8), model_dim=2) == whole((5, 5))


def test_regions_move_into_the_box_clipped_and_back():
    box = (slice(10, 50), slice(100, 200))
    assert shift((slice(0, 20), slice(150, 300)), box, inward=True) == (slice(0, 10), slice(50, 100))
    assert shift((slice(0, 5), slice(150, 300)), box, inward=True) is None  # wholly outside
    assert shift((slice(0, 10), slice(50, 100)), box, inward=False) == (slice(10, 20), slice(150, 200))


def test_a_lazy_image_is_read_box_by_box_channels_first():
    rgb = LayerPixels(np.arange(4 * 5 * 3).reshape(4, 5, 3), rgb=True)
    assert rgb.shape == (4, 5) and not rgb.lazy
    block = rgb.read((slice(1, 3), slice(0, 2)))
    assert block.shape == (3, 2, 2) and block[2, 0, 1] == rgb.data[1, 1, 2]


@pytest.mark.parametrize("region", [(slice(0, 4096), slice(0, 4096)), (slice(3, 20), slice(5, 1030), slice(0, 900))])
def test_pieces_cover_the_region_each_small(region):
    covered = np.zeros([r.stop for r in region], bool)
    for piece in pieces(region):
        assert np.prod([p.stop - p.start for p in piece]) <= PIECE_VOXELS
        covered[piece] = True
    assert covered[region].all() and covered.sum() == np.prod([r.stop - r.start for r in region])


def test_the_plan_alternates_screen_pieces_and_tiles_and_leaves_the_rest_for_after_stop():
    plan = PreviewPlan((1024, 1024), model_dim=2)
    visible = (slice(0, 1024), slice(0, 600))
    asked = [plan.next_region(visible) for _ in range(6)]
    assert all(asked[i][1].stop <= 600 for i in (0, 2, 4))  # on screen
    assert asked[1] == (slice(0, 256), slice(0, 256))  # then the tiles, in turn
    rest = plan.rest(visible)
    assert rest and all(tile[1].stop > 600 for tile in rest)


def test_previews_take_a_bounded_share_of_the_time():
    assert interval(0.05) == 1.0  # cheap: once a second
    assert interval(2.0) == pytest.approx(8.0)  # costly: a quarter of the time at most


def test_the_final_prediction_quits_inside_a_piece(nuclei_2d):
    """A new Train quits the last final prediction: it ends at once, not after the piece it is on."""
    from napari_unet._final_prediction import predict_regions
    from napari_unet.core.api import train

    model = train(nuclei_2d.image, nuclei_2d.strokes, steps=1, time_budget=None, device="cpu", base_channels=4)
    pixels = LayerPixels(nuclei_2d.image, rgb=False)
    box = whole(nuclei_2d.image.shape)
    done = list(predict_regions(model, pixels, box, box, [box], 1, interrupted=lambda: False))
    assert [item[0] for item in done if item is not None] == [box, box]
    assert list(predict_regions(model, pixels, box, box, [box], 1, interrupted=lambda: True)) == []


def test_the_final_prediction_is_busy_only_inside_a_piece(nuclei_2d):
    """A new Train waits while a piece is predicted (GBs on a 3D piece), not between pieces."""
    import threading

    from napari_unet._final_prediction import predict_regions
    from napari_unet.core.api import train

    model = train(nuclei_2d.image, nuclei_2d.strokes, steps=1, time_budget=None, device="cpu", base_channels=4)
    pixels = LayerPixels(nuclei_2d.image, rgb=False)
    box = whole(nuclei_2d.image.shape)
    idle = threading.Event()
    idle.set()
    seen_inside: list[bool] = []

    def interrupted() -> bool:  # asked inside each piece
        seen_inside.append(idle.is_set())
        return False

    for _ in predict_regions(model, pixels, box, box, [box], 1, interrupted, idle):
        assert idle.is_set()  # between pieces
    assert seen_inside and not any(seen_inside)
    assert idle.is_set()

    def quit_inside_a_piece() -> bool:
        return len(seen_inside) > 1  # the first call is before anything is read

    seen_inside.clear()
    watched = predict_regions(model, pixels, box, box, [box], 1, lambda: interrupted() or quit_inside_a_piece(), idle)
    assert list(watched) == []
    assert idle.is_set()  # quit inside a piece: idle again, once the memory went back


@pytest.mark.parametrize("stop_first", [True, False])
def test_a_new_training_waits_for_the_last_final_prediction(qtbot, nuclei_2d, stop_first):
    """The worker reads nothing until ``after`` is set, and a Stop meanwhile ends it with no model."""
    import threading

    from napari_unet._worker import TrainingJob

    pixels = LayerPixels(nuclei_2d.image, rgb=False)
    after = threading.Event()
    job = TrainingJob(pixels, nuclei_2d.strokes, dim=2, spacing=None, init=None, device="cpu", after=after)
    reports, returned = [], []
    job.worker.yielded.connect(reports.append)
    job.worker.returned.connect(returned.append)
    job.worker.start()
    qtbot.wait(300)
    assert not reports and job.tuner is None  # waiting: nothing read, nothing set up
    if not stop_first:
        after.set()
        qtbot.waitUntil(lambda: len(reports) >= 1, timeout=60_000)
    job.stop()
    qtbot.waitUntil(lambda: len(returned) == 1, timeout=60_000)
    assert (returned[0] is None) == stop_first


def test_the_first_mask_shows_the_piece_of_the_screen_where_the_strokes_are():
    import torch

    from napari_unet._worker import TrainingJob

    image = np.random.default_rng(0).random((1536, 1536), dtype=np.float32)  # too big for a whole first mask
    strokes = np.zeros(image.shape, np.uint8)
    strokes[100:103, 1200:1300], strokes[120:123, 1200:1300] = 1, 2  # in the top-right piece, not the centre's
    pixels = LayerPixels(image, rgb=False)
    job = TrainingJob(pixels, strokes, dim=2, spacing=None, init=None, device="cpu", visible=whole(image.shape))
    threads = torch.get_num_threads()
    try:
        reports = job._run()  # the worker's generator, run here (it sets this thread's torch threads)
        first = next(reports)
        reports.close()
    finally:
        torch.set_num_threads(threads)
    assert first.step == 0
    assert first.preview.region == (slice(0, 512), slice(1024, 1536))  # of the screen's 9 pieces, the painted one


def test_the_first_mask_region_is_the_painted_piece_of_the_screen_inside_the_box():
    box = (slice(10, 40), slice(1000, 2000), slice(200, 1300))  # (30, 1000, 1100): over FIRST_MASK_WHOLE_VOXELS
    strokes = np.zeros([b.stop - b.start for b in box], np.uint8)
    strokes[12, 900:905, 1000:1050] = 2  # box coordinates
    visible = (slice(14, 31), slice(0, 4096), slice(0, 4096))  # a plane and its context; the box in-plane whole
    region = first_preview_region(visible, box, strokes)
    assert all(r.start >= 0 and r.stop <= n for r, n in zip(region, strokes.shape))  # in the box's coordinates
    assert region[0] == slice(4, 21)  # planes 14..30 of the image
    assert np.count_nonzero(strokes[region]) == 250
    assert np.prod([r.stop - r.start for r in region]) <= PIECE_VOXELS
    assert first_preview_region((slice(0, 5), slice(0, 10), slice(0, 10)), box, strokes) is None  # off the box
    assert first_preview_region(None, box, strokes) is None  # nothing on screen
    unpainted = (slice(14, 31), slice(1000, 1100), slice(200, 300))
    assert first_preview_region(unpainted, box, strokes) is None  # no strokes on screen: the default
    small = (slice(0, 4), slice(0, 100), slice(0, 100))
    assert first_preview_region(visible, small, np.ones((4, 100, 100), np.uint8)) is None  # the whole box


def test_a_final_region_is_labelled_as_in_the_whole_image(nuclei_2d):
    """The final prediction reads enough context around a region that the pixel classifier's features,
    and so its labels, are the whole image's there (its widest filter reaches 66 pixels in 2D)."""
    from napari_unet._final_prediction import predict_regions, with_context
    from napari_unet.core.api import predict, train

    image = np.tile(nuclei_2d.image, (3, 2))  # 384×320: room for a region with a full halo inside
    strokes = np.zeros(image.shape, np.uint8)
    strokes[: nuclei_2d.strokes.shape[0], : nuclei_2d.strokes.shape[1]] = nuclei_2d.strokes
    model = train(image, strokes, steps=1, time_budget=None, device="cpu", base_channels=4)
    model.config.selection["chosen"] = "pixel classifier"  # the classifier's labels alone: no U-Net tiles
    region = (slice(150, 230), slice(140, 180))
    halo = model.pixel_classifier.config.halo
    grown = with_context(region, image.shape, model)
    assert all(r.start - g.start >= halo and g.stop - r.stop >= halo for r, g in zip(region, grown))
    whole_image = predict(model, image, device="cpu").labels
    done = [
        item
        for item in predict_regions(
            model, LayerPixels(image, rgb=False), whole(image.shape), region, [], 1, lambda: False
        )
        if item
    ]
    assert [box for box, _ in done] == [region]
    np.testing.assert_array_equal(done[0][1], whole_image[region])
