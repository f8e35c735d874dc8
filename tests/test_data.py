"""The data-set layer: digits, CIFAR archives (found, downloaded, checked, unpacked safely, read
without running code), image folders, and the batches with their augmentations.

The CIFAR tests build tiny archives in the official layout (Python 2 pickles, 20 images a batch)
in tmp_path, and serve them from a local HTTP server on 127.0.0.1 or a file:// URL; no test
reaches the internet. One test reads the real CIFAR-10 when ../shared/data has it.
"""
import dataclasses
import hashlib
import io
import os
import pickle
import shutil
import socket
import struct
import subprocess
import sys
import tarfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from minivit import backend
from minivit.data import (Augment, DataError, batches, cutmix, horizontal_flip, load_dataset, mixup,
                          random_crop, random_erasing, standardize)
from minivit.data import cifar, download
from minivit.data.archive import safe_extract
from minivit.data.dataset import channel_stats
from minivit.data.download import md5sum
from minivit.data.unpickle import load_pickle

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
PER_BATCH = 20


# --- tiny archives in the official format ------------------------------------------------------

class Py2Str(bytes):
    """Bytes that pickle as a Python 2 str, as the official CIFAR files hold their keys."""


class Py2Pickler(pickle._Pickler):
    """Writes pickles like Python 2's cPickle did for the official files."""
    dispatch = pickle._Pickler.dispatch.copy()

    def save_py2str(self, obj):
        self.write(pickle.BINSTRING + struct.pack("<i", len(obj)) + bytes(obj))
        self.memoize(obj)

    dispatch[Py2Str] = save_py2str

    def reducer_override(self, obj):
        """Arrays and dtypes as NumPy reduces them, with their strings as Python 2 strs."""
        if isinstance(obj, np.ndarray):
            function, (cls, shape, code), state = obj.__reduce__()
            return function, (cls, shape, Py2Str(code)), (*state[:-1], Py2Str(obj.tobytes()))
        if isinstance(obj, np.dtype):
            function, (kind, *flags), (version, order, *rest) = obj.__reduce__()
            state = (version, Py2Str(order.encode()), *rest)
            return function, (Py2Str(kind.encode()), *flags), state
        return NotImplemented


def py2_pickle(obj):
    f = io.BytesIO()
    Py2Pickler(f, protocol=2).dump(obj)
    # the official files were written with NumPy 1, which named this module numpy.core
    return f.getvalue().replace(b"numpy._core.multiarray", b"numpy.core.multiarray")


def cifar_batch(data, labels, label_key=b"labels"):
    return py2_pickle({Py2Str(b"batch_label"): Py2Str(b"a tiny batch"),
                       Py2Str(label_key): [int(label) for label in labels],
                       Py2Str(b"data"): data,
                       Py2Str(b"filenames"): [Py2Str(b"%d.png" % i) for i in range(len(labels))]})


def write_tar(path, files):
    """A .tar.gz holding {member name: bytes}."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w:gz") as tar:
        for name, blob in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(blob)
            tar.addfile(info, io.BytesIO(blob))
    return path


def cifar10_files(seed=0):
    """The members of a tiny CIFAR-10 archive (5 training batches and a test batch of PER_BATCH
    images, and batches.meta), and its rows of pixels (N 3072) and labels (N)."""
    rng = np.random.default_rng(seed)
    data = rng.integers(0, 256, size=(6 * PER_BATCH, 3072), dtype=np.uint8)
    labels = rng.integers(0, 10, size=6 * PER_BATCH)
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    files = {f"cifar-10-batches-py/{name}": cifar_batch(data[b * PER_BATCH:(b + 1) * PER_BATCH],
                                                        labels[b * PER_BATCH:(b + 1) * PER_BATCH])
             for b, name in enumerate(names)}
    files["cifar-10-batches-py/batches.meta"] = py2_pickle(
        {Py2Str(b"label_names"): [Py2Str(c.encode()) for c in CLASSES],
         Py2Str(b"num_cases_per_batch"): PER_BATCH, Py2Str(b"num_vis"): 3072})
    files["cifar-10-batches-py/readme.html"] = b"<p>tiny</p>"
    return files, data, labels


def tiny_cifar10(path, seed=0):
    """Write a tiny CIFAR-10 archive at `path`; return (path, pixel rows, labels)."""
    files, data, labels = cifar10_files(seed)
    return write_tar(path, files), data, labels


def accept_as_official(monkeypatch, archive, name="cifar10"):
    """Make `archive` the one with the 'official' checksum for the rest of the test."""
    spec = dataclasses.replace(cifar.ARCHIVES[name], md5=md5sum(archive))
    monkeypatch.setitem(cifar.ARCHIVES, name, spec)


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    """No test reaches the internet: the CIFAR base URL is a closed port on 127.0.0.1, retries
    do not wait, and reads time out after 5 s."""
    monkeypatch.setenv(cifar.URL_VARIABLE, f"http://127.0.0.1:{closed_port()}")
    monkeypatch.setattr(download, "RETRY_DELAY_S", 0)
    monkeypatch.setattr(download, "TIMEOUT_S", 5)


def closed_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def server():
    """An HTTP server on 127.0.0.1 in a thread, stopped after the test. It serves
    server.files {"/name": bytes}; the first server.broken responses stop halfway."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            body = self.server.files.get(self.path)
            if body is None:
                self.send_error(404)
                return
            self.server.requests += 1
            broken = self.server.requests <= self.server.broken
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body[:len(body) // 2] if broken else body)

        def log_message(self, *args):
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.files, httpd.requests, httpd.broken = {}, 0, 0
    httpd.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, kwargs=dict(poll_interval=0.05))
    thread.start()
    try:
        yield httpd
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


