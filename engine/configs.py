"""Reading a model folder's config files safely, and the bounds every size in them must keep.

Every config file of a model folder (``config.json``, ``tokenizer/config.json``,
``lm/config.json``, ``lm/text_side.json``, the evaluator's ``config.json``) is read by
``read_config`` and its values are checked against ``Rule``s (``check_values``) before anything is
built, so that a crafted file cannot hang or exhaust the machine: a size is an int (not a bool, not
a float) within bounds a laptop can hold, a setting has its type and range, and every problem is
one ``MotionError`` naming the file, the key and the value.

The bounds are generous for MotionGPT's official model (T5-base: d_model 768, 12 + 12 layers,
d_ff 3072 (flan-t5-base: 2048), 12 heads; vocabulary 32100 + 515 motion tokens; VQ-VAE 512 codes
of 512, width 512) and its larger relatives, and ``MAX_PARAMETERS`` caps the total.

Pure Python (json, math): importable without torch.
"""
from __future__ import annotations

import json
import math
import reprlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from .errors import MotionError

MAX_CONFIG_BYTES = 16 << 20        # largest config file read (the bundled text_side.json: 22 kB)
MAX_CONFIG_DEPTH = 16              # nesting of JSON objects / arrays (ours: 3)
MAX_PARAMETERS = 2_000_000_000     # largest model a folder may describe: 8 GB of float32 weights
MAX_LAYERS = 48                    # transformer blocks per stack, residual blocks per VQ-VAE stage
MAX_WIDTH = 8192                   # d_model, channels, embedding sizes
MAX_CODES = 65536                  # VQ codebook rows
MAX_VOCAB = 1_000_000              # text tokenizer + motion tokens
MAX_TEXT = 1000                    # characters of a name, a version, a word
WEIGHT_DTYPES = ("float32", "float16", "bfloat16")    # the dtypes a weight file may hold


def read_config(path: str | Path) -> dict:
    """The JSON object in the file ``path``. MotionError naming the file when it is missing or a
    folder, larger than MAX_CONFIG_BYTES, not UTF-8, not JSON, nested deeper than
    MAX_CONFIG_DEPTH, has a key twice, or holds something else than a JSON object."""
    path = Path(path)
    try:
        if not path.is_file():
            raise MotionError(f"{path}: {'is a folder, not a config file' if path.is_dir() else 'no such file'}")
        size = path.stat().st_size
        if size > MAX_CONFIG_BYTES:
            raise MotionError(f"{path}: {size} bytes, larger than the limit of {MAX_CONFIG_BYTES >> 20} MB "
                              "for a config file")
        data = path.read_bytes()
    except OSError as error:
        raise MotionError(f"{path}: cannot read it: {error.strerror or error}") from None
    try:
        text = data.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError as error:
        raise MotionError(f"{path}: not UTF-8 text (byte {error.start}: {error.reason})") from None
    try:
        values = json.loads(text, object_pairs_hook=_object_without_repeated_keys)
    except RecursionError:
        raise MotionError(f"{path}: cannot read JSON: nested deeper than the limit of {MAX_CONFIG_DEPTH} "
                          "levels") from None
    except MotionError as error:
        raise MotionError(f"{path}: {error}") from None
    except ValueError as error:  # json.JSONDecodeError, or an integer of thousands of digits
        raise MotionError(f"{path}: cannot read JSON: {error}") from None
    if json_depth(values) > MAX_CONFIG_DEPTH:
        raise MotionError(f"{path}: cannot read JSON: nested deeper than the limit of {MAX_CONFIG_DEPTH} levels")
    if not isinstance(values, dict):
        raise MotionError(f"{path}: expected a JSON object {{...}}, got a {_json_kind(values)}")
    return values


def _object_without_repeated_keys(pairs: list[tuple[str, object]]) -> dict:
    values = dict(pairs)
    if len(values) != len(pairs):
        seen: set[str] = set()
        repeated = next(key for key, _ in pairs if key in seen or seen.add(key))
        raise MotionError(f"the key {show(repeated)} appears twice in one object")
    return values


def json_depth(value) -> int:
    """Nesting depth of a parsed JSON value (a scalar: 0, [] or {}: 1, [[1]]: 2), without recursion."""
    deepest, stack = 0, [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, (dict, list)):
            deepest = max(deepest, depth + 1)
            stack.extend((child, depth + 1) for child in (item.values() if isinstance(item, dict) else item))
    return deepest


def _json_kind(value) -> str:
    return {list: "list", str: "string", bool: "boolean", type(None): "null"}.get(type(value), "number")


_SHOW = reprlib.Repr()
_SHOW.maxlevel, _SHOW.maxstring, _SHOW.maxother, _SHOW.maxlong = 3, 60, 60, 40


