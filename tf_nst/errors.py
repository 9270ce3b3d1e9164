"""The one exception type for mistakes a user can fix (bad paths, flags, images)."""


class UserInputError(ValueError):
    """A problem with the user's input, reported as one line and exit code 2.

    Internal errors are never wrapped in this type: they stay loud.
    """


class MissingDependencyError(UserInputError):
    """An optional package is not installed; the message names what to install."""