# --- data sets ---------------------------------------------------------------------------------

def test_digits_shapes_and_split():
    data = load_dataset("digits")
    assert data.train_images.shape == (1437, 1, 8, 8) and data.test_images.shape == (360, 1, 8, 8)
    assert data.train_images.dtype == np.uint8 and data.train_labels.dtype == np.int64
    assert data.train_images.max() == 255 and data.classes == [str(d) for d in range(10)]
    assert np.bincount(data.test_labels).min() >= 35  # stratified: every digit in the test set
    assert len(data.mean) == len(data.std) == 1 and 0 < data.mean[0] < 1 and 0 < data.std[0] < 1
    again = load_dataset("digits")
    np.testing.assert_array_equal(again.test_images, data.test_images)  # a fixed split


@pytest.mark.parametrize("name", ["mnist", "digits:x", "folder:", "cifar-10"])
def test_unknown_name_lists_the_valid_names(name):
    with pytest.raises(DataError, match="unknown data set .*digits, cifar10, cifar100"):
        load_dataset(name)


def test_fixed_size_data_sets_are_not_resized():
    assert load_dataset("digits", image_size=8).train_images.shape[-1] == 8
    with pytest.raises(DataError, match="digits images are 8x8"):
        load_dataset("digits", image_size=32)


def test_channel_stats_match_numpy():
    images = np.random.default_rng(0).integers(0, 256, size=(7, 3, 5, 4), dtype=np.uint8)
    mean, std = channel_stats(images)
    np.testing.assert_allclose(mean, images.mean(axis=(0, 2, 3)) / 255)
    np.testing.assert_allclose(std, images.std(axis=(0, 2, 3)) / 255)


def test_cifar10_from_an_archive_in_data_dir(tmp_path, monkeypatch):
    data_dir = tmp_path / "data"
    archive, rows, labels = tiny_cifar10(data_dir / "cifar-10-python.tar.gz")
    accept_as_official(monkeypatch, archive)
    data = load_dataset("cifar10", data_dir=data_dir)  # offline: any download would fail
    n = 5 * PER_BATCH
    assert data.train_images.shape == (n, 3, 32, 32)
    assert data.test_images.shape == (PER_BATCH, 3, 32, 32)
    assert data.train_images.dtype == np.uint8 and data.train_labels.dtype == np.int64
    assert data.classes == CLASSES and data.name == "cifar10"
    np.testing.assert_array_equal(data.train_labels, labels[:n])
    np.testing.assert_array_equal(data.test_labels, labels[n:])
    # a row holds the red plane, then green, then blue, each 32 rows of 32 pixels
    image, row = data.train_images[0], rows[0]
    assert image[0, 0, 1] == row[1] and image[0, 1, 0] == row[32] and image[1, 0, 0] == row[1024]
    np.testing.assert_array_equal(data.test_images.reshape(PER_BATCH, 3072), rows[n:])
    np.testing.assert_allclose(data.mean, data.train_images.mean(axis=(0, 2, 3)) / 255)
    assert (data_dir / "cifar-10-python.npz").is_file()


