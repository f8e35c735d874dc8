"""CIFAR-10 and CIFAR-100 (Krizhevsky, 2009) from their official python-format archives.

    archive (.tar.gz) -> safe_extract -> pickles (restricted unpickler) -> (N 3 32 32) uint8
                                                        -> cached as NAME.npz, read next time

Where the archive comes from, in order:
  1. `archive=PATH` (the data set name `cifar10:PATH`): a copy you made or were given. A checksum
     other than the official one only warns, since a rebuilt or converted copy is legitimate.
  2. DATA_DIR/cifar-10-python.tar.gz (or cifar-100-python.tar.gz), downloaded earlier or copied
     there by hand: it must have the official MD5, else it is a damaged copy and an error says
     what to do.
  3. A download from the official site into DATA_DIR, checked against the official MD5. The
     environment variable MINIVIT_CIFAR_URL replaces the site's base URL (a mirror, a local
     http:// server or a file:// folder); the file must still have the official checksum.
Only the members a CIFAR archive should have are unpacked, into a new temporary folder inside
DATA_DIR that is deleted once they are decoded: nothing an earlier archive left behind is ever
read, and an archive cannot write anything else into DATA_DIR. The decoded arrays are cached in
DATA_DIR as an .npz that records the archive's MD5, so a second load of the same archive skips
the unpacking and decoding.
"""
import os
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from minivit.checkpoint import load_arrays, save_arrays
from minivit.data.archive import safe_extract
from minivit.data.dataset import Dataset
from minivit.data.download import DownloadError, download, md5sum
from minivit.data.unpickle import load_pickle
from minivit.errors import CheckpointError, DataError

OFFICIAL_URL = "https://www.cs.toronto.edu/~kriz"
URL_VARIABLE = "MINIVIT_CIFAR_URL"
MAX_UNPACKED = 400 * 2 ** 20  # the members of either archive hold about 180 MB


@dataclass(frozen=True)
class Archive:
    """Where a CIFAR variant lives and how its archive is laid out."""
    name: str               # as in load_dataset
    title: str
    filename: str
    md5: str
    folder: str             # the archive's top-level folder
    train: tuple            # the pickles holding the training images
    test: tuple
    meta: str               # the pickle holding the class names
    label_key: bytes
    names_key: bytes
    classes: int

    def members(self):
        return {f"{self.folder}/{name}" for name in (*self.train, *self.test, self.meta)}


ARCHIVES = {
    "cifar10": Archive("cifar10", "CIFAR-10", "cifar-10-python.tar.gz",
                       "c58f30108f718f92721af3b95e74349a", "cifar-10-batches-py",
                       tuple(f"data_batch_{i}" for i in range(1, 6)), ("test_batch",),
                       "batches.meta", b"labels", b"label_names", 10),
    "cifar100": Archive("cifar100", "CIFAR-100", "cifar-100-python.tar.gz",
                        "eb9058c3a382ffc7106e4002c42a8d85", "cifar-100-python", ("train",),
                        ("test",), "meta", b"fine_labels", b"fine_label_names", 100),
}


def load_cifar(name, data_dir="data", archive=None, download=True):
    """CIFAR-10 (name "cifar10") or CIFAR-100 ("cifar100") as a Dataset of (N 3 32 32) uint8
    images, from the archive `archive`, or the one in `data_dir`, or downloaded (see above)."""
    spec, data_dir = ARCHIVES[name], Path(data_dir)
    if data_dir.exists() and not data_dir.is_dir():
        raise DataError(f"the data directory {data_dir} is a file: give a folder with --data-dir")
    path, md5 = find_archive(spec, data_dir, archive, download)
    cache = data_dir / spec.filename.replace(".tar.gz", ".npz")
    arrays = read_cache(cache, md5)
    if arrays is None:
        arrays = decode(spec, path, data_dir)
        save_arrays(cache, {**arrays, "archive_md5": np.array(md5)})
    return Dataset(name, arrays["train_images"], arrays["train_labels"], arrays["test_images"],
                   arrays["test_labels"], [str(c) for c in arrays["classes"]])


