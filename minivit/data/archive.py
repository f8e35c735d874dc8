"""Unpack a .tar.gz archive into a folder, and nowhere else.

A tar member's name is a path the archive chooses: `../../.bashrc`, `/etc/passwd`, or a link that
points outside, then a file written "through" it. Every member is checked before anything is
written: only plain files and folders whose paths stay inside the destination are allowed. Where
Python has it (3.10.12+, 3.11.4+), tarfile's own "data" filter checks again as it extracts.
An archive may also be a bomb: a few MB that unpack to GB, or millions of empty members, or one
header (a GNU long name, a pax record) that declares gigabytes, which tarfile would read whole.
The members are counted as they are read, every single read is capped (MAX_READ), and the bytes
the members declare are added up, against limits, before anything is written.
"""
import contextlib
import gzip
import os
import tarfile
import zlib
from pathlib import Path

from minivit.errors import DataError

# What a truncated or damaged .tar.gz raises while it is read.
CORRUPT = (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile)
MAX_MEMBERS = 1000
MAX_READ = 1 << 20  # tarfile reads headers whole and file data in 16 KiB pieces


class CappedReads:
    """A file object whose every read is at most MAX_READ bytes (a header asking for more is not
    one minivit reads); seek and tell are the wrapped file's."""

    def __init__(self, file, archive):
        self.file, self.archive = file, archive

    def read(self, size=-1):
        if size < 0 or size > MAX_READ:  # tarfile always says how much
            raise DataError(f"{self.archive} has a member header of {size:,} bytes: it is not the "
                            "archive minivit expects")
        return self.file.read(size)

    def seek(self, *args):
        return self.file.seek(*args)

    def tell(self):
        return self.file.tell()


@contextlib.contextmanager
def open_tar(archive):
    """The .tar or .tar.gz at `archive` as a TarFile whose reads are capped (CappedReads)."""
    with open(archive, "rb") as f:
        gzipped = f.read(2) == b"\x1f\x8b"
    with (gzip.open(archive) if gzipped else open(archive, "rb")) as file:
        with tarfile.open(fileobj=CappedReads(file, archive), mode="r:") as tar:
            yield tar


def check_member(member, destination):
    """Raise DataError unless `member` is a plain file or folder that lands inside `destination`."""
    if not (member.isfile() or member.isdir()):
        raise DataError(f"archive member {member.name!r} is a link or a special file: refusing to "
                        f"extract it")
    target = (destination / member.name).resolve()
    if (os.path.isabs(member.name) or ".." in Path(member.name).parts
            or not target.is_relative_to(destination.resolve())):
        raise DataError(f"archive member {member.name!r} would be written outside {destination}/")


def read_members(tar, archive):
    """The archive's members, at most MAX_MEMBERS of them (reading them reads the whole archive:
    a truncated one fails here)."""
    members = []
    for member in tar:
        if len(members) == MAX_MEMBERS:
            raise DataError(f"{archive} has more than {MAX_MEMBERS} members: it is not the "
                            "archive minivit expects")
        members.append(member)
    return members


def safe_extract(archive, destination, only=None, max_bytes=None):
    """Unpack `archive` (a .tar or .tar.gz) into the folder `destination`, after checking every
    member; a truncated or damaged archive raises DataError before anything is written.
    only: the member names to unpack (the others are left in the archive); max_bytes: the most
    that those members may hold together."""
    destination = Path(destination)
    try:
        with open_tar(archive) as tar:
            members = read_members(tar, archive)
            if only is not None:
                members = [m for m in members if m.name in only]
            for member in members:
                check_member(member, destination)
            size = sum(member.size for member in members)
            if max_bytes is not None and size > max_bytes:
                raise DataError(f"{archive} would unpack to {size:,} bytes, more than the "
                                f"{max_bytes:,} minivit expects of it: refusing to unpack it")
            if hasattr(tarfile, "data_filter"):
                tar.extractall(destination, members=members, filter="data")
            else:  # an older Python: the checks above are the only guard
                tar.extractall(destination, members=members)
    except CORRUPT as error:
        raise DataError(f"{archive} is truncated or corrupt ({error}): delete it and download it "
                        f"again") from None
