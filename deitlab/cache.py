"""The kit's one disk cache: atomic writes, content hashes, keyed entries.

Every file the kit writes for later reuse (trained checkpoints, exported artifacts,
capability probes, the C++ demo binary) goes through this module.

Layout: ``cache_dir()/<kind>/<name>-<key hash>/`` holds an entry's data files and its
metadata ``entry.json``. The metadata is written last (it is the commit marker) and
removed first when the entry is rebuilt; it records the cache format, the full key,
:data:`CODE_VERSION`, the SHA-256 and size of every data file, when and by what the entry
was built, and an entry-specific payload. Builders write into a private staging folder
beside the entry; the finished files are fsynced and moved in with ``os.replace``, so an
interrupted build leaves the previous entry whole.

Loading takes no lock, so a complete read-only cache (a classroom cache handed out by an
instructor) works as is. Only a build takes a lock (``<kind>/.<name>-<hash>.lock``), and
re-checks after acquiring it, so two processes asking for the same entry build it once.

Hashes are checked on every load, but each file's verification is remembered for the
process, keyed by (path, mtime_ns, size): hashing a 350 MB DeiT-B artifact costs about
half a second once per process, and a file replaced or rewritten since is hashed again.
A damaged or mismatched entry is announced in one line on stderr and rebuilt.
"""

from __future__ import annotations

import contextlib
import fnmatch
import hashlib
import json
import os
import platform
import re
import shutil
import socket
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from deitlab.env import cache_dir

#: Layout of ``entry.json``; entries of another format are rebuilt.
FORMAT_VERSION = 1
#: Version of the kit's training and export code. Bump it when their results change:
#: it is part of every key, so every cache entry is then rebuilt.
CODE_VERSION = 1
#: The metadata file of an entry, written last (the commit marker).
METADATA = "entry.json"

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+=-]*\Z")
_verified: dict[tuple[str, int, int], str] = {}  # (path, mtime_ns, size) -> sha256 checked in this process


class CacheError(RuntimeError):
    """An entry is missing or damaged and cannot be built here (the message names the folder)."""


@dataclass(frozen=True)
class Entry:
    """One cache entry: a folder of data files and its metadata (empty when incomplete)."""

    kind: str
    folder: Path
    meta: dict

    @property
    def name(self) -> str:
        return self.folder.name

    @property
    def payload(self) -> dict:
        """What the builder returned (training history, export notes, ...)."""
        return self.meta.get("payload", {})

    @property
    def complete(self) -> bool:
        return bool(self.meta)

    def path(self, file: str) -> Path:
        """Where data file ``file`` of this entry lives."""
        return self.folder / file

    @property
    def size_bytes(self) -> int:
        """Bytes on disk of everything in the entry's folder."""
        return sum(p.stat().st_size for p in self.folder.iterdir() if p.is_file())


@dataclass(frozen=True)
class Problem:
    """A damaged, incomplete or unreadable entry found by :func:`verify`."""

    path: Path
    reason: str

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}"


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file's bytes (read in 1 MiB chunks)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _fsync_replace(source: Path, target: Path) -> None:
    """Flush ``source`` to disk, then rename it over ``target`` (atomic on one file system)."""
    with open(source, "rb+") as handle:
        os.fsync(handle.fileno())
    os.replace(source, target)