def test_second_load_reads_the_cache(tmp_path, monkeypatch):
    archive, _, _ = tiny_cifar10(tmp_path / "cifar-10-python.tar.gz")
    accept_as_official(monkeypatch, archive)
    first = load_dataset("cifar10", data_dir=tmp_path)

    def no_unpacking(*args):
        raise AssertionError("the archive was unpacked again")

    monkeypatch.setattr(cifar, "safe_extract", no_unpacking)
    second = load_dataset("cifar10", data_dir=tmp_path)
    np.testing.assert_array_equal(second.train_images, first.train_images)
    assert second.classes == first.classes


def test_cache_of_another_archive_is_not_used(tmp_path, monkeypatch):
    archive, _, _ = tiny_cifar10(tmp_path / "cifar-10-python.tar.gz", seed=0)
    accept_as_official(monkeypatch, archive)
    load_dataset("cifar10", data_dir=tmp_path)
    archive, rows, _ = tiny_cifar10(tmp_path / "cifar-10-python.tar.gz", seed=1)
    accept_as_official(monkeypatch, archive)
    data = load_dataset("cifar10", data_dir=tmp_path)
    np.testing.assert_array_equal(data.train_images.reshape(-1, 3072), rows[:5 * PER_BATCH])


def test_cifar100_from_an_archive(tmp_path, monkeypatch):
    rng = np.random.default_rng(0)
    data = rng.integers(0, 256, size=(2 * PER_BATCH, 3072), dtype=np.uint8)
    labels = rng.integers(0, 100, size=2 * PER_BATCH)
    names = [Py2Str(b"class_%d" % i) for i in range(100)]
    archive = write_tar(tmp_path / "cifar-100-python.tar.gz", {
        "cifar-100-python/train": cifar_batch(data[:PER_BATCH], labels[:PER_BATCH], b"fine_labels"),
        "cifar-100-python/test": cifar_batch(data[PER_BATCH:], labels[PER_BATCH:], b"fine_labels"),
        "cifar-100-python/meta": py2_pickle({Py2Str(b"fine_label_names"): names,
                                             Py2Str(b"coarse_label_names"): names[:20]})})
    accept_as_official(monkeypatch, archive, "cifar100")
    loaded = load_dataset("cifar100", data_dir=tmp_path)
    assert loaded.train_images.shape == (PER_BATCH, 3, 32, 32) and len(loaded.classes) == 100
    assert loaded.classes[7] == "class_7"
    np.testing.assert_array_equal(loaded.test_labels, labels[PER_BATCH:])


def test_a_given_archive_with_another_checksum_only_warns(tmp_path):
    archive, _, _ = tiny_cifar10(tmp_path / "elsewhere" / "my-cifar.tar.gz")
    with pytest.warns(UserWarning, match="not the official cifar-10-python.tar.gz"):
        data = load_dataset(f"cifar10:{archive}", data_dir=tmp_path / "data")
    assert len(data.train_labels) == 5 * PER_BATCH
    assert (tmp_path / "data" / "cifar-10-python.npz").is_file()


def test_an_archive_in_data_dir_with_the_wrong_checksum_is_refused(tmp_path):
    archive, _, _ = tiny_cifar10(tmp_path / "cifar-10-python.tar.gz")
    with pytest.raises(DataError, match=r"has MD5 .* not the official .*--dataset cifar10:") as e:
        load_dataset("cifar10", data_dir=tmp_path)
    assert "\n" not in str(e.value)
    assert archive.is_file()  # the user's file is theirs to delete


def test_no_network_and_no_archive_says_where_to_put_it(tmp_path):
    data_dir = tmp_path / "data"
    for download_allowed in (True, False):
        with pytest.raises(DataError) as error:
            load_dataset("cifar10", data_dir=data_dir, download=download_allowed)
        message = str(error.value)
        assert str(data_dir / "cifar-10-python.tar.gz") in message and "--dataset digits" in message
        assert "\n" not in message
    assert not data_dir.exists() or not any(data_dir.iterdir())


def test_a_missing_given_archive(tmp_path):
    with pytest.raises(DataError, match="no CIFAR-10 archive at"):
        load_dataset(f"cifar10:{tmp_path / 'nothing.tar.gz'}", data_dir=tmp_path)


# --- downloading -------------------------------------------------------------------------------

