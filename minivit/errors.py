"""What can go wrong, as one family of exceptions.

Every error minivit raises for a problem a user can fix (a missing data set, a GPU that is not
there, a checkpoint that does not fit, a loss that diverged, an option out of range) derives
from `minivit.Error`, and its message is one line that names the culprit and says what to do.
A command-line tool catches `Error` and prints that line; anything else is a bug in minivit.
"""


class Error(Exception):
    """A problem the user can fix; the message says how."""


class DataError(Error):
    """A data set cannot be loaded (missing, damaged, unsafe or of the wrong layout)."""


class DeviceError(Error, RuntimeError):
    """The GPU was asked for but cannot be used."""


class CheckpointError(Error, ValueError):
    """A file of weights cannot be read, or does not fit the model (a missing, unexpected or
    misshapen tensor)."""


class MissingFile(Error, FileNotFoundError):
    """A file or folder the user named (a checkpoint, a run directory) is not there."""


class ConfigError(Error, ValueError):
    """An option has a value that cannot work (a negative learning rate, a patch size that does
    not divide the image)."""


class Diverged(Error):
    """The loss became NaN or infinite."""
