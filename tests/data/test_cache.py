"""Decoded datasets are cached as .npy under data.root: read back without decompressing, decoded
afresh when the source changes or the entry is unreadable, and never a reason for a run to fail."""

import gzip
import os

import numpy as np
import pytest

from autoencoders.data import cache
from autoencoders.data.sources import read_idx, write_idx


@pytest.fixture
def source(tmp_path, monkeypatch):
    monkeypatch.setattr(cache, "_IN_MEMORY", {})  # each test as a fresh process
    array = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    path = tmp_path / "train-images-idx3-ubyte.gz"
    write_idx(path, array)
    return path, array


def no_gzip(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("decompressed although a cache entry was there")

    monkeypatch.setattr(gzip, "open", refuse)


def test_a_second_process_reads_the_cached_decoding(source, tmp_path, monkeypatch):
    path, array = source
    assert np.array_equal(read_idx(path, 3, tmp_path / "decoded"), array)
    (entry,) = (tmp_path / "decoded").iterdir()
    assert entry.suffix == ".npy" and entry.name.startswith("train-images-idx3-ubyte-")
    monkeypatch.setattr(cache, "_IN_MEMORY", {})
    no_gzip(monkeypatch)
    again = read_idx(path, 3, tmp_path / "decoded")
    assert np.array_equal(again, array)  # from the entry: decompressing would have failed
    assert again.flags.writeable and not isinstance(again, np.memmap)  # in memory: tensors share it, no copy


def test_within_a_process_the_arrays_are_reused(source, tmp_path):
    path, _ = source
    assert read_idx(path, 3, tmp_path / "decoded") is read_idx(path, 3, tmp_path / "decoded")


def test_a_changed_source_is_decoded_afresh(source, tmp_path):
    path, array = source
    read_idx(path, 3, tmp_path / "decoded")
    write_idx(path, array[:1] + 1)
    os.utime(path, ns=(1, 1))  # another modification time, whatever the clock's resolution
    assert np.array_equal(read_idx(path, 3, tmp_path / "decoded"), array[:1] + 1)


def test_an_unreadable_entry_is_decoded_again_and_rewritten(source, tmp_path, monkeypatch):
    path, array = source
    read_idx(path, 3, tmp_path / "decoded")
    (entry,) = (tmp_path / "decoded").iterdir()
    entry.write_bytes(b"half a file")
    monkeypatch.setattr(cache, "_IN_MEMORY", {})
    assert np.array_equal(read_idx(path, 3, tmp_path / "decoded"), array)
    assert np.array_equal(np.load(entry), array)  # whole again


def test_a_cache_that_cannot_be_written_only_costs_the_decoding(source, tmp_path):
    path, array = source
    blocked = tmp_path / "file-not-folder"
    blocked.write_text("")
    assert np.array_equal(read_idx(path, 3, blocked / "decoded"), array)


def test_a_later_job_makes_its_tensors_from_the_kept_arrays_without_a_copy(tmp_path, monkeypatch):
    from autoencoders.data.sources import IDX_FILES, read_idx_folder

    monkeypatch.setattr(cache, "_IN_MEMORY", {})
    for key, stem in IDX_FILES.items():
        shape = (5, 3, 4) if key.endswith("images") else (5,)
        write_idx(tmp_path / "idx" / f"{stem}.gz", np.arange(np.prod(shape), dtype=np.uint8).reshape(shape))
    first, later = (read_idx_folder(tmp_path / "idx", tmp_path / "decoded") for _ in range(2))
    for name in ("train_images", "test_images"):
        assert first[name].shape == (5, 1, 3, 4) and first[name].data_ptr() == later[name].data_ptr()
