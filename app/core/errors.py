"""The app's own error types.

Every problem a user can cause (a bad file, an impossible setting, a hostile checkpoint) is raised
as one of these with a one-line message naming the file or setting and the fix. The CLI prints the
message and exits 1; the window shows it in a dialog. Anything else escaping is a bug.
"""


class LatentExplorerError(Exception):
    """Base class: the message is meant for the user, as is."""


class DataError(LatentExplorerError):
    """A data set could not be loaded or does not fit the request."""


class ConfigError(LatentExplorerError):
    """A setting is impossible (negative size, unknown kind, model/data mismatch)."""


class CheckpointError(LatentExplorerError):
    """A run directory is missing, incomplete, corrupt or does not match its description."""


class TrainingError(LatentExplorerError):
    """Training could not start or continue (out of memory, diverged with no good weights)."""


class ProjectionError(LatentExplorerError):
    """A 2-D projection could not be computed for these codes (too few points, NaN codes)."""