def find_archive(spec, data_dir, archive, allow_download):
    """The archive to read and its MD5, following the order in this module's docstring."""
    if archive is not None:
        if not Path(archive).is_file():
            raise DataError(f"no {spec.title} archive at {archive}")
        md5 = md5sum(archive)
        if md5 != spec.md5:
            warnings.warn(f"{archive} is not the official {spec.filename} (MD5 {md5}, official "
                          f"{spec.md5}): using it anyway")
        return Path(archive), md5
    path = data_dir / spec.filename
    if path.is_file():
        md5 = md5sum(path)
        if md5 != spec.md5:
            raise DataError(f"{path} has MD5 {md5}, not the official {spec.md5}: it is damaged or "
                            f"not the official archive. Delete it to download it again, or use it "
                            f"anyway with --dataset {spec.name}:{path}")
        return path, md5
    url = f"{os.environ.get(URL_VARIABLE, OFFICIAL_URL).rstrip('/')}/{spec.filename}"
    if not allow_download:
        raise DataError(missing(spec, path, url, "downloading is off"))
    try:
        download(url, path, spec.md5)
    except DownloadError as error:
        raise DataError(missing(spec, path, url, f"the download failed ({error})")) from None
    return path, spec.md5


def missing(spec, path, url, reason):
    """The message for an archive that is neither on disk nor downloadable."""
    return (f"{spec.title} is not at {path} and {reason}: put {spec.filename} there by hand "
            f"(from {url}), or train offline with --dataset digits")


def read_cache(cache, md5):
    """The cached arrays if `cache` exists, is readable, was made from the archive `md5` and
    holds every array a Dataset needs (else None: the archive is decoded afresh)."""
    if not cache.is_file():
        return None
    try:
        arrays = load_arrays(cache)
    except CheckpointError:
        return None
    needed = ("train_images", "train_labels", "test_images", "test_labels", "classes")
    if str(arrays.get("archive_md5")) != md5 or not all(k in arrays for k in needed):
        return None
    return arrays


def decode(spec, archive, data_dir):
    """Unpack the expected members of `archive` into a new temporary folder in `data_dir`, read
    its pickles into arrays, and delete the folder."""
    data_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=data_dir, prefix=".unpacking-") as scratch:
        safe_extract(archive, scratch, only=spec.members(), max_bytes=MAX_UNPACKED)
        folder = Path(scratch) / spec.folder
        try:
            train_images, train_labels = read_batches(spec, [folder / n for n in spec.train])
            test_images, test_labels = read_batches(spec, [folder / n for n in spec.test])
            names = read_pickle(folder / spec.meta, [spec.names_key])[spec.names_key]
        except DataError as error:  # named by the archive, not by the folder deleted with it
            raise DataError(f"{archive}: {str(error).replace(scratch + os.sep, '')}") from None
    if not (isinstance(names, list) and len(names) == spec.classes
            and all(isinstance(n, (bytes, str)) for n in names)):
        raise DataError(f"the archive's {spec.meta} does not hold {spec.classes} class names: is "
                        f"it the official {spec.title} python archive?")
    classes = np.array([n.decode("latin-1") if isinstance(n, bytes) else n for n in names])
    return dict(train_images=train_images, train_labels=train_labels, test_images=test_images,
                test_labels=test_labels, classes=classes)


def read_batches(spec, paths):
    """Images (N 3 32 32) uint8 and labels (N) int64 from CIFAR batch pickles. A row of b"data"
    holds 1024 red, then 1024 green, then 1024 blue values, each a 32x32 image row by row."""
    images, labels = [], []
    for path in paths:
        batch = read_pickle(path, [b"data", spec.label_key])
        data, batch_labels = batch[b"data"], batch[spec.label_key]
        if not (isinstance(data, np.ndarray) and data.dtype == np.uint8 and data.ndim == 2
                and data.shape[1] == 3 * 32 * 32):
            raise DataError(f"{path.name} of the archive does not hold CIFAR images: delete the "
                            f"archive and download it again")
        if not (isinstance(batch_labels, list) and len(batch_labels) == len(data)
                and all(type(k) is int and 0 <= k < spec.classes for k in batch_labels)):
            raise DataError(f"{path.name} of the archive does not hold {len(data)} labels from 0 "
                            f"to {spec.classes - 1}: delete the archive and download it again")
        images.append(data.reshape(-1, 3, 32, 32))
        labels.append(np.array(batch_labels, dtype=np.int64))
    return np.concatenate(images), np.concatenate(labels)


def read_pickle(path, keys):
    """The dict in the pickle `path`, which must have all of `keys`."""
    if not path.is_file():
        raise DataError(f"the archive has no {path.parent.name}/{path.name}: is it the "
                        f"official CIFAR python archive?")
    content = load_pickle(path)
    if not isinstance(content, dict) or any(key not in content for key in keys):
        raise DataError(f"{path} lacks the keys {[k.decode() for k in keys]}: is the archive the "
                        f"official CIFAR python version?")
    return content
