"""Exceptions that the command line reports as one clear line (exit status 2)."""


class Widefield3DError(Exception):
    """Base class of every error that widefield3d reports to the user without a traceback."""


class InputError(Widefield3DError, ValueError):
    """A file, array or argument given by the user is unusable; the message names it and says why."""