def test_download_from_a_local_http_server(tmp_path, monkeypatch, server):
    archive, _, labels = tiny_cifar10(tmp_path / "mirror" / "cifar-10-python.tar.gz")
    accept_as_official(monkeypatch, archive)
    server.files["/cifar-10-python.tar.gz"] = archive.read_bytes()
    monkeypatch.setenv(cifar.URL_VARIABLE, server.url + "/")
    data_dir = tmp_path / "data"
    data = load_dataset("cifar10", data_dir=data_dir)
    np.testing.assert_array_equal(data.test_labels, labels[5 * PER_BATCH:])
    assert (data_dir / "cifar-10-python.tar.gz").read_bytes() == archive.read_bytes()
    assert not list(data_dir.glob("*.part"))
    load_dataset("cifar10", data_dir=data_dir)
    assert server.requests == 1  # downloaded once


def test_download_from_a_file_url(tmp_path):
    source = tmp_path / "mirror" / "file.bin"
    source.parent.mkdir()
    source.write_bytes(b"x" * 3000)
    target = tmp_path / "data" / "file.bin"
    download.download(source.as_uri(), target, md5sum(source))
    assert target.read_bytes() == source.read_bytes()


def test_an_interrupted_download_is_retried(tmp_path, server):
    server.files["/file.bin"] = body = os.urandom(100_000)
    server.broken = 1
    target = tmp_path / "file.bin"
    download.download(f"{server.url}/file.bin", target, hashlib.md5(body).hexdigest())
    assert target.read_bytes() == body and server.requests == 2


def test_a_download_that_keeps_failing_leaves_no_file(tmp_path, monkeypatch, server):
    archive, _, _ = tiny_cifar10(tmp_path / "mirror" / "cifar-10-python.tar.gz")
    accept_as_official(monkeypatch, archive)
    server.files["/cifar-10-python.tar.gz"] = archive.read_bytes()
    server.broken = download.ATTEMPTS
    monkeypatch.setenv(cifar.URL_VARIABLE, server.url)
    data_dir = tmp_path / "data"
    with pytest.raises(DataError, match=r"download failed .*closed after .*attempt 3 of 3"):
        load_dataset("cifar10", data_dir=data_dir)
    assert list(data_dir.iterdir()) == [] and server.requests == download.ATTEMPTS


def test_a_download_with_the_wrong_checksum_is_deleted(tmp_path, monkeypatch, server):
    server.files["/cifar-10-python.tar.gz"] = b"not the archive"
    monkeypatch.setenv(cifar.URL_VARIABLE, server.url)
    data_dir = tmp_path / "data"
    with pytest.raises(DataError, match=r"has MD5 .* so it was deleted"):
        load_dataset("cifar10", data_dir=data_dir)
    assert list(data_dir.iterdir()) == []


def test_a_missing_file_on_the_server_is_not_retried(tmp_path, server):
    with pytest.raises(download.DownloadError, match="Not Found .*attempt 1 of"):
        download.download(f"{server.url}/nothing", tmp_path / "nothing", "0" * 32)


# --- unsafe and damaged archives ---------------------------------------------------------------

