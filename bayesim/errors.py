"""User-facing errors.

Every failure a user can cause (bad config, bad data, bad checkpoint, …) is raised as one of these.
The CLI prints ``str(error)`` as a single line on stderr and exits with code 2, so messages must say
what is wrong *and* how to fix it, in one sentence.
"""


class BayesimError(Exception):
    """Base class of every error bayesim reports to a user."""


class ConfigError(BayesimError, ValueError):
    """A configuration file, override or argument is invalid (a ValueError too, so that Python
    code catching the builtin for a bad argument keeps working)."""


class DataError(BayesimError):
    """A data set is missing, malformed or inconsistent."""


class CheckpointError(BayesimError):
    """A checkpoint cannot be loaded: wrong format, wrong shapes or modified content."""


class DeviceRangeError(BayesimError):
    """A device model was asked to work outside its calibrated range."""


class MappingError(BayesimError):
    """Weights cannot be mapped onto the requested hardware."""
