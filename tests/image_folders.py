"""ImageFolder trees for the ``--data`` tests: good ones and each way a folder can be unusable."""

from pathlib import Path

from PIL import Image

#: Layouts :func:`unusable_folder` builds (each makes ``image_folder_roots`` refuse the folder).
UNUSABLE = ("missing", "file", "empty", "class without images", "val without images")


def image_tree(root: Path, classes=("cat", "dog"), per_class: int = 2) -> Path:
    """``root/<class>/<i>.png``: a small, valid ImageFolder tree."""
    for name in classes:
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            Image.new("RGB", (40, 30), (i * 60, 100, 200)).save(root / name / f"{i}.png")
    return root


def unusable_folder(data: Path, layout: str) -> Path:
    """Build ``data`` in one of the :data:`UNUSABLE` layouts and return it."""
    if layout == "file":
        data.write_text("not a folder")
    elif layout == "empty":
        data.mkdir()
    elif layout == "class without images":
        (data / "cat").mkdir(parents=True)
        (data / "cat" / "notes.txt").write_text("no image here")
    elif layout == "val without images":
        image_tree(data / "train")
        (data / "val" / "cat").mkdir(parents=True)
    elif layout != "missing":
        raise ValueError(f"unknown layout {layout!r}; known: {', '.join(UNUSABLE)}")
    return data
