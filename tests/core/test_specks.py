"""Specks: small pieces of a predicted mask become background; objects, edges and other classes stay."""

from pathlib import Path

import numpy as np
from scipy import ndimage as ndi

from napari_unet.core.api import predict, train
from napari_unet.core.infer.inference import labels_from_probabilities
from napari_unet.core.infer.specks import reference_size, without_specks
from napari_unet.core.instances.metrics import connected_instances, instance_f1


def disk_labels(shape=(96, 96)) -> np.ndarray:
    """Background 1 with four 8-px-radius discs of class 2 and one of class 3."""
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    labels = np.ones(shape, np.uint8)
    for (y, x), value in zip([(20, 20), (20, 60), (60, 20), (60, 60), (40, 80)], [2, 2, 2, 2, 3]):
        labels[(yy - y) ** 2 + (xx - x) ** 2 <= 64] = value
    return labels


def test_reference_size_ignores_many_specks_and_one_flooded_piece():
    assert reference_size(np.array([1] * 50 + [200] * 4)) == 200  # fifty specks do not pull it down
    assert reference_size(np.array([10, 10, 10, 1000])) == 1000
    assert reference_size(np.array([300] * 10 + [20_000])) == 300  # a flooded piece does not push it up
    assert reference_size(np.array([], int)) == 0


def test_nuclei_beside_a_flooded_piece_stay():
    labels = disk_labels((200, 200))
    labels[120:160, 60:140] = 2  # a flooded piece holding three quarters of the mask
    np.testing.assert_array_equal(without_specks(labels), labels)


def test_specks_go_objects_and_their_classes_stay():
    labels = disk_labels()
    specked = labels.copy()
    specked[40, 40] = 2  # one pixel
    specked[5:7, 40:42] = 3  # four pixels of the other class
    cleaned = without_specks(specked)
    np.testing.assert_array_equal(cleaned, labels)
    assert specked[40, 40] == 2  # the input is left as it was


def test_a_piece_touching_an_edge_is_kept():
    labels = disk_labels()
    labels[0, 40] = 2  # may be the tip of an object beyond the array
    labels[40, -1] = 3
    np.testing.assert_array_equal(without_specks(labels), labels)


def test_a_mask_of_small_objects_alike_is_left_alone():
    labels = np.ones((64, 64), np.uint8)
    labels[10:12, 10:12] = labels[30:32, 30:32] = labels[50:52, 20:23] = 2
    np.testing.assert_array_equal(without_specks(labels), labels)


def test_3d_specks_go():
    labels = np.ones((20, 40, 40), np.uint8)
    labels[5:15, 5:15, 5:15] = labels[5:15, 20:30, 20:30] = 2
    specked = labels.copy()
    specked[10, 35, 5] = 2
    np.testing.assert_array_equal(without_specks(specked), labels)


def test_a_2d_model_s_stack_is_cleaned_plane_by_plane():
    plane = disk_labels()
    specked = plane.copy()
    specked[40, 40] = 2
    stack = np.stack([plane, specked, plane])  # the speck lies on a middle plane, on top of nothing
    np.testing.assert_array_equal(without_specks(stack, dim=2), np.stack([plane] * 3))
    edge_plane = np.stack([specked, plane])  # the first plane is an edge along Z only, not along the model's axes
    np.testing.assert_array_equal(without_specks(edge_plane, dim=2), np.stack([plane, plane]))


def test_each_class_is_measured_on_its_own():
    labels = np.ones((128, 128), np.uint8)
    labels[10:110, 10:60] = 2  # one large region of class 2
    for y in range(10, 110, 12):
        labels[y : y + 5, 80:85] = 3  # small, alike objects of class 3 (25 px): none is a speck of its class
    labels[64, 100] = 3  # a speck of class 3
    cleaned = without_specks(labels)
    assert cleaned[64, 100] == 1
    np.testing.assert_array_equal(np.delete(cleaned, 100, axis=1), np.delete(labels, 100, axis=1))


def test_labels_from_probabilities_keep_specks_on_request():
    labels = disk_labels()
    labels[40, 40] = 2
    probabilities = np.stack([labels == v for v in (1, 2, 3)]).astype(np.float32)
    assert labels_from_probabilities(probabilities)[40, 40] == 1
    np.testing.assert_array_equal(labels_from_probabilities(probabilities, keep_specks=True), labels)


def test_predict_returns_the_brightfield_mask_without_specks_and_the_raw_probabilities():
    """A real brightfield crop (tests/data/dsb2018), where a model trained from strokes leaves specks."""
    with np.load(Path(__file__).parents[1] / "data" / "dsb2018" / "4217e25defac.npz") as data:
        image, truth, strokes = data["image"], data["labels"], data["strokes"]
    model = train(image, strokes, steps=2, time_budget=None, seed=0, device="cpu")
    raw = predict(model, image, device="cpu", keep_specks=True, probabilities=True)
    cleaned = predict(model, image, device="cpu", probabilities=True)
    np.testing.assert_array_equal(cleaned.probabilities, raw.probabilities)
    np.testing.assert_array_equal(cleaned.labels, without_specks(raw.labels))
    pieces_raw, pieces_cleaned = ndi.label(raw.labels > 1)[1], ndi.label(cleaned.labels > 1)[1]
    assert pieces_cleaned < pieces_raw / 2
    f1_raw = instance_f1(connected_instances(raw.labels > 1), truth)
    assert instance_f1(connected_instances(cleaned.labels > 1), truth) > f1_raw
