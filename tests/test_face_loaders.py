"""FaceScrub and CelebA loaders on generated folder trees of the real layouts: identity
selection, the paper's split, lazy reading, and the messages for missing or malformed data."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import ConcatDataset
from torchvision.datasets import ImageFolder

from lsmia_bench.benchmark.data.celeba import CELEBA_URL, load_celeba, most_frequent_identities
from lsmia_bench.benchmark.data.face_folders import (
    dataloader_batches,
    face_eval_transform,
    face_train_transform,
    paper_split,
    public_image_dataset,
    public_image_files,
)
from lsmia_bench.benchmark.data.facescrub import FACESCRUB_URL, load_facescrub
from lsmia_bench.benchmark.data.fake_faces import (
    make_fake_celeba,
    make_fake_facescrub,
    make_fake_public_faces,
)
from lsmia_bench.kernel.errors import UserError

FACESCRUB_COUNTS = [3, 5, 4, 6, 2, 7, 3]  # 4 actors, 3 actresses, 30 images
CELEBA_COUNTS = [5, 3, 5, 2, 3, 1, 4]  # ties at 5 and at 3


@pytest.fixture(scope="module")
def facescrub_root(tmp_path_factory) -> Path:
    return make_fake_facescrub(tmp_path_factory.mktemp("facescrub"), len(FACESCRUB_COUNTS),
                               FACESCRUB_COUNTS, size=24, seed=3)


@pytest.fixture(scope="module")
def celeba_root(tmp_path_factory) -> Path:
    return make_fake_celeba(tmp_path_factory.mktemp("celeba"), len(CELEBA_COUNTS),
                            CELEBA_COUNTS, size=24, seed=5)


def paper_facescrub_reference(root: Path, seed: int = 42) -> tuple[list, list]:
    """The paper code's construction (torchvision ImageFolder per group, actresses' labels
    offset, np.random.seed + shuffle of a list, first 90 % train) as (path, label) lists."""
    actors = ImageFolder(str(root / "actors" / "faces"))
    actresses = ImageFolder(str(root / "actresses" / "faces"),
                            target_transform=lambda t: t + len(actors.classes))
    samples = actors.samples + [(p, t + len(actors.classes)) for p, t in actresses.samples]
    assert len(ConcatDataset([actors, actresses])) == len(samples)
    indices = list(range(len(samples)))
    np.random.seed(seed)
    np.random.shuffle(indices)
    cut = int(0.9 * len(samples))
    return [samples[i] for i in indices[:cut]], [samples[i] for i in indices[cut:]]


def test_facescrub_identities_and_split_follow_the_paper_code(facescrub_root):
    splits = load_facescrub(facescrub_root)
    actors = sorted(p.name for p in (facescrub_root / "actors" / "faces").iterdir())
    actresses = sorted(p.name for p in (facescrub_root / "actresses" / "faces").iterdir())
    assert splits.classes == actors + actresses
    assert len(actors) == 4 and splits.num_classes == 7
    assert len(splits.train_files) == int(0.9 * 30) and len(splits.test_files) == 3
    train_ref, test_ref = paper_facescrub_reference(facescrub_root)
    assert list(zip(splits.train_files, splits.train_labels, strict=True)) == [
        (str(Path(p).resolve()), t) for p, t in train_ref]
    assert list(zip(splits.test_files, splits.test_labels, strict=True)) == [
        (str(Path(p).resolve()), t) for p, t in test_ref]
    for path, label in zip(splits.train_files, splits.train_labels, strict=True):
        assert Path(path).parent.name == splits.classes[label]
    assert splits.record()["train_images"] == 27 and splits.record()["actors"] == 4


def test_facescrub_split_is_deterministic_and_seeded(facescrub_root):
    first, again = load_facescrub(facescrub_root), load_facescrub(facescrub_root)
    assert first.train_files == again.train_files and first.test_files == again.test_files
    other = load_facescrub(facescrub_root, split_seed=7)
    assert other.test_files != first.test_files
    assert sorted(other.train_files + other.test_files) == sorted(
        first.train_files + first.test_files)
    assert not set(first.train_files) & set(first.test_files)
    half = load_facescrub(facescrub_root, train_fraction=0.5)
    assert len(half.train_files) == 15 and len(half.test_files) == 15


def test_paper_split_matches_numpy_global_seed_shuffle():
    indices = list(range(101))
    np.random.seed(42)
    np.random.shuffle(indices)
    train, test = paper_split(101, 0.9, 42)
    assert train.tolist() == indices[:90] and test.tolist() == indices[90:]


def test_facescrub_missing_root_names_path_layout_and_source(tmp_path):
    missing = tmp_path / "nowhere"
    with pytest.raises(UserError) as info:
        load_facescrub(missing, field="data.facescrub_root")
    message = str(info.value)
    assert message.startswith("data.facescrub_root:")
    assert str(missing) in message and FACESCRUB_URL in message
    assert "actors/faces/<Identity_Name>" in message and "\n" not in message
    with pytest.raises(UserError, match="no FaceScrub folder given"):
        load_facescrub(None)


def test_facescrub_bad_trees_name_each_problem(tmp_path):
    root = tmp_path / "fs"
    (root / "actors").mkdir(parents=True)
    with pytest.raises(UserError) as info:
        load_facescrub(root)
    assert str(root / "actors" / "faces") in str(info.value)
    assert str(root / "actresses" / "faces") in str(info.value)

    make_fake_facescrub(root, 4, 2, size=16, seed=1)
    (root / "actresses" / "faces" / "Empty_Person").mkdir()
    (root / "actresses" / "faces" / "Empty_Person" / "notes.txt").write_text("no image")
    with pytest.raises(UserError) as info:
        load_facescrub(root)
    assert "without images" in str(info.value) and "Empty_Person" in str(info.value)

    (root / "actresses" / "faces" / "Empty_Person" / "notes.txt").unlink()
    (root / "actresses" / "faces" / "Empty_Person").rmdir()
    with pytest.raises(UserError, match="found 4 identity folders, expected 530"):
        load_facescrub(root, expected_identities=530)
    assert load_facescrub(root, expected_identities=4).num_classes == 4


def celeba_reference(root: Path, count: int, seed: int = 42) -> tuple[list, list, list]:
    """The paper code's CelebA1000 construction on the identity file: Counter ranked by a
    stable sort, np.where over the file order, np.random.seed + shuffle, first 90 % train."""
    rows = [line.split() for line in (root / "identity_CelebA.txt").read_text().splitlines()]
    targets = np.array([int(identity) for _, identity in rows])
    ordered = dict(sorted(Counter(targets).items(), key=lambda item: item[1], reverse=True))
    selected = list(ordered)[:count]
    indices = np.where(np.isin(targets, selected))[0]
    np.random.seed(seed)
    np.random.shuffle(indices)
    cut = int(0.9 * len(indices))
    mapping = {identity: i for i, identity in enumerate(selected)}
    as_pairs = [[(rows[i][0], mapping[targets[i]]) for i in part]
                for part in (indices[:cut], indices[cut:])]
    return [str(i) for i in selected], as_pairs[0], as_pairs[1]


def test_celeba_selects_most_frequent_identities_with_deterministic_ties(celeba_root):
    splits = load_celeba(celeba_root, num_identities=4)
    classes, train_ref, test_ref = celeba_reference(celeba_root, 4)
    assert splits.classes == classes
    rows = [line.split() for line in (celeba_root / "identity_CelebA.txt").read_text()
            .splitlines()]
    counts = Counter(int(i) for _, i in rows)
    assert [counts[int(c)] for c in splits.classes] == [5, 5, 4, 3]
    first_seen = {}
    for position, (_, identity) in enumerate(rows):
        first_seen.setdefault(int(identity), position)
    tied = [int(c) for c in splits.classes[:2]]
    assert first_seen[tied[0]] < first_seen[tied[1]]
    assert [(Path(f).name, y) for f, y in zip(splits.train_files, splits.train_labels,
                                              strict=True)] == train_ref
    assert [(Path(f).name, y) for f, y in zip(splits.test_files, splits.test_labels,
                                              strict=True)] == test_ref
    assert len(splits.train_files) + len(splits.test_files) == 17
    assert load_celeba(celeba_root, num_identities=4).train_files == splits.train_files


def test_most_frequent_identities_breaks_ties_by_first_appearance():
    assert most_frequent_identities([9, 4, 4, 9, 7, 7, 1], 3) == [9, 4, 7]
    assert most_frequent_identities([3, 1, 2, 2], 2) == [2, 3]


def test_celeba_finds_png_crops_listed_as_jpg_in_another_folder(tmp_path):
    root = make_fake_celeba(tmp_path / "celeba", 3, [2, 3, 4], size=16, seed=2,
                            image_folder="crops_224", extension=".png")
    splits = load_celeba(root, num_identities=2, image_folder="crops_224")
    files = splits.train_files + splits.test_files
    assert len(files) == 7 and all(f.endswith(".png") for f in files)
    with pytest.raises(UserError) as info:
        load_celeba(root, num_identities=2)
    assert str(root / "img_align_celeba") in str(info.value) and CELEBA_URL in str(info.value)


def test_celeba_missing_and_malformed_data_are_named(tmp_path):
    root = tmp_path / "celeba"
    root.mkdir()
    with pytest.raises(UserError) as info:
        load_celeba(root)
    message = str(info.value)
    assert str(root / "identity_CelebA.txt") in message
    assert str(root / "img_align_celeba") in message
    assert "000001.jpg 2880" in message and CELEBA_URL in message

    make_fake_celeba(root, 3, 2, size=16, seed=4)
    with pytest.raises(UserError, match="lists 3 identities, 1000 were asked for"):
        load_celeba(root)
    with open(root / "identity_CelebA.txt", "a") as handle:
        handle.write("000007.jpg\n000008.jpg twelve\n")
    with pytest.raises(UserError) as info:
        load_celeba(root, num_identities=2)
    assert "2 malformed line(s)" in str(info.value) and "line 7" in str(info.value)

    make_fake_celeba(root, 3, 2, size=16, seed=4)
    (root / "img_align_celeba" / "000002.jpg").unlink()
    with pytest.raises(UserError) as info:
        load_celeba(root, num_identities=3)
    assert "1 image(s)" in str(info.value) and "000002.jpg" in str(info.value)


def test_datasets_read_lazily_with_the_paper_transforms(facescrub_root, tmp_path):
    splits = load_facescrub(facescrub_root)
    train = splits.dataset("train", face_train_transform(20))
    image, label = train[0]
    assert image.shape == (3, 20, 20) and image.dtype == torch.float32
    assert image.min() >= 0.0 and image.max() <= 1.0 and label == splits.train_labels[0]
    images, labels = splits.dataset("test", face_eval_transform(16)).stack()
    assert images.shape == (3, 3, 16, 16) and labels.tolist() == splits.test_labels
    again, _ = splits.dataset("test", face_eval_transform(16)).stack()
    assert torch.equal(images, again)

    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not a jpeg")
    dataset = type(train)([str(broken)], [0])
    with pytest.raises(UserError, match="unreadable image"):
        dataset[0]


def test_dataloader_batches_are_seeded_epochs(facescrub_root):
    dataset = load_facescrub(facescrub_root).dataset("train", face_eval_transform(8))
    batches = dataloader_batches(dataset, batch_size=13, seed=0)
    first = [labels.tolist() for _, labels in batches()]
    second = [labels.tolist() for _, labels in batches()]
    assert [len(b) for b in first] == [13, 13]  # 27 images: the single last one is skipped
    assert first != second
    again = [labels.tolist() for _, labels in dataloader_batches(dataset, 13, seed=0)()]
    assert again == first
    images, _ = next(iter(batches()))
    assert images.shape == (13, 3, 8, 8)


def test_public_image_folder(tmp_path):
    folder = make_fake_public_faces(tmp_path / "ffhq" / "00000", count=5, size=16)
    files = public_image_files(tmp_path / "ffhq")
    assert len(files) == 5 and files == sorted(files)
    images, labels = public_image_dataset(tmp_path / "ffhq").stack()
    assert images.shape == (5, 3, 16, 16) and labels.tolist() == [-1] * 5
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="no image files") as info:
        public_image_files(tmp_path / "empty")
    assert "ffhq-dataset" in str(info.value)
    with pytest.raises(UserError, match="folder not found"):
        public_image_files(folder / "missing", field="data.public_folder")
