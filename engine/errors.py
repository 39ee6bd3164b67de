"""The one error type the engine raises for bad input."""


class MotionError(ValueError):
    """A clear, user-facing problem with an input (file, array, argument).

    The message names the file or value at fault and what is wrong with it.
    """
