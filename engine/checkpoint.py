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

The weights of a model folder are checked against its config before they are used: the module is
built on the meta device (``meta_shapes``: the shapes its weights must have, no memory), the
``.safetensors`` header is compared with them (``safetensors_layout`` + ``check_layout``: exact
keys, shapes, and float32 / float16 / bfloat16 only) and the loaded tensors must be finite
(``check_finite``). Each problem is a ``MotionError`` naming the file and the tensor.
"""
from __future__ import annotations

import pickle
from collections import OrderedDict
from pathlib import Path
from typing import Callable

import torch

from .configs import WEIGHT_DTYPES, show
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


# ----------------------------------------------------------------------------- weights of a config
# Sizes are checked first (engine.configs); then the module is built on the meta device to learn
# the shapes its weights must have, and the weight file's header is compared with them, so
# nothing is allocated for a model that a folder does not really hold.

def meta_shapes(build: Callable[[], "torch.nn.Module"], source: str) -> dict[str, tuple[int, ...]]:
    """key -> shape of the state_dict of ``build()``, built on the meta device (no memory, no
    initialisation). Call it only on sizes already checked against the bounds above."""
    try:
        with torch.device("meta"):
            module = build()
    except MotionError:
        raise
    except Exception as error:  # a size combination the module itself refuses
        raise MotionError(f"{source}: these sizes do not make a model: {type(error).__name__}: {error}") from None
    return {key: tuple(value.shape) for key, value in module.state_dict().items()}


# ----------------------------------------------------------------------------- weight files

_SAFETENSORS_DTYPES = {"F64": "float64", "F32": "float32", "F16": "float16", "BF16": "bfloat16", "I64": "int64",
                       "I32": "int32", "I16": "int16", "I8": "int8", "U8": "uint8", "BOOL": "bool"}


def safetensors_layout(path: str | Path) -> dict[str, tuple[tuple[int, ...], str]]:
    """key -> (shape, dtype name) of every tensor of a ``.safetensors`` file, from its header only
    (no tensor is read). MotionError naming the file when it cannot be read."""
    from safetensors import safe_open
    try:
        with safe_open(str(path), framework="pt") as handle:
            layout = {}
            for key in handle.keys():
                tensor = handle.get_slice(key)
                dtype = tensor.get_dtype()
                layout[key] = (tuple(tensor.get_shape()), _SAFETENSORS_DTYPES.get(dtype, dtype.lower()))
            return layout
    except Exception as error:  # SafetensorError: truncated, not a safetensors file, bad header
        raise MotionError(f"{path}: cannot read the weights ({type(error).__name__}: {error})") from None


def tensor_layout(tensors: dict[str, torch.Tensor]) -> dict[str, tuple[tuple[int, ...], str]]:
    """``safetensors_layout`` of tensors in memory."""
    return {key: (tuple(value.shape), str(value.dtype).removeprefix("torch.")) for key, value in tensors.items()}


def check_layout(layout: dict[str, tuple[tuple[int, ...], str]], expected: dict[str, tuple[int, ...]],
                 source: str) -> None:
    """The weights hold exactly the keys of ``expected``, each with its shape and a float dtype of
    WEIGHT_DTYPES; MotionError naming ``source`` and the key otherwise."""
    missing = sorted(set(expected) - set(layout))
    unexpected = sorted(set(layout) - set(expected))
    if missing or unexpected:
        raise MotionError(f"{source}: weights do not match the config: missing {missing[:5]}"
                          f"{' ...' if len(missing) > 5 else ''}, unexpected {show(unexpected[:5])}"
                          f"{' ...' if len(unexpected) > 5 else ''}")
    for key, (shape, dtype) in layout.items():
        if shape != tuple(expected[key]):
            raise MotionError(f"{source}: {key} has shape {shape}, the config needs {tuple(expected[key])}")
        if dtype not in WEIGHT_DTYPES:
            raise MotionError(f"{source}: {key} holds {dtype} values; weights must be "
                              f"{', '.join(WEIGHT_DTYPES[:-1])} or {WEIGHT_DTYPES[-1]}")


def check_finite(tensors: dict[str, torch.Tensor], source: str) -> None:
    """MotionError naming ``source`` and the key of the first tensor holding NaN or infinity."""
    for key, value in tensors.items():
        if not bool(torch.isfinite(value).all()):
            bad = int((~torch.isfinite(value)).sum())
            raise MotionError(f"{source}: {key} holds {bad} NaN or infinite values; the weights are damaged")
