"""The kit's one timer, one size unit and one model fingerprint.

* timing — :func:`time_call` runs a callable ``warmup`` times untimed, then ``repeats``
  times timed one by one under ``torch.inference_mode`` (with CUDA synchronisation when
  it runs on a GPU) and keeps every sample in a :class:`Timing` (median, quartiles,
  min/max). :func:`fixed_threads` pins the thread count of a measurement; :func:`clock`
  is the clock for wall times that are not benchmarks (training epochs, builds).
* sizes — always MB = 10^6 bytes, labelled "MB": :func:`file_size_mb`,
  :func:`saved_size_mb`, :func:`state_dict_size_mb`.
* fingerprints — :func:`model_fingerprint` hashes a model's class and every state-dict
  entry, quantized tensors and packed parameters included (cache keys).
"""

from __future__ import annotations

import contextlib
import hashlib
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

#: Bytes per MB: the kit's one size unit (decimal megabytes, as file managers and the tutorial print).
BYTES_PER_MB = 10**6


def clock() -> float:
    """Seconds on the kit's one monotonic clock (``time.perf_counter``): subtract two readings."""
    return time.perf_counter()


# --- timing ----------------------------------------------------------------------------


@contextlib.contextmanager
def fixed_threads(threads: int) -> Iterator[None]:
    """Run the block with ``torch.set_num_threads(threads)``, restoring the old value after."""
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise ValueError(f"threads must be a positive integer, got {threads!r}")
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@dataclass(frozen=True)
class Timing:
    """Every timed call of one measurement (seconds) and its summary in milliseconds."""

    samples_s: tuple[float, ...]
    warmup: int
    threads: int
    device: str = "cpu"

    @property
    def samples_ms(self) -> list[float]:
        return [s * 1e3 for s in self.samples_s]

    def _percentile_ms(self, q: float) -> float:
        return float(np.percentile(np.asarray(self.samples_s) * 1e3, q))

    @property
    def median_ms(self) -> float:
        return self._percentile_ms(50)

    @property
    def p25_ms(self) -> float:
        return self._percentile_ms(25)

    @property
    def p75_ms(self) -> float:
        return self._percentile_ms(75)

    @property
    def iqr_ms(self) -> float:
        """Interquartile range: the spread of the middle half of the samples."""
        return self.p75_ms - self.p25_ms

    @property
    def min_ms(self) -> float:
        return min(self.samples_s) * 1e3

    @property
    def max_ms(self) -> float:
        return max(self.samples_s) * 1e3

    def summary(self) -> dict[str, float]:
        """Median, quartiles, IQR, minimum and maximum in ms (one row of a results table)."""
        names = ("median_ms", "p25_ms", "p75_ms", "iqr_ms", "min_ms", "max_ms")
        return {name: getattr(self, name) for name in names}

    def __str__(self) -> str:
        return (
            f"{self.median_ms:.3f} ms median (IQR {self.iqr_ms:.3f} ms, min–max {self.min_ms:.3f}–{self.max_ms:.3f} ms)"
            f" over {len(self.samples_s)} runs after {self.warmup} warm-up, {self.threads} threads, {self.device}"
        )


def _device_of(inputs: Sequence[object], device: str | torch.device | None) -> torch.device:
    if device is not None:
        return torch.device(device)
    for value in inputs:
        if isinstance(value, torch.Tensor):
            return value.device
    return torch.device("cpu")


def time_call(
    fn: Callable[..., object],
    *inputs: object,
    repeats: int = 20,
    warmup: int = 3,
    threads: int | None = None,
    device: str | torch.device | None = None,
) -> Timing:
    """Time ``fn(*inputs)``: ``warmup`` untimed calls, then ``repeats`` calls timed one by one.

    Runs under ``torch.inference_mode``; with ``threads`` the thread count is fixed for the
    measurement (see :func:`fixed_threads`), otherwise the current one is used and reported.
    On a GPU (the device of the first tensor input, or ``device``) every call is followed by
    ``torch.cuda.synchronize()`` so the clock sees the kernels finish, not just their launch.
    """
    if not callable(fn):
        raise TypeError(f"time_call: fn must be callable, got {type(fn).__name__}")
    for name, value, least in (("repeats", repeats, 1), ("warmup", warmup, 0)):
        if isinstance(value, bool) or not isinstance(value, int) or value < least:
            raise ValueError(f"time_call: {name} must be an integer >= {least}, got {value!r}")
    where = _device_of(inputs, device)
    sync = torch.cuda.synchronize if where.type == "cuda" else lambda: None
    samples = []
    with fixed_threads(threads) if threads is not None else contextlib.nullcontext(), torch.inference_mode():
        for _ in range(warmup):
            fn(*inputs)
        sync()
        for _ in range(repeats):
            started = clock()
            fn(*inputs)
            sync()
            samples.append(clock() - started)
        used_threads = torch.get_num_threads()
    return Timing(tuple(samples), warmup, used_threads, str(where))