def show(value) -> str:
    """A short repr of a config value for a message (long strings, deep lists and huge numbers cut)."""
    try:
        return _SHOW.repr(value)
    except Exception:  # e.g. a repr that fails
        return f"a {type(value).__name__}"


@dataclass(frozen=True)
class Rule:
    """What one config value must be: ``expected`` says it in words ("an integer from 1 to 48"),
    ``accepts(value)`` tells whether a value is one."""

    expected: str
    accepts: Callable[[object], bool]


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value) -> bool:
    """A finite int or float, not a bool (an int of hundreds of digits is finite, not a float)."""
    return _is_int(value) or isinstance(value, float) and math.isfinite(value)


def integer(low: int, high: int) -> Rule:
    """An int (not a bool, not a float) in [low, high]."""
    words = {1: f"a positive integer up to {high}", 0: f"a non-negative integer up to {high}"}.get(
        low, f"an integer from {low} to {high}")
    return Rule(words, lambda v: _is_int(v) and low <= v <= high)


def number(low: float, high: float, low_open: bool = False, high_open: bool = False) -> Rule:
    """A finite int or float in [low, high] (ends excluded with ``low_open`` / ``high_open``)."""
    words = f"a number {'above' if low_open else 'from'} {low:g} {'and below' if high_open else 'to'} {high:g}"
    return Rule(words, lambda v: _is_number(v) and (low < v if low_open else low <= v)
                and (v < high if high_open else v <= high))


def flag() -> Rule:
    return Rule("true or false", lambda v: isinstance(v, bool))


def one_of(*choices) -> Rule:
    """One of the given strings (or exactly True / False)."""
    words = json.dumps(choices[0]) if len(choices) == 1 else "one of " + ", ".join(map(json.dumps, choices))
    return Rule(words, lambda v: any(type(v) is type(c) and v == c for c in choices))


def text(max_length: int = MAX_TEXT) -> Rule:
    return Rule(f"a string of at most {max_length} characters", lambda v: isinstance(v, str) and len(v) <= max_length)


def optional(rule: Rule) -> Rule:
    """null or what ``rule`` accepts."""
    return Rule(f"null or {rule.expected}", lambda v: v is None or rule.accepts(v))


def list_of(rule: Rule, non_empty: bool = False) -> Rule:
    """A JSON list whose every entry ``rule`` accepts."""
    return Rule(f"a {'non-empty ' if non_empty else ''}list, each entry {rule.expected}",
                lambda v: isinstance(v, list) and (len(v) > 0 or not non_empty) and all(rule.accepts(x) for x in v))


def object_of(rule: Rule) -> Rule:
    """A JSON object whose every value ``rule`` accepts (its keys are strings by JSON)."""
    return Rule(f"an object, each value {rule.expected}",
                lambda v: isinstance(v, dict) and all(isinstance(k, str) and rule.accepts(x) for k, x in v.items()))


SCALAR = Rule("a plain value (a number, a string, true, false or null)",
              lambda v: v is None or isinstance(v, bool) or _is_number(v) or isinstance(v, str) and len(v) <= MAX_TEXT)


def check_values(values: dict, rules: dict[str, Rule], source: str, required: tuple[str, ...] | list[str] = (),
                 other: Rule | None = None, ignored: tuple[str, ...] = ()) -> None:
    """Check a config's values: MotionError naming ``source``, the key and the value for the first
    one that breaks its rule. Keys without a rule are refused ("unknown keys [...]"), or checked
    against ``other`` when given; keys in ``ignored`` are skipped; ``required`` keys must be there."""
    missing = [key for key in required if key not in values]
    if missing:
        raise MotionError(f"{source}: missing keys {sorted(missing)}")
    if other is None:
        unknown = sorted(key for key in values if key not in rules and key not in ignored)
        if unknown:
            raise MotionError(f"{source}: unknown keys {show(unknown)}")
    for key, value in values.items():
        if key in ignored:
            continue
        rule = rules.get(key, other)
        if not rule.accepts(value):
            known = "" if key in rules else " (a key this engine does not use)"
            name = key if len(key) <= 80 else show(key)
            raise MotionError(f"{source}: {name}{known} must be {rule.expected}, got {show(value)}")


def check_parameter_count(shapes: dict[str, tuple[int, ...]], source: str, sizes: str) -> int:
    """The number of values in ``shapes`` (a module's state_dict shapes); MotionError naming
    ``source`` and the ``sizes`` (e.g. "d_model 8192, num_layers 48") when above MAX_PARAMETERS."""
    count = parameter_count(shapes)
    if count > MAX_PARAMETERS:
        raise MotionError(f"{source}: {sizes} make a model of {count / 1e9:.1f} billion parameters, more than the "
                          f"limit of {MAX_PARAMETERS / 1e9:g} billion")
    return count


def parameter_count(shapes: dict[str, tuple[int, ...]]) -> int:
    """The number of values in tensors of these shapes."""
    return sum(math.prod(shape) for shape in shapes.values())
