"""Read tensors out of a ``torch.save`` pickle without running any code from the file
(``load_state_dict``), or out of a ``.safetensors`` file (``load_safetensors``).

``load_state_dict(path)`` first tries ``torch.load(weights_only=True, mmap=True)``, torch's own
restricted unpickler. A Lightning checkpoint that still carries hyper-parameters (omegaconf
objects, numpy arrays, project classes) fails that check; it is then read with
``RestrictedUnpickler``: torch's tensor-rebuild helpers, storages, ``OrderedDict`` and a few plain
builtins resolve to the real objects, every other class becomes an inert placeholder that only
records its arguments, and a reference to anything that could run code (``os.system``,
``subprocess``, ``builtins.eval`` ...) stops the load with a ``MotionError``. Only the
``state_dict`` entry is kept.
"""
from __future__ import annotations

import pickle
from collections import OrderedDict
from pathlib import Path

import torch

from .errors import MotionError

# Globals a plain tensor checkpoint legitimately needs.
_ALLOWED: dict[tuple[str, str], object] = {
    ("collections", "OrderedDict"): OrderedDict,
    ("torch._utils", "_rebuild_tensor"): torch._utils._rebuild_tensor,
    ("torch._utils", "_rebuild_tensor_v2"): torch._utils._rebuild_tensor_v2,
    ("torch._utils", "_rebuild_parameter"): torch._utils._rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): torch._utils._rebuild_parameter_with_state,
    ("torch", "Size"): torch.Size,
    ("builtins", "set"): set,
    ("builtins", "frozenset"): frozenset,
    ("builtins", "slice"): slice,
}
_DTYPES = {name for name in dir(torch) if isinstance(getattr(torch, name, None), torch.dtype)}

# Modules whose globals exist to run code, touch files or processes, or reach arbitrary objects.
_FORBIDDEN_MODULES = (
    "os", "posix", "nt", "subprocess", "sys", "builtins", "__builtin__", "importlib", "runpy", "shutil",
    "socket", "pty", "ctypes", "code", "codeop", "pickle", "_pickle", "marshal", "types", "functools",
    "operator", "webbrowser", "multiprocessing", "signal", "io", "_io", "pathlib", "tempfile", "platform",
    "asyncio", "threading", "_thread", "pydoc", "timeit", "commands", "popen2", "torch", "numpy.testing",
    "_posixsubprocess", "inspect", "bdb", "pdb", "trace", "urllib", "http", "ftplib", "smtplib",
)


class InertObject:
    """Stand-in for a class the checkpoint names but we do not trust: it keeps its arguments and
    state for inspection and can do nothing else."""

    def __init__(self, *args, **kwargs):
        self.args, self.kwargs, self.state = args, kwargs, None
        self.items: dict = {}
        self.elements: list = []

    def __setstate__(self, state) -> None:
        self.state = state

    def __setitem__(self, key, value) -> None:
        self.items[key] = value

    def append(self, value) -> None:
        self.elements.append(value)

    def extend(self, values) -> None:
        self.elements.extend(values)


class RestrictedUnpickler(pickle.Unpickler):
    """An Unpickler that resolves only tensor-checkpoint globals (see module docstring)."""

    def find_class(self, module: str, name: str):
        if (module, name) in _ALLOWED:
            return _ALLOWED[(module, name)]
        if module == "torch" and (name in _DTYPES or name.endswith("Storage")):
            return getattr(torch, name)
        if module == "torch.storage" and name in ("UntypedStorage", "TypedStorage"):
            return getattr(torch.storage, name)
        root = module.split(".")[0]
        if module in _FORBIDDEN_MODULES or root in _FORBIDDEN_MODULES:
            raise MotionError(f"refusing to load: the pickle references {module}.{name}, which could run "
                              "code; this is not a plain weights checkpoint")
        return type(name, (InertObject,), {"__module__": f"inert.{module}"})


class _RestrictedPickleModule:
    """Module-shaped wrapper so torch.load uses RestrictedUnpickler for every pickle it reads."""

    __name__ = "engine.checkpoint.restricted_pickle"
    Unpickler = RestrictedUnpickler
    UnpicklingError = pickle.UnpicklingError

    @staticmethod
    def load(file, **kwargs):
        return RestrictedUnpickler(file, **kwargs).load()


def load_safetensors(path: str | Path) -> dict[str, torch.Tensor]:
    """The tensors of a ``.safetensors`` file, on the CPU; MotionError naming the file when it
    cannot be read."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file
    try:
        return load_file(str(path), device="cpu")
    except (SafetensorError, OSError, ValueError) as error:
        raise MotionError(f"{path}: not a readable safetensors file: {error}") from None


def load_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """The tensors of ``path``'s ``state_dict`` (or of the file itself when it is a plain dict of
    tensors), loaded on the CPU without executing code from the file. MotionError when the file
    is missing, unreadable, unsafe, or holds no state_dict."""
    path = Path(path)
    if not path.is_file():
        raise MotionError(f"{path}: checkpoint file does not exist")
    try:
        content = _weights_only_load(path)
    except pickle.UnpicklingError:  # globals beyond plain tensors: read them as inert objects
        content = _restricted_load(path)
    return _state_dict_of(content, path)


def _weights_only_load(path: Path):
    """torch's own safe loader; memory-mapped when the file is in the zip format."""
    try:
        try:
            return torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        except RuntimeError as error:
            if "mmap" not in str(error):
                raise
            return torch.load(path, map_location="cpu", weights_only=True)  # legacy (pre-zip) file
    except pickle.UnpicklingError:
        raise
    except Exception as error:  # a corrupt file can fail anywhere inside torch.load
        raise MotionError(f"{path}: not a readable torch checkpoint: {type(error).__name__}: {error}") from None


def _restricted_load(path: Path):
    try:
        return torch.load(path, map_location="cpu", weights_only=False, pickle_module=_RestrictedPickleModule)
    except MotionError as error:
        raise MotionError(f"{path}: {error}") from None
    except Exception as error:  # a corrupt file can fail anywhere inside torch.load
        raise MotionError(f"{path}: not a readable torch checkpoint: {type(error).__name__}: {error}") from None


def _state_dict_of(content, path: Path) -> dict[str, torch.Tensor]:
    if isinstance(content, dict) and "state_dict" in content:
        content = content["state_dict"]
    if not isinstance(content, dict) or not content:
        raise MotionError(f"{path}: no state_dict found (top level is {type(content).__name__})")
    tensors = {key: value for key, value in content.items()
               if isinstance(key, str) and isinstance(value, torch.Tensor)}
    if not tensors:
        raise MotionError(f"{path}: the state_dict holds no tensors")
    return tensors