def atomic_write(path: str | Path, write: Callable[[Path], None]) -> Path:
    """Write ``path`` so that readers see either the old file or the whole new one.

    ``write(tmp)`` fills a temporary file in the same folder; it is flushed to disk and
    then renamed over ``path`` (``os.replace``). An interrupted write (Ctrl-C, a crash,
    a full disk) leaves ``path`` untouched and removes the temporary file.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    os.chmod(tmp, 0o666 & ~_umask())  # mkstemp's 0600 would hide a shared (classroom) cache from other users
    try:
        write(tmp)
        _fsync_replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


# --- keys and folders ------------------------------------------------------------------


def _check_name(what: str, text: str) -> str:
    if not isinstance(text, str) or not _NAME.match(text):
        raise ValueError(
            f"cache {what} must be letters, digits and ._+=- (not starting with one of those), got {text!r}"
        )
    return text


def _normal_key(key: dict) -> dict:
    """``key`` as it reads back from JSON (tuples become lists); rejects what JSON cannot hold."""
    if not isinstance(key, dict):
        raise TypeError(f"a cache key must be a dict, got {type(key).__name__}")
    try:
        return json.loads(json.dumps(key, sort_keys=True, allow_nan=False))
    except (TypeError, ValueError) as exc:
        raise ValueError(f"a cache key must be plain JSON (str, numbers, lists, dicts): {exc}") from None


def key_digest(key: dict) -> str:
    """12 hex digits of SHA-256 over the key and :data:`CODE_VERSION` (the suffix of entry folders)."""
    text = json.dumps({"key": _normal_key(key), "code_version": CODE_VERSION}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def _root() -> Path:
    try:
        return cache_dir()
    except OSError as exc:
        raise CacheError(f"deitlab cache: cannot create the cache folder ({exc}); set DEITLAB_CACHE") from None


def entry_folder(kind: str, name: str, key: dict) -> Path:
    """The folder of the entry ``name`` with ``key``: ``cache_dir()/<kind>/<name>-<key digest>``."""
    return _root() / _check_name("kind", kind) / f"{_check_name('name', name)}-{key_digest(key)}"


# --- checking ----------------------------------------------------------------------------


def _file_problem(path: Path, record: dict, fresh: bool) -> str | None:
    """Why data file ``path`` does not match its ``record`` (sha256, bytes), or None."""
    try:
        stat = path.stat()
    except FileNotFoundError:
        return "missing"
    if stat.st_size != record.get("bytes"):
        return f"{stat.st_size} bytes, expected {record.get('bytes')}"
    memo = (str(path), stat.st_mtime_ns, stat.st_size)
    digest = None if fresh else _verified.get(memo)
    if digest is None:
        digest = sha256_file(path)
        _verified[memo] = digest
    return None if digest == record.get("sha256") else "sha256 mismatch"


def _inspect(folder: Path, key: dict | None, fresh: bool = False) -> tuple[dict | None, str | None]:
    """(metadata, None) for a complete, matching entry; otherwise (None, why) — why is None when absent."""
    meta_file = folder / METADATA
    if not meta_file.exists():
        return None, None  # never built, or the build was interrupted before its commit
    try:
        meta = json.loads(meta_file.read_text())
        files = meta["files"]
        if not isinstance(files, dict) or not files:
            raise ValueError("no data files listed")
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return None, f"{meta_file} is damaged (unreadable metadata: {type(exc).__name__})"
    if meta.get("format") != FORMAT_VERSION:
        return None, f"{meta_file} has cache format {meta.get('format')}, expected {FORMAT_VERSION}"
    if key is not None and (meta.get("key") != _normal_key(key) or meta.get("code_version") != CODE_VERSION):
        return None, f"{meta_file} was built for another key or code version"
    for file, record in files.items():
        problem = _file_problem(folder / file, record if isinstance(record, dict) else {}, fresh)
        if problem is not None:
            return None, f"{folder / file} is damaged ({problem})"
    return meta, None


def _announce(message: str) -> None:
    print(f"deitlab cache: {message}", file=sys.stderr, flush=True)


# --- building ----------------------------------------------------------------------------


def _not_writable(entry: Path, exc: OSError) -> CacheError:
    reason = exc.strerror or type(exc).__name__
    return CacheError(
        f"deitlab cache: {entry.parent} is not writable ({reason}), so the entry {entry.name} cannot be built there; "
        "set DEITLAB_CACHE to a writable folder"
    )


@contextlib.contextmanager
def _build_lock(folder: Path) -> Iterator[None]:
    """Hold the lock of ``folder``'s entry (``.<name>.lock`` beside it) while building it."""
    from filelock import FileLock

    lock_file = folder.parent / f".{folder.name}.lock"
    try:
        folder.parent.mkdir(parents=True, exist_ok=True)
        os.close(os.open(lock_file, os.O_RDWR | os.O_CREAT, 0o666))
    except OSError as exc:
        raise _not_writable(folder, exc) from None
    with FileLock(str(lock_file)):
        yield


def _built_by() -> dict:
    import torch

    from deitlab import __version__

    return {
        "deitlab": __version__,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "host": socket.gethostname(),
    }


def _build(kind: str, folder: Path, key: dict, build: Callable[[Path], dict | None], files: Sequence[str]) -> dict:
    """Run ``build`` in a staging folder, move its files in, then commit the metadata (the lock is held)."""
    for stale in folder.parent.glob(f".{folder.name}.staging-*"):  # left by a killed build
        shutil.rmtree(stale, ignore_errors=True)
    try:
        staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}.staging-", dir=folder.parent))
    except OSError as exc:
        raise _not_writable(folder, exc) from None
    try:
        started = time.perf_counter()
        payload = build(staging) or {}
        seconds = time.perf_counter() - started
        missing = [file for file in files if not (staging / file).is_file()]
        if missing:
            raise RuntimeError(f"deitlab cache: building {folder.name} did not write {', '.join(missing)}")
        records = {f: {"sha256": sha256_file(staging / f), "bytes": (staging / f).stat().st_size} for f in files}
        meta = {
            "format": FORMAT_VERSION,
            "kind": kind,
            "key": _normal_key(key),
            "code_version": CODE_VERSION,
            "files": records,
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
            "build_seconds": round(seconds, 3),
            "built_by": _built_by(),
            "payload": payload,
        }
        text = json.dumps(meta, indent=1)  # fails here, before anything is replaced, if the payload is not JSON
        folder.mkdir(exist_ok=True)
        (folder / METADATA).unlink(missing_ok=True)  # uncommit the old entry first
        for file in files:
            _fsync_replace(staging / file, folder / file)
        atomic_write(folder / METADATA, lambda tmp: tmp.write_text(text))
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    for file, record in records.items():
        stat = (folder / file).stat()
        _verified[(str(folder / file), stat.st_mtime_ns, stat.st_size)] = record["sha256"]
    return meta


