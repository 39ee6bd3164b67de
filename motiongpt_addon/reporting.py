"""Errors as the user sees them: one message, never a traceback in their face.

``error_message`` turns any exception into one line for ``Operator.report`` or a job's status:
expected problems (``MotionError``, ``WorkerError``, ``OSError`` naming its file, data removed
under a running job) read as themselves; anything else is a bug: its message says so and its
traceback goes to the system console for a bug report. ``reports_errors`` wraps an operator's
``execute`` / ``invoke`` / ``modal`` so that an exception becomes ``report({'ERROR'}, message)``
and ``{'CANCELLED'}``.
"""
from __future__ import annotations

import functools
import sys
import traceback

from engine.errors import MotionError

from .client import WorkerError


def error_message(error: BaseException) -> str:
    """One line for the user; the traceback of an unexpected error is printed to stderr."""
    if isinstance(error, (MotionError, WorkerError)):
        return str(error)
    if isinstance(error, OSError):
        reason = error.strerror or str(error)
        return f"{error.filename}: {reason}" if error.filename else reason
    if isinstance(error, ReferenceError):
        return f"the data this works on was removed meanwhile ({error})"
    traceback.print_exception(type(error), error, error.__traceback__, file=sys.stderr)
    return f"internal error: {type(error).__name__}: {error} (details in the system console)"


def reports_errors(method):
    """Decorate an operator's ``execute(self, context)``, ``invoke(self, context, event)`` or
    ``modal(self, context, event)``: an exception becomes one ERROR report and CANCELLED; the
    operator's ``clean_up(context)``, if it has one, runs first (timers, a running job)."""
    def fail(self, context, error: Exception) -> set:
        message = error_message(error)
        clean_up = getattr(self, "clean_up", None)
        if clean_up is not None:
            try:
                clean_up(context)
            except Exception as problem:
                message += f"; cleaning up failed too: {error_message(problem)}"
        self.report({'ERROR'}, message)
        return {'CANCELLED'}

    # Blender checks the argument count of these methods: keep it exact (no *args)
    if method.__code__.co_argcount == 2:
        @functools.wraps(method)
        def guarded(self, context):
            try:
                return method(self, context)
            except Exception as error:
                return fail(self, context, error)
    else:
        @functools.wraps(method)
        def guarded(self, context, event):
            try:
                return method(self, context, event)
            except Exception as error:
                return fail(self, context, error)
    return guarded
