"""Writing a user's files safely: the one way the engine writes a file someone may keep.

A file is written next to its destination under a temporary name and moved into place with
``os.replace`` only once it is complete, so a failed write (a full disk, a bug, Ctrl-C) leaves the
file that was there before untouched and no half-written file behind. Every failure is an
``engine.MotionError`` that names the file.
"""
from __future__ import annotations

import os
import tempfile
import tokenize
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Iterator

import numpy as np

from .errors import MotionError


def _describe(error: OSError) -> str:
    """An OSError's reason; a short write (numpy's, when the disk is full) says so."""
    if error.strerror:
        return error.strerror
    return f"the write stopped short, is the disk full? ({error})"


def prepare_output(path: str | Path, what: str = "output") -> Path:
    """Check that ``path`` can be written as a file (its folder is made); returns it as a Path.

    Raises ``MotionError`` naming ``path`` when it is a folder, or when a part of its folder is a file.
    """
    path = Path(path)
    if path.is_dir():
        raise MotionError(f"{what} {path}: is a folder, not a file name")
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise MotionError(f"{what} {path}: '{parent}' is a file, not a folder")
            break
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise MotionError(f"{what} {path}: cannot make its folder: {_describe(error)}") from None
    return path


@contextmanager
def atomic_write(path: str | Path, mode: str = "wb", encoding: str | None = None,
                 what: str = "output") -> Iterator[IO]:
    """``with atomic_write(path, "w", encoding="utf-8") as file: file.write(...)``.

    The content goes to a temporary file in ``path``'s folder, which replaces ``path`` when the
    block ends without an exception; on any exception the temporary file is removed and ``path``
    keeps what it held before. ``OSError`` becomes ``MotionError`` naming ``path``.
    """
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_write mode must be 'w' or 'wb', got {mode!r}")
    path = prepare_output(path, what)
    try:
        handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    except OSError as error:
        raise MotionError(f"cannot write {what} {path}: {_describe(error)}") from None
    try:
        with os.fdopen(handle, mode, encoding=encoding) as file:
            yield file
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except OSError as error:
        _remove_quietly(temporary)
        raise MotionError(f"cannot write {what} {path}: {_describe(error)}") from None
    except BaseException:
        _remove_quietly(temporary)
        raise


def _remove_quietly(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


def write_text(path: str | Path, text: str, encoding: str = "utf-8", what: str = "output") -> None:
    """Write ``text`` to ``path`` atomically (see ``atomic_write``)."""
    with atomic_write(path, "w", encoding=encoding, what=what) as file:
        file.write(text)


def save_npy(path: str | Path, array: np.ndarray, what: str = "output") -> None:
    """``np.save`` to exactly ``path`` atomically (no ``.npy`` is appended; see ``atomic_write``)."""
    with atomic_write(path, "wb", what=what) as file:
        np.save(file, np.asarray(array), allow_pickle=False)


NPY_MAGIC = b"\x93NUMPY"


def check_input_file(path: Path, what: str) -> None:
    """MotionError naming ``what`` and the file when ``path`` is a folder, missing or not a regular
    file (OSError from the file system passes through for the caller's message)."""
    if path.is_dir():
        raise MotionError(f"{what} file {path} is a folder, not a file")
    if not path.exists():
        raise MotionError(f"{what} file {path} does not exist")
    if not path.is_file():
        raise MotionError(f"{what} file {path} is not a regular file")


def read_input_bytes(path: str | Path, what: str, max_bytes: int) -> bytes:
    """The bytes of an input file; MotionError naming ``what`` and the file when it is a folder,
    missing, not a regular file, larger than ``max_bytes`` or unreadable."""
    path = Path(path)
    try:
        check_input_file(path, what)
        size = path.stat().st_size
        if size > max_bytes:
            raise MotionError(f"{what} file {path} is {size} bytes (at most {max_bytes})")
        return path.read_bytes()
    except OSError as error:
        raise MotionError(f"{what} file {path} cannot be read: {error.strerror or error}") from None


def load_npy(path: str | Path, what: str = "motion file") -> np.ndarray:
    """Read a ``.npy`` array of numbers (float or int) without trusting its header.

    Refused with a ``MotionError`` naming ``path``: a folder or missing file, an empty file, a
    ``.npz`` or other file renamed to ``.npy``, pickled objects, string / structured / complex
    dtypes, and a header whose shape needs more bytes than the file holds (nothing is allocated
    for it). Returns the array as stored (any shape; callers check the shape they need).
    """
    path = Path(path)
    if path.is_dir():
        raise MotionError(f"{what} {path}: is a folder, not a .npy file")
    try:
        size = path.stat().st_size
        with open(path, "rb") as file:
            if size == 0:
                raise MotionError(f"{what} {path}: the file is empty")
            if file.read(len(NPY_MAGIC)) != NPY_MAGIC:
                raise MotionError(f"{what} {path}: not a .npy file (an .npz or another format renamed?)")
            file.seek(0)
            try:
                version = np.lib.format.read_magic(file)
                shape, fortran_order, dtype = np.lib.format._read_array_header(file, version)
            except (ValueError, SyntaxError, TypeError, tokenize.TokenError) as error:
                raise MotionError(f"{what} {path}: its .npy header is damaged: {error}") from None
            if dtype.hasobject or dtype.fields is not None or dtype.kind not in "fiu":
                raise MotionError(f"{what} {path}: holds {dtype} values; expected float numbers")
            count = int(np.prod(shape, dtype=object)) if shape else 1
            if count * dtype.itemsize > size - file.tell():
                raise MotionError(f"{what} {path}: its header claims shape {shape}, more than the "
                                  f"file's {size} bytes hold (truncated or damaged)")
            file.seek(0)
            return np.load(file, allow_pickle=False)
    except OSError as error:
        raise MotionError(f"{what} {path}: cannot read it: {_describe(error)}") from None
    except ValueError as error:
        if isinstance(error, MotionError):
            raise
        raise MotionError(f"{what} {path}: not a readable .npy file: {error}") from None
