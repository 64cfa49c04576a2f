"""``--data`` datasets: ImageFolder trees are checked before training and read at the requested size."""

from pathlib import Path

import pytest
from PIL import Image

from deitlab.data import DataFolderError, image_folder_datasets, image_folder_roots


def _images(root: Path, classes=("cat", "dog"), per_class: int = 2) -> Path:
    for name in classes:
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            Image.new("RGB", (40, 30), (i * 60, 100, 200)).save(root / name / f"{i}.png")
    return root


def test_a_single_root_is_the_training_set(tmp_path):
    root = _images(tmp_path / "data")
    assert image_folder_roots(root) == (root, None)


def test_train_and_val_folders_like_imagenet(tmp_path):
    _images(tmp_path / "data" / "train")
    _images(tmp_path / "data" / "val")
    assert image_folder_roots(tmp_path / "data") == (tmp_path / "data" / "train", tmp_path / "data" / "val")


@pytest.mark.parametrize(
    "layout, message",
    [
        ("missing", "no such folder"),
        ("file", "is a file"),
        ("empty", "no class sub-folders"),
        ("class without images", "no image files"),
        ("val without images", "no image files"),
    ],
)
def test_unusable_folders_name_the_path_and_the_reason(tmp_path, layout, message):
    data = tmp_path / "data"
    if layout == "file":
        data.write_text("x")
    elif layout == "empty":
        data.mkdir()
    elif layout == "class without images":
        (data / "cat").mkdir(parents=True)
        (data / "cat" / "readme.txt").write_text("x")
    elif layout == "val without images":
        _images(data / "train")
        (data / "val" / "cat").mkdir(parents=True)
    with pytest.raises(DataFolderError, match=message) as error:
        image_folder_roots(data)
    assert str(data) in str(error.value)


def test_datasets_are_resized_cropped_and_share_classes(tmp_path):
    _images(tmp_path / "data" / "train")
    _images(tmp_path / "data" / "val")
    train, val = image_folder_datasets(tmp_path / "data", image_size=32)
    image, label = train[0]
    assert image.shape == (3, 32, 32) and label == 0 and train.classes == ["cat", "dog"] and len(val) == 4


def test_val_classes_must_match_train_classes(tmp_path):
    _images(tmp_path / "data" / "train")
    _images(tmp_path / "data" / "val", classes=("cat", "cow"))
    with pytest.raises(DataFolderError, match="differ"):
        image_folder_datasets(tmp_path / "data", image_size=32)
