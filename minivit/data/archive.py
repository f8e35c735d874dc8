"""Unpack a .tar.gz archive into a folder, and nowhere else.

A tar member's name is a path the archive chooses: `../../.bashrc`, `/etc/passwd`, or a link that
points outside, then a file written "through" it. Every member is checked before anything is
written: only plain files and folders whose paths stay inside the destination are allowed. Where
Python has it (3.10.12+, 3.11.4+), tarfile's own "data" filter checks again as it extracts.
"""
import gzip
import os
import tarfile
import zlib
from pathlib import Path

from minivit.errors import DataError

# What a truncated or damaged .tar.gz raises while it is read.
CORRUPT = (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile)


def check_member(member, destination):
    """Raise DataError unless `member` is a plain file or folder that lands inside `destination`."""
    if not (member.isfile() or member.isdir()):
        raise DataError(f"archive member {member.name!r} is a link or a special file: refusing to "
                        f"extract it")
    target = (destination / member.name).resolve()
    if (os.path.isabs(member.name) or ".." in Path(member.name).parts
            or not target.is_relative_to(destination.resolve())):
        raise DataError(f"archive member {member.name!r} would be written outside {destination}/")


def safe_extract(archive, destination):
    """Unpack `archive` (a .tar or .tar.gz) into the folder `destination`, after checking every
    member; a truncated or damaged archive raises DataError before anything is written."""
    destination = Path(destination)
    try:
        with tarfile.open(archive) as tar:
            members = tar.getmembers()  # reads the whole archive: a truncated one fails here
            for member in members:
                check_member(member, destination)
            if hasattr(tarfile, "data_filter"):
                tar.extractall(destination, members=members, filter="data")
            else:  # an older Python: the checks above are the only guard
                tar.extractall(destination, members=members)
    except CORRUPT as error:
        raise DataError(f"{archive} is truncated or corrupt ({error}): delete it and download it "
                        f"again") from None
