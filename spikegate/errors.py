"""User-facing errors.

Every problem caused by what the user handed us (a file, an option, an array) is raised as a
`SpikegateError` with a message that names the thing at fault and what would fix it. The CLI prints
exactly that one line and exits non-zero; anything else escaping is a bug in spikegate.
"""


class SpikegateError(Exception):
    """A problem with the user's input, reported as one clear line."""


class CheckpointError(SpikegateError):
    """A checkpoint cannot be loaded or does not match the model."""


class InputArrayError(SpikegateError):
    """An input array has the wrong dtype, rank, shape or values."""
