"""Private/public splits of the image suites, data homes and augmentation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lsmia_bench.benchmark.data.augment import augment_images, shuffled_batches
from lsmia_bench.benchmark.data.digits import digits_arrays, load_digits_splits
from lsmia_bench.benchmark.data.images import load_image_splits
from lsmia_bench.benchmark.data.olivetti import load_olivetti_splits, olivetti_arrays
from lsmia_bench.kernel.errors import UserError


def _check_protocol(splits, source_labels: np.ndarray) -> None:
    train, test, public = splits.private_train_index, splits.private_test_index, splits.public_index
    # No image is in two splits, and no public class is among the private images.
    assert not set(train) & set(test)
    assert not set(public) & (set(train) | set(test))
    private_ids = set(source_labels[np.concatenate([train, test])])
    public_ids = set(source_labels[public])
    assert private_ids == set(splits.private_classes)
    assert public_ids == set(splits.public_classes)
    assert not private_ids & public_ids
    # Every image of a private class is used, in train or test; labels are remapped 0..K-1.
    every_private = np.flatnonzero(np.isin(source_labels, splits.private_classes))
    assert sorted(np.concatenate([train, test])) == sorted(every_private)
    remap = {c: i for i, c in enumerate(splits.private_classes)}
    assert splits.private_train_labels.tolist() == [remap[c] for c in source_labels[train]]
    assert splits.private_test_labels.tolist() == [remap[c] for c in source_labels[test]]
    for images in (splits.private_train, splits.private_test, splits.public):
        assert images.dtype == torch.float32 and images.ndim == 4
        assert images.min() >= 0.0 and images.max() <= 1.0


def test_digits_private_and_public_digits_are_disjoint():
    splits = load_digits_splits()
    _, labels = digits_arrays()
    _check_protocol(splits, labels)
    assert splits.private_classes == [0, 1, 2, 3, 4]
    assert splits.public_classes == [5, 6, 7, 8, 9]
    assert splits.num_classes == 5 and splits.image_shape == (1, 8, 8)
    # 20 % of each private digit is held out (digit 0 has 178 images -> 36 test images).
    counts = np.bincount(splits.private_test_labels.numpy())
    assert counts[0] == round(0.2 * 178) and counts.min() >= 34
    assert len(splits.public) == int(np.isin(labels, [5, 6, 7, 8, 9]).sum())


def test_split_depends_only_on_the_seed():
    a, b = load_digits_splits(seed=3), load_digits_splits(seed=3)
    assert np.array_equal(a.private_test_index, b.private_test_index)
    assert torch.equal(a.private_train, b.private_train)
    c = load_digits_splits(seed=4)
    assert not np.array_equal(a.private_test_index, c.private_test_index)


def test_digits_can_be_resized_through_the_data_section():
    splits = load_image_splits({"source": "digits", "private_classes": [1, 7],
                                "public_classes": [0], "test_fraction": 0.5, "split_seed": 0,
                                "image_size": 16})
    assert splits.image_shape == (1, 16, 16)
    assert splits.private_classes == [1, 7] and set(splits.private_train_labels.tolist()) == {0, 1}


def test_olivetti_identities_are_disjoint_and_split_per_identity(sklearn_data_home):
    splits = load_olivetti_splits(data_home=sklearn_data_home)
    _, labels = olivetti_arrays(sklearn_data_home)
    _check_protocol(splits, labels)
    assert splits.image_shape == (1, 32, 32) and splits.num_classes == 20
    # 10 images per identity: 2 held out for test, 8 to train, for every private identity.
    assert np.bincount(splits.private_test_labels.numpy()).tolist() == [2] * 20
    assert np.bincount(splits.private_train_labels.numpy()).tolist() == [8] * 20
    assert len(splits.public) == 200


def test_olivetti_data_home_from_environment(sklearn_data_home, monkeypatch):
    monkeypatch.setenv("SCIKIT_LEARN_DATA", str(sklearn_data_home))
    splits = load_olivetti_splits(private_classes=[0, 1], public_classes=[2], image_size=None)
    assert splits.image_shape == (1, 64, 64)


def test_missing_olivetti_names_the_options_and_creates_nothing(tmp_path, monkeypatch):
    monkeypatch.delenv("SCIKIT_LEARN_DATA", raising=False)
    home = tmp_path / "no-data-here"
    with pytest.raises(UserError) as caught:
        load_olivetti_splits(data_home=home)
    message = str(caught.value)
    for needle in ("data.data_home", "--data-home", "SCIKIT_LEARN_DATA", "olivetti_py3.pkz",
                   str(home)):
        assert needle in message
    assert not home.exists()


@pytest.mark.parametrize(
    ("private", "public", "field", "needle"),
    [
        ([0, 1, 5], [5, 6], "data.public_classes", "[5]"),
        ([0, 11], [5], "data.private_classes", "unknown class ids [11]"),
        ([], [5], "data.private_classes", "empty"),
        ([0, 0], [5], "data.private_classes", "repeated"),
    ],
)
def test_bad_class_lists_are_user_errors(private, public, field, needle):
    with pytest.raises(UserError) as caught:
        load_digits_splits(private_classes=private, public_classes=public)
    assert caught.value.field == field
    assert needle in str(caught.value)


def test_augmentation_is_seeded_and_keeps_range_and_shape():
    images = load_digits_splits().private_train[:16]
    settings = {"crop_padding": 1, "resized_crop_scale": (0.8, 1.0), "horizontal_flip": True,
                "brightness": 0.2, "contrast": 0.2}
    first = augment_images(images, torch.Generator().manual_seed(1), **settings)
    again = augment_images(images, torch.Generator().manual_seed(1), **settings)
    other = augment_images(images, torch.Generator().manual_seed(2), **settings)
    assert torch.equal(first, again) and not torch.equal(first, other)
    assert first.shape == images.shape and first.min() >= 0 and first.max() <= 1
    assert augment_images(images, torch.Generator()) is images  # nothing asked, nothing done


def test_crop_padding_shifts_by_whole_pixels():
    image = torch.zeros(1, 1, 8, 8)
    image[0, 0, 3, 4] = 1.0
    out = augment_images(image, torch.Generator().manual_seed(0), crop_padding=2)
    assert out.sum().item() == pytest.approx(1.0) and out.max().item() == pytest.approx(1.0)


def test_shuffled_batches_cover_the_data_in_a_new_order_each_epoch():
    x, y = torch.arange(10.0).view(10, 1), torch.arange(10)
    epochs = shuffled_batches(x, y, 4, torch.Generator().manual_seed(0))
    first = torch.cat([b for _, b in epochs()])
    second = torch.cat([b for _, b in epochs()])
    assert sorted(first.tolist()) == list(range(10)) == sorted(second.tolist())
    assert first.tolist() != second.tolist()