# --- sizes -------------------------------------------------------------------------------


def file_size_mb(path: str | Path) -> float:
    """Size of a file in MB (10^6 bytes)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    return path.stat().st_size / BYTES_PER_MB


def saved_size_mb(save: Callable[[Path], object]) -> float:
    """MB (10^6 bytes) of the file that ``save(path)`` writes, in a temporary folder deleted afterwards.

    Example: ``saved_size_mb(lambda p: torch.export.save(program, p))``.
    """
    if not callable(save):
        raise TypeError(f"saved_size_mb: save must be a callable taking a path, got {type(save).__name__}")
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "model.bin"
        save(path)
        if not path.is_file():
            raise ValueError("saved_size_mb: save(path) wrote no file at the path it was given")
        return file_size_mb(path)


def state_dict_size_mb(model: nn.Module) -> float:
    """MB (10^6 bytes) of the file ``torch.save(model.state_dict(), "model.bin")`` writes."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"state_dict_size_mb: expected an nn.Module, got {type(model).__name__}")
    return saved_size_mb(lambda path: torch.save(model.state_dict(), path))


# --- fingerprints ------------------------------------------------------------------------


def _tensor_bytes(tensor: torch.Tensor) -> bytes:
    flat = tensor.detach().cpu().contiguous().reshape(-1)
    return flat.view(torch.uint8).numpy().tobytes() if flat.numel() else b""


def _hash_value(digest: hashlib._Hash, value: object) -> None:
    """Feed one state-dict value into ``digest``: tensors (plain, quantized or subclassed), containers, else repr."""
    subclass = isinstance(value, torch.Tensor) and type(value) not in (torch.Tensor, nn.Parameter)
    if subclass and hasattr(value, "__tensor_flatten__"):  # a tensor subclass (torchao's int8 weights): its parts
        names, context = value.__tensor_flatten__()
        digest.update(f"{type(value).__qualname__} {tuple(value.shape)} {context!r}".encode())
        for name in names:
            digest.update(name.encode())
            _hash_value(digest, getattr(value, name))
        return
    if isinstance(value, torch.Tensor):
        digest.update(f"tensor {value.dtype} {tuple(value.shape)}".encode())
        if value.is_quantized:
            scheme = value.qscheme()
            digest.update(str(scheme).encode())
            if scheme in (torch.per_tensor_affine, torch.per_tensor_symmetric):
                digest.update(repr((value.q_scale(), value.q_zero_point())).encode())
            else:
                digest.update(str(value.q_per_channel_axis()).encode())
                _hash_value(digest, value.q_per_channel_scales())
                _hash_value(digest, value.q_per_channel_zero_points())
            value = value.int_repr()
        digest.update(_tensor_bytes(value))
    elif isinstance(value, (tuple, list)):
        digest.update(f"{type(value).__name__} {len(value)}".encode())
        for item in value:
            _hash_value(digest, item)
    elif isinstance(value, dict):
        digest.update(f"dict {len(value)}".encode())
        for key in sorted(value, key=repr):
            digest.update(repr(key).encode())
            _hash_value(digest, value[key])
    elif isinstance(value, torch.ScriptObject) and hasattr(value, "__getstate__"):
        digest.update(str(value._type().qualified_name()).encode())  # packed params: hash what they unpack to
        _hash_value(digest, value.__getstate__())
    else:
        digest.update(f"{type(value).__qualname__} {value!r}".encode())


def model_fingerprint(model: nn.Module) -> str:
    """16 hex digits hashing a model's class and every state-dict entry (name, dtype, shape, values).

    Quantized tensors are hashed through their integer codes and quantization parameters,
    packed parameters through what they unpack to, other entries (e.g. dtypes) by ``repr``:
    the same weights give the same fingerprint in every process, one changed value a new one.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model_fingerprint: expected an nn.Module, got {type(model).__name__}")
    digest = hashlib.sha256(type(model).__qualname__.encode())
    for name, value in sorted(model.state_dict().items()):
        digest.update(name.encode())
        _hash_value(digest, value)
    return digest.hexdigest()[:16]
