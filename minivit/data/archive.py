"""Unpack a .tar.gz archive into a folder, and nowhere else.

A tar member's name is a path the archive chooses: `../../.bashrc`, `/etc/passwd`, or a link that
points outside, then a file written "through" it. Every member is checked before anything is
written: only plain files and folders whose paths stay inside the destination are allowed. Where
Python has it (3.10.12+, 3.11.4+), tarfile's own "data" filter checks again as it extracts.
An archive may also be a bomb: a few MB that unpack to GB, or millions of empty members. The
members are counted as they are read, and the bytes they declare are added up, against limits,
before anything is written.
"""
import gzip
import os
import tarfile
import zlib
from pathlib import Path

from minivit.errors import DataError

# What a truncated or damaged .tar.gz raises while it is read.
CORRUPT = (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile)
MAX_MEMBERS = 1000


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
        with tarfile.open(archive) as tar:
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
