"""Decoded datasets kept as uint8 .npy files under data.root, so a run reads them back (memory
mapped) instead of decompressing the gzip idx files again: FashionMNIST's 0.7 s of gzip becomes
a page-cache read. Within one process (a multirun's later jobs) the arrays are kept in memory,
where the data's tensors are made from them without a copy (data/sources.py): nothing may write
to those tensors in place.

Each entry is keyed by the source file's absolute path, size and modification time, so a
replaced or edited file is decoded afresh; an unreadable entry is decoded again and rewritten;
an entry that cannot be written (a read-only data.root) only costs the decoding.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from pathlib import Path

import numpy as np

from autoencoders.atomic import atomic_write

log = logging.getLogger(__name__)
CACHE_FOLDER = "decoded"  # under data.root
_IN_MEMORY: dict[tuple[str, int, int], np.ndarray] = {}


def cached(path: Path, decode: Callable[[Path], np.ndarray], cache_dir: Path | None) -> np.ndarray:
    """`decode(path)`, from this process's memory or the .npy cache in `cache_dir` when they hold
    the same file's decoding (None: no cache on disk)."""
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if key in _IN_MEMORY:
        return _IN_MEMORY[key]
    entry = None
    if cache_dir is not None:
        digest = hashlib.sha1(repr(key).encode()).hexdigest()[:16]
        entry = Path(cache_dir) / f"{path.name.removesuffix('.gz')}-{digest}.npy"
    array = _read(entry) if entry is not None and entry.is_file() else None
    if array is None:
        array = decode(path)
        if entry is not None:
            _write(entry, array)
    array = np.array(array)  # read into memory once, writable: later jobs share it as it is
    _IN_MEMORY[key] = array
    return array


def _read(entry: Path) -> np.ndarray | None:
    try:
        array = np.load(entry, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError):
        log.warning("Decoded-data cache entry %s is unreadable; decoding its source again.", entry)
        return None
    return array if array.dtype == np.uint8 else None


def _write(entry: Path, array: np.ndarray) -> None:
    try:
        with atomic_write(entry, "wb") as handle:
            np.save(handle, np.ascontiguousarray(array), allow_pickle=False)
    except OSError as error:  # a read-only data.root: the run goes on, decoding each time
        log.info("Could not cache decoded data in %s (%s).", entry.parent, error)
