"""The exception types the command line reports in one line: mistakes a user can fix (exit 2) and outputs
that could not be written (exit 1)."""


class UserInputError(ValueError):
    """A problem with the user's input, reported as one line and exit code 2.

    Internal errors are never wrapped in this type: they stay loud.
    """


class MissingDependencyError(UserInputError):
    """An optional package is not installed; the message names what to install."""


class WriteError(Exception):
    """An output could not be written (disk full, read-only, no permission): one line and exit code 1.

    Raised only after the partial output and its temporary file are removed.
    """
