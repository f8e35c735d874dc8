"""A run directory (runs/NAME/): one run's files, locked while it trains, never silently
overwritten, and removed again when a run stops before its first checkpoint.

    with open_run_dir(run_dir, resume, overwrite):   # refused if another run holds it
        ...                                         # write config.json, metrics.csv, last.npz
"""
import re
import shutil
from pathlib import Path

from minivit.errors import ConfigError

RUN_FILES = ("config.json", "metrics.csv", "summary.json", "curves.png", "last.npz", "best.npz")


def open_run_dir(run_dir, resume, overwrite):
    """Make `run_dir` this run's, and hold its lock until the returned file is closed.
    A directory that holds another run is refused (unless resuming, or with overwrite=True:
    then train_into deletes its run's files once the new run is set up); so is one that another
    process is training into. Temporary files a killed run left behind are deleted; so is the
    config.json of a run that stopped before its first epoch ended (under MPI another process's
    failure ends rank 0 before it can clean up), which holds nothing to resume."""
    run_dir = Path(run_dir)
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        lock = open(run_dir / ".lock", "a")  # "a": a refused run leaves even its mtime
    except OSError as error:
        raise ConfigError(f"cannot write the run directory {run_dir} ({error.strerror}): choose "
                          "another --out") from None
    try:
        import fcntl
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except ImportError:  # not POSIX (Windows): no lock
        pass
    except BlockingIOError:
        lock.close()
        raise ConfigError(f"another minivit.train is training into {run_dir}: wait for it, or "
                          "give this run another --name") from None
    # under the lock: what a killed run left half written goes first (it holds no run), then a
    # run being trained into is named as such (above), a finished or stopped one here
    for path in run_dir.iterdir():
        if path.is_file() and TEMPORARY.fullmatch(path.name):
            path.unlink()
    taken = {p.name for p in run_dir.iterdir()} - {".lock", "config.json"}
    if taken and not resume and not overwrite:
        lock.close()
        raise ConfigError(f"{run_dir} already holds a run: give another --name, continue it with "
                          f"--resume {run_dir}, or replace it with --overwrite")
    return lock


# what a killed run may leave half written: "last.npz.tmp-1234", "metrics.csv.tmp"
TEMPORARY = re.compile(r"(" + "|".join(map(re.escape, RUN_FILES)) + r")\.tmp(-\d+)?")


def remove_run_files(run_dir):
    """Delete the files of the run in `run_dir` (--overwrite), and the figures/ that the run's
    `next:` line has minivit.inspect draw of it; anything else is left."""
    for name in RUN_FILES:
        (Path(run_dir) / name).unlink(missing_ok=True)
    shutil.rmtree(Path(run_dir) / "figures", ignore_errors=True)


def created_folders(path):
    """The folders that making `path` (with its parents) would create, deepest first."""
    path, missing = Path(path).absolute(), []
    while not path.exists() and path != path.parent:
        missing.append(path)
        path = path.parent
    return missing


def remove_unfinished(folders):
    """Remove a run directory this run created (folders: created_folders of it) when the run
    ended before its first checkpoint: nothing in it could be resumed, and a later run with the
    same name would be refused as if it held one. Anything not of this run's making is kept."""
    run_dir = folders[0]
    if (run_dir / "last.npz").exists():
        return
    for name in (*RUN_FILES, ".lock"):
        (run_dir / name).unlink(missing_ok=True)
    for path in run_dir.glob("*.tmp*"):
        path.unlink()
    for folder in folders:
        try:
            folder.rmdir()
        except OSError:  # not empty: not ours alone
            return
