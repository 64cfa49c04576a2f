"""``--data`` datasets: ImageFolder trees are checked before training and read at the requested size."""

import pytest
from image_folders import image_tree, unusable_folder

from deitlab.data import DataFolderError, image_folder_datasets, image_folder_roots


def test_a_single_root_is_the_training_set(tmp_path):
    root = image_tree(tmp_path / "data")
    assert image_folder_roots(root) == (root, None)


def test_train_and_val_folders_like_imagenet(tmp_path):
    image_tree(tmp_path / "data" / "train")
    image_tree(tmp_path / "data" / "val")
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
    data = unusable_folder(tmp_path / "data", layout)
    with pytest.raises(DataFolderError, match=message) as error:
        image_folder_roots(data)
    assert str(data) in str(error.value)


def test_datasets_are_resized_cropped_and_share_classes(tmp_path):
    image_tree(tmp_path / "data" / "train")
    image_tree(tmp_path / "data" / "val")
    train, val = image_folder_datasets(tmp_path / "data", image_size=32)
    image, label = train[0]
    assert image.shape == (3, 32, 32) and label == 0 and train.classes == ["cat", "dog"] and len(val) == 4


def test_val_classes_must_match_train_classes(tmp_path):
    image_tree(tmp_path / "data" / "train")
    image_tree(tmp_path / "data" / "val", classes=("cat", "cow"))
    with pytest.raises(DataFolderError, match="differ"):
        image_folder_datasets(tmp_path / "data", image_size=32)