def test_a_truncated_archive(tmp_path):
    archive, _, _ = tiny_cifar10(tmp_path / "cifar-10-python.tar.gz")
    archive.write_bytes(archive.read_bytes()[:archive.stat().st_size // 2])
    with pytest.warns(UserWarning), pytest.raises(DataError, match="truncated or corrupt .*delete"):
        load_dataset(f"cifar10:{archive}", data_dir=tmp_path / "data")


def unsafe_member(kind, outside):
    """A tar member that escapes the destination by a `..`, an absolute path, or a link."""
    names = {"dotdot": "cifar-10-batches-py/../../escaped.txt", "absolute": str(outside)}
    info = tarfile.TarInfo(names.get(kind, "cifar-10-batches-py/link"))
    if kind == "symlink":
        info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
    if kind == "hardlink":
        info.type, info.linkname = tarfile.LNKTYPE, "/etc/passwd"
    return info


@pytest.mark.parametrize("kind, message", [("dotdot", "would be written outside"),
                                           ("absolute", "would be written outside"),
                                           ("symlink", "is a link"), ("hardlink", "is a link")])
def test_members_outside_data_dir_are_refused(tmp_path, kind, message):
    archive = tmp_path / "evil.tar.gz"
    files, _, _ = cifar10_files()
    with tarfile.open(archive, "w:gz") as tar:
        for name, blob in list(files.items())[:2]:
            info = tarfile.TarInfo(name)
            info.size = len(blob)
            tar.addfile(info, io.BytesIO(blob))
        info = unsafe_member(kind, tmp_path / "absolute.txt")
        blob = b"pwned"
        info.size = len(blob) if info.isfile() else 0
        tar.addfile(info, io.BytesIO(blob) if info.isfile() else None)
    data_dir = tmp_path / "data"
    with pytest.raises(DataError, match=message):
        safe_extract(archive, data_dir)
    assert not (tmp_path / "escaped.txt").exists() and not (tmp_path / "absolute.txt").exists()
    assert not data_dir.exists()  # every member is checked before anything is written


class Evil:
    """Unpickling this runs a shell command that creates `marker`."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_the_unpickler_refuses_a_malicious_pickle(tmp_path):
    marker = tmp_path / "it-ran"
    path = tmp_path / "data_batch_1"
    path.write_bytes(pickle.dumps({b"data": Evil(marker)}, protocol=4))
    with pytest.raises(DataError, match=r"refusing to unpickle \w+\.system"):
        load_pickle(path)
    assert not marker.exists()


def test_a_malicious_pickle_in_an_archive_is_refused(tmp_path):
    marker = tmp_path / "it-ran"
    files, _, _ = cifar10_files()
    files["cifar-10-batches-py/data_batch_1"] = pickle.dumps(Evil(marker), protocol=4)
    archive = write_tar(tmp_path / "evil.tar.gz", files)
    with pytest.warns(UserWarning), pytest.raises(DataError, match="refusing to unpickle"):
        load_dataset(f"cifar10:{archive}", data_dir=tmp_path / "data")
    assert not marker.exists()


def test_a_pickle_that_is_not_a_cifar_batch(tmp_path):
    files, _, _ = cifar10_files()
    files["cifar-10-batches-py/data_batch_2"] = py2_pickle({Py2Str(b"data"): [1, 2, 3]})
    archive = write_tar(tmp_path / "odd.tar.gz", files)
    with pytest.warns(UserWarning), pytest.raises(DataError, match="lacks the keys"):
        load_dataset(f"cifar10:{archive}", data_dir=tmp_path / "data")


def test_an_earlier_extraction_is_never_read(tmp_path):
    """An archive that lacks a member is refused even when a good archive was unpacked into the
    same data dir before: each archive is unpacked afresh, and nothing stays behind."""
    data_dir = tmp_path / "data"
    good, _, _ = tiny_cifar10(tmp_path / "good.tar.gz")
    with pytest.warns(UserWarning):
        load_dataset(f"cifar10:{good}", data_dir=data_dir)
    assert sorted(p.name for p in data_dir.iterdir()) == ["cifar-10-python.npz"]
    files, _, _ = cifar10_files(seed=1)
    del files["cifar-10-batches-py/test_batch"]
    broken = write_tar(tmp_path / "broken.tar.gz", files)
    with pytest.warns(UserWarning), pytest.raises(DataError, match="has no cifar-10-batches-py/test_batch"):
        load_dataset(f"cifar10:{broken}", data_dir=data_dir)
    assert sorted(p.name for p in data_dir.iterdir()) == ["cifar-10-python.npz"]


def test_an_archive_cannot_plant_files_or_a_cache(tmp_path):
    """Members other than the CIFAR pickles are not unpacked: not a cache of made-up images
    beside the real one, nor anything else."""
    files, data, _ = cifar10_files()
    fake = io.BytesIO()
    np.savez(fake, train_images=np.zeros((1, 3, 32, 32), np.uint8))
    files["cifar-10-python.npz"] = fake.getvalue()
    files["cifar-10-batches-py/extra.txt"] = b"planted"
    archive = write_tar(tmp_path / "extra.tar.gz", files)
    with pytest.warns(UserWarning):
        loaded = load_dataset(f"cifar10:{archive}", data_dir=tmp_path / "data")
    assert loaded.train_images.shape == (5 * PER_BATCH, 3, 32, 32)
    np.testing.assert_array_equal(loaded.test_images.reshape(PER_BATCH, -1), data[5 * PER_BATCH:])
    assert sorted(p.name for p in (tmp_path / "data").iterdir()) == ["cifar-10-python.npz"]


def test_an_archive_that_would_unpack_too_much_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(cifar, "MAX_UNPACKED", 10_000)  # the tiny archive's members hold more
    archive, _, _ = tiny_cifar10(tmp_path / "big.tar.gz")
    with pytest.warns(UserWarning), pytest.raises(DataError, match="would unpack to .* bytes"):
        load_dataset(f"cifar10:{archive}", data_dir=tmp_path / "data")
    assert not any((tmp_path / "data").iterdir())


def test_an_archive_of_too_many_members_is_refused(tmp_path):
    files = {f"junk/{i}": b"" for i in range(1001)}
    archive = write_tar(tmp_path / "many.tar.gz", files)
    with pytest.raises(DataError, match="more than 1000 members"):
        safe_extract(archive, tmp_path / "data")


@pytest.mark.parametrize("labels, message", [
    ([10] * PER_BATCH, "labels from 0 to 9"),
    ([-1] * PER_BATCH, "labels from 0 to 9"),
    ([1] * (PER_BATCH - 1), "labels from 0 to 9"),
    (b"x" * PER_BATCH, "labels from 0 to 9"),
    (7, "labels from 0 to 9"),
])
def test_labels_out_of_range_or_of_the_wrong_kind_are_refused(tmp_path, labels, message):
    files, data, _ = cifar10_files()
    batch = {Py2Str(b"data"): data[:PER_BATCH], Py2Str(b"labels"): labels}
    files["cifar-10-batches-py/data_batch_3"] = py2_pickle(batch)
    archive = write_tar(tmp_path / "labels.tar.gz", files)
    with pytest.warns(UserWarning), pytest.raises(DataError, match=message):
        load_dataset(f"cifar10:{archive}", data_dir=tmp_path / "data")


# --- image folders -----------------------------------------------------------------------------

def write_images(root, counts, size=(12, 10)):
    """counts: {"train/cat": 3, ...}; random RGB images of `size` (width, height)."""
    rng = np.random.default_rng(0)
    for folder, count in counts.items():
        (root / folder).mkdir(parents=True, exist_ok=True)
        for i in range(count):
            pixels = rng.integers(0, 256, size=(size[1], size[0], 3), dtype=np.uint8)
            Image.fromarray(pixels).save(root / folder / f"{i}.png")


def test_folder_data_set(tmp_path):
    write_images(tmp_path, {"train/dog": 3, "train/cat": 2, "test/cat": 1, "test/dog": 2})
    (tmp_path / "train" / "cat" / "more.png").mkdir()  # a folder, not an image
    (tmp_path / "train" / "cat" / "notes.txt").write_text("not an image")
    Image.new("L", (20, 20), 128).save(tmp_path / "train" / "dog" / "grey.jpg")
    data = load_dataset(f"folder:{tmp_path}", image_size=8)
    assert data.classes == ["cat", "dog"]
    assert data.train_images.shape == (6, 3, 8, 8) and data.test_images.shape == (3, 3, 8, 8)
    assert data.train_images.dtype == np.uint8 and data.train_labels.dtype == np.int64
    np.testing.assert_array_equal(data.train_labels, [0, 0, 1, 1, 1, 1])
    np.testing.assert_array_equal(data.test_labels, [0, 1, 1])
    assert (abs(data.train_images[-1].astype(int) - 128) <= 2).all()  # grey.jpg, read as RGB


def test_folder_keeps_the_size_of_same_size_images(tmp_path):
    write_images(tmp_path, {"train/a": 2, "test/a": 1}, size=(6, 6))
    assert load_dataset(f"folder:{tmp_path}").train_images.shape == (2, 3, 6, 6)


@pytest.mark.parametrize("counts, path, message", [
    ({}, "missing", "no folder"),
    ({"train/a": 1}, "", "has no test/ folder"),
    ({"train/a": 0, "test/a": 0}, "", "has no .png/.jpg/.jpeg images"),
    ({"train": 0, "test": 0}, "", "has no class folders"),
    ({"train/a": 1, "test/b": 1}, "", "is not a class"),
])
def test_folder_errors(tmp_path, counts, path, message):
    write_images(tmp_path, counts)
    with pytest.raises(DataError, match=message):
        load_dataset(f"folder:{tmp_path / path}", image_size=8)


def test_folder_images_of_different_sizes_need_an_image_size(tmp_path):
    write_images(tmp_path, {"train/a": 1, "test/a": 1}, size=(8, 8))
    write_images(tmp_path, {"train/b": 1}, size=(9, 7))
    with pytest.raises(DataError, match="different sizes .*--image-size"):
        load_dataset(f"folder:{tmp_path}")


# --- batches and augmentation ------------------------------------------------------------------

def toy_data(n=50, channels=3, size=8, seed=0):
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(n, channels, size, size), dtype=np.uint8)
    return images, np.arange(n, dtype=np.int64), *channel_stats(images)


def test_batches_cover_the_data_with_the_right_shapes():
    images, labels, mean, std = toy_data()
    out = list(batches(images, labels, 16, mean=mean, std=std, shuffle=True,
                       rng=np.random.default_rng(0), augment="strong"))
    assert [len(y) for _, y in out] == [16, 16, 16, 2]
    for x, y in out:
        assert x.dtype == np.float32 and x.shape == (len(y), 3, 8, 8) and y.dtype == np.int64
    seen = np.concatenate([y for _, y in out])
    assert sorted(seen) == list(labels) and list(seen) != list(labels)  # each once, shuffled
    kept = list(batches(images, labels, 16, mean=mean, std=std, drop_last=True))
    assert [len(y) for _, y in kept] == [16, 16, 16]


def test_batches_are_reproducible():
    images, labels, mean, std = toy_data()

    def run(seed):
        return [x for x, _ in batches(images, labels, 16, mean=mean, std=std, shuffle=True,
                                      rng=np.random.default_rng(seed), augment="strong")]

    assert all(np.array_equal(a, b) for a, b in zip(run(1), run(1)))
    assert not all(np.array_equal(a, b) for a, b in zip(run(1), run(2)))


def test_batches_are_normalised():
    images, labels, mean, std = toy_data(n=200)
    x = np.concatenate([x for x, _ in batches(images, labels, 64, mean=mean, std=std)])
    np.testing.assert_allclose(x.mean(axis=(0, 2, 3)), 0, atol=1e-5)
    np.testing.assert_allclose(x.std(axis=(0, 2, 3)), 1, atol=1e-4)
    np.testing.assert_allclose(x, standardize(images, mean, std))


def test_augment_presets():
    assert Augment.named("basic", 32) == Augment(crop=4, flip=True)
    assert Augment.named("crop", 8) == Augment(crop=1)
    assert Augment.named("strong", 32).erase > 0 and Augment.named("none", 32) == Augment()
    with pytest.raises(DataError, match="unknown augmentation 'wild': use none, crop, basic, strong"):
        Augment.named("wild", 32)


def test_horizontal_flip_on_a_hand_made_image():
    image = np.array([[[[1, 2, 3], [4, 5, 6]]]], dtype=np.uint8)  # (1 1 2 3)
    rng = np.random.default_rng(0)
    np.testing.assert_array_equal(horizontal_flip(image, rng, p=1.0), [[[[3, 2, 1], [6, 5, 4]]]])
    np.testing.assert_array_equal(horizontal_flip(image, rng, p=0.0), image)
    many = np.repeat(image, 200, axis=0)
    flipped = (horizontal_flip(many, rng) != many).any(axis=(1, 2, 3))
    assert 60 < flipped.sum() < 140  # about half
    assert np.isin(horizontal_flip(many, rng)[:, 0, 0, 0], [1, 3]).all()  # whole images mirror


class Offsets:
    """Stands in for a Generator in random_crop: `integers` returns the tops, then the lefts."""

    def __init__(self, tops, lefts):
        self.draws = [np.array(tops), np.array(lefts)]

    def integers(self, low, high, size):
        return self.draws.pop(0)


def test_random_crop_on_a_hand_made_image():
    image = np.arange(1, 10, dtype=np.uint8).reshape(1, 1, 3, 3)  # [[1 2 3] [4 5 6] [7 8 9]]
    out = random_crop(np.repeat(image, 3, axis=0), 1, Offsets(tops=[0, 1, 2], lefts=[0, 1, 0]))
    np.testing.assert_array_equal(out[0, 0], [[0, 0, 0], [0, 1, 2], [0, 4, 5]])  # down-right
    np.testing.assert_array_equal(out[1, 0], image[0, 0])                          # centred
    np.testing.assert_array_equal(out[2, 0], [[0, 4, 5], [0, 7, 8], [0, 0, 0]])    # up-right
    shifted = random_crop(np.repeat(image, 100, axis=0), 1, np.random.default_rng(0))
    assert shifted.shape == (100, 1, 3, 3) and shifted.dtype == np.uint8
    assert (shifted[:, 0, 1, 1] > 0).all()  # a shift of at most 1 keeps a pixel in the centre


def test_random_erasing_fills_one_rectangle():
    images = np.ones((40, 3, 16, 16), dtype=np.float32)
    out = random_erasing(images, np.random.default_rng(0), p=1.0)
    assert out.shape == images.shape and out.dtype == np.float32
    for erased in out == 0:
        assert (erased == erased[0]).all()  # the same pixels in every channel
        rows, cols = erased[0].any(axis=1), erased[0].any(axis=0)
        assert rows.any() and (erased[0] == np.outer(rows, cols)).all()  # one rectangle
    np.testing.assert_array_equal(random_erasing(images, np.random.default_rng(0), p=0.0), images)


def test_mixup_and_cutmix():
    B = 32
    images = np.broadcast_to(np.arange(B, dtype=np.float32)[:, None, None, None], (B, 3, 8, 8))
    labels = np.arange(B)
    x, y_a, y_b, lam = mixup(images, labels, np.random.default_rng(0), alpha=1.0)
    assert x.shape == images.shape and x.dtype == np.float32 and 0 <= lam <= 1
    np.testing.assert_array_equal(y_a, labels)
    assert sorted(y_b) == list(labels)
    np.testing.assert_allclose(x[:, 0, 0, 0], lam * labels + (1 - lam) * y_b, rtol=1e-6)
    x, y_a, y_b, lam = cutmix(images, labels, np.random.default_rng(3))
    assert x.shape == images.shape and sorted(y_b) == list(labels)
    own = (x == labels[:, None, None, None]).mean(axis=(1, 2, 3))
    pasted = (x == y_b[:, None, None, None]).mean(axis=(1, 2, 3))
    moved = y_b != labels  # an image paired with itself keeps all its pixels
    np.testing.assert_allclose(own[moved], lam)
    np.testing.assert_allclose(pasted[moved], 1 - lam)
    assert 0 < lam < 1


def test_batches_on_the_device(xp, device):
    images, labels, mean, std = toy_data()
    on_device = backend.to_device(images, device)
    out = list(batches(on_device, labels, 16, mean=mean, std=std, shuffle=True,
                       rng=np.random.default_rng(0), augment="strong"))
    reference = list(batches(images, labels, 16, mean=mean, std=std, shuffle=True,
                             rng=np.random.default_rng(0), augment="strong"))
    for (x, y), (x_cpu, y_cpu) in zip(out, reference):
        assert isinstance(x, xp.ndarray) and isinstance(y, xp.ndarray)
        np.testing.assert_allclose(backend.to_device(x, "cpu"), x_cpu, rtol=1e-6)
        np.testing.assert_array_equal(backend.to_device(y, "cpu"), y_cpu)
    x = backend.to_device(np.ones((4, 3, 8, 8), np.float32), device)
    y = backend.to_device(np.arange(4), device)
    rng = np.random.default_rng(0)
    for mixed, *_ in (mixup(x, y, rng), cutmix(x, y, rng)):
        assert isinstance(mixed, xp.ndarray) and mixed.shape == x.shape


# --- the real CIFAR-10 -------------------------------------------------------------------------

@pytest.mark.skipif(not (SHARED / "cifar10_tarball.py").is_file(),
                    reason=f"no {SHARED / 'cifar10_tarball.py'}: the shared copy of CIFAR-10 is "
                           f"only on developer machines and CI")
def test_real_cifar10(tmp_path):
    try:
        subprocess.run([sys.executable, str(SHARED / "cifar10_tarball.py"), str(tmp_path)],
                       check=True, capture_output=True, timeout=600)
        with pytest.warns(UserWarning, match="not the official"):
            data = load_dataset(f"cifar10:{tmp_path / 'cifar-10-python.tar.gz'}",
                                data_dir=tmp_path / "data")
        assert data.train_images.shape == (50_000, 3, 32, 32)
        assert data.test_images.shape == (10_000, 3, 32, 32)
        assert data.classes == CLASSES
        assert (np.bincount(data.train_labels) == 5000).all()
        assert (np.bincount(data.test_labels) == 1000).all()
        np.testing.assert_allclose(data.mean, (0.4914, 0.4822, 0.4465), atol=0.01)
        np.testing.assert_allclose(data.std, (0.2470, 0.2435, 0.2616), atol=0.01)
    finally:  # about 500 MB
        (tmp_path / "cifar-10-python.tar.gz").unlink(missing_ok=True)
        shutil.rmtree(tmp_path / "data", ignore_errors=True)
