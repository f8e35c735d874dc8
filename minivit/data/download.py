"""Download a file once, with a progress bar, so that a half-finished download never looks done.

The bytes go to `NAME.part`, which is renamed to NAME only after its MD5 matches; a dropped
connection is retried a few times, and on any failure (Ctrl-C included) the .part file is removed.
Any URL urllib opens works: https:// for the real thing, http:// or file:// for a local mirror.
"""
import hashlib
import http.client
import os
import time
import urllib.error
import urllib.request
from pathlib import Path

from tqdm import tqdm

from minivit.errors import DataError

ATTEMPTS = 3
RETRY_DELAY_S = 2.0  # before the second attempt; doubled before each later one
TIMEOUT_S = 60       # for connecting, and for each read
CHUNK = 1 << 20


class DownloadError(DataError):
    """The file could not be fetched (no network, server down, connection dropped)."""


def md5sum(path):
    """The MD5 of a file's bytes, as 32 hex digits."""
    digest = hashlib.md5()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def fetch(url, path):
    """Copy the bytes at `url` into `path` with a progress bar; a short read: ConnectionError."""
    with urllib.request.urlopen(url, timeout=TIMEOUT_S) as response, open(path, "wb") as f:
        size = response.headers.get("Content-Length")
        total = int(size) if size else None
        name = Path(path).stem  # without .part
        with tqdm(total=total, unit="B", unit_scale=True, desc=f"downloading {name}") as bar:
            while chunk := response.read(CHUNK):
                f.write(chunk)
                bar.update(len(chunk))
        if total is not None and f.tell() != total:
            raise ConnectionError(f"the connection closed after {f.tell():,} of {total:,} bytes")


def download(url, path, md5, attempts=ATTEMPTS):
    """Download `url` to `path` (a file), which then exists only if its MD5 is `md5`.
    Raises DownloadError when the server cannot be reached or keeps dropping the connection,
    DataError when the bytes arrive but their checksum is wrong."""
    path = Path(path)
    part = path.with_name(path.name + ".part")
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        for attempt in range(1, attempts + 1):
            try:
                fetch(url, part)
                break
            except (OSError, http.client.HTTPException) as error:  # URLError is an OSError
                reason = getattr(error, "reason", None) or error
                client_error = isinstance(error, urllib.error.HTTPError) and error.code < 500
                if client_error or attempt == attempts:
                    raise DownloadError(f"could not download {url}: {reason} "
                                        f"(attempt {attempt} of {attempts})") from None
                time.sleep(RETRY_DELAY_S * 2 ** (attempt - 1))
        actual = md5sum(part)
        if actual != md5:
            raise DataError(f"the file downloaded from {url} has MD5 {actual}, not {md5}, so it "
                            f"was deleted: run again to retry, or download it by hand to {path}")
        os.replace(part, path)
    finally:
        part.unlink(missing_ok=True)