def lookup(kind: str, name: str, key: dict) -> Entry | None:
    """The complete, undamaged entry ``name`` with ``key``, or None (takes no lock, writes nothing)."""
    folder = entry_folder(kind, name, key)
    meta, _ = _inspect(folder, key)
    return None if meta is None else Entry(kind, folder, meta)


def get_or_build(
    kind: str,
    name: str,
    key: dict,
    build: Callable[[Path], dict | None],
    files: Sequence[str],
    rebuild: bool = False,
) -> Entry:
    """The entry ``name`` with ``key`` of ``kind``, built first when missing, damaged or ``rebuild``.

    ``build(staging)`` writes every file named in ``files`` into the folder ``staging``
    and returns the entry's payload (a JSON-able dict, or None). ``key`` (a JSON-able
    dict) must hold everything that shapes the files; its digest is part of the folder
    name. A complete entry loads without a lock; a build holds the entry's lock, and a
    damaged entry is announced in one line on stderr before it is rebuilt. Raises
    :class:`CacheError` naming the folder when something must be built but cannot be.
    """
    files = [_check_name("file", file) for file in files]
    if not files or METADATA in files:
        raise ValueError(f"an entry needs at least one data file, and none called {METADATA}")
    folder = entry_folder(kind, name, key)
    if not rebuild:
        meta, problem = _inspect(folder, key)
        if meta is not None:
            return Entry(kind, folder, meta)
        if problem is not None:
            _announce(f"{problem}; rebuilding")
    with _build_lock(folder):
        if not rebuild:
            meta, _ = _inspect(folder, key)
            if meta is not None:  # another process built it while we waited
                return Entry(kind, folder, meta)
        meta = _build(kind, folder, key, build, files)
    return Entry(kind, folder, meta)


# --- for instructors: list, verify, clear ------------------------------------------------------


def _entry_folders() -> Iterator[tuple[str, Path]]:
    root = _root()
    for kind in sorted(p for p in root.iterdir() if p.is_dir() and _NAME.match(p.name)):
        for folder in sorted(p for p in kind.iterdir() if p.is_dir() and _NAME.match(p.name)):
            yield kind.name, folder


def _read_meta(folder: Path) -> dict:
    try:
        meta = json.loads((folder / METADATA).read_text())
        return meta if isinstance(meta, dict) else {}
    except (OSError, ValueError):
        return {}


def list_entries() -> list[Entry]:
    """Every entry in the cache, complete or not (metadata read, files not hashed)."""
    return [Entry(kind, folder, _read_meta(folder)) for kind, folder in _entry_folders()]


def verify() -> list[Problem]:
    """Re-hash every entry's files; one :class:`Problem` per damaged or incomplete entry."""
    problems = []
    for _, folder in _entry_folders():
        meta, why = _inspect(folder, None, fresh=True)
        if meta is None:
            problems.append(Problem(folder, why or f"incomplete: no {METADATA} (an interrupted build)"))
    return problems


def clear(pattern: str | None = None) -> list[Path]:
    """Delete the entries whose ``<kind>/<name>`` matches the glob ``pattern`` (all when None).

    Also removes leftovers of interrupted builds and, with no pattern, the lock files.
    Returns the deleted entry folders.
    """
    removed = []
    for kind, folder in list(_entry_folders()):
        if (
            pattern is None
            or fnmatch.fnmatch(f"{kind}/{folder.name}", pattern)
            or fnmatch.fnmatch(folder.name, pattern)
        ):
            (folder / METADATA).unlink(missing_ok=True)
            shutil.rmtree(folder)
            removed.append(folder)
    root = _root()
    for leftover in root.glob("*/.*.staging-*"):
        shutil.rmtree(leftover, ignore_errors=True)
    if pattern is None:
        for lock in root.glob("*/.*.lock"):
            lock.unlink(missing_ok=True)
    return removed
