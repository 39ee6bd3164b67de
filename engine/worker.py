"""The engine process the Blender add-on talks to: ``python -m engine.worker --exchange DIR``.

One process per Blender session keeps the MotionGPT model loaded between requests. It never
imports bpy; the add-on never imports torch. Protocol: one JSON object per line, UTF-8.

Requests (stdin)::

    {"id": 7, "task": "text_to_motion", "text": "a person waves", "seconds": 3.0, "seed": 1}
    {"id": 8, "task": "describe", "motion": "DIR/in_8.npy", "fps": 20.0}
    {"id": 9, "task": "predict", "motion": "DIR/in_9.npy", "fps": 20.0, "seconds": 2.0}
    {"id": 10, "task": "inbetween", "before": "...npy", "after": "...npy", "fps": 20.0,
     "frames": 30, "text": "jumps"}
    {"id": 11, "task": "hello"}                 # answers at once, without loading the model
    {"id": 12, "task": "load"}                  # loads the model now (a later task would anyway) and reads
                                                # a prompt, so the first task waits for neither
    {"task": "cancel", "ids": [9, 10]}          # drop these requests if they have not started
    {"task": "shutdown"}                        # (closing stdin does the same)

Fields, checked strictly before the model is loaded (a field that is absent or null takes its
default; anything else of the wrong type or out of range is refused, never converted)::

    id       an integer (|id| <= 2**63 - 1, not true/false) or a string of 1 to 64 letters, digits,
             '-' or '_'; absent or null: the reply's id is null (and the request cannot be
             cancelled). Any other id refuses the whole line: {"id": null, "kind": "input", ...}.
    text     text_to_motion: a non-blank string (required); inbetween: a string, optional (absent,
             null or blank: no steering text). At most 10,000 characters; no control characters
             but tab, newline and carriage return, no lone surrogates (U+D800-U+DFFF).
    seconds  a number > 0 and <= 60 (not true/false): text_to_motion (optional: the model picks the
             length), predict (required).
    frames   inbetween: an integer from 1 to 1200 (60 s at 20 fps); 20.9 or 20.0 is refused.
    seed     an integer from 0 to 2**32 - 1, optional (absent or null: a random seed).
    fps      the frame rate of the input motions: a number from 1 to 1000, default 20.
    motion / before / after   the path (a non-empty string) of a .npy file of finite joints
             (T, 22, 3), T >= 1.
    ids      cancel: a list of ids (as above, not null); ids of requests already answered are ignored.

Other fields are ignored. A line is at most 1 MiB; the JSON constants NaN and Infinity are refused.

A motion travels as a ``.npy`` file of joints (T, 22, 3) float32 inside the exchange folder plus
its ``fps`` in the JSON. Results are written atomically as ``DIR/result_<id>.npy`` (an id of null:
``result_null_<n>.npy``; the folder is made again if it was deleted; a failed write is an "input"
reply naming the file). Replies (stdout)::

    {"id": 7, "status": "loading the model from ..."}              # progress, any number
    {"id": 7, "ok": true, "motion": "DIR/result_7.npy", "fps": 20.0}
    {"id": 7, "ok": true, "motion": "...", "fps": 20.0, "read_as": "a man walks"}   # unknown words read
    {"id": 7, "ok": true, "motion": "...", "fps": 20.0, "read_as": "a person walks backward",
     "notes": ["this model knows no motion for 'crawls'; generated 'a person walks backward', its nearest"]}
    {"id": 8, "ok": true, "text": "a person walks forward."}
    {"id": 9, "ok": false, "kind": "input", "error": "seconds must be a positive number ..."}
    {"id": 9, "ok": false, "kind": "cancelled", "error": "cancelled"}
    {"id": null, "ok": false, "kind": "input", "error": "bad request line: ..."}   # unreadable line

``kind`` is "input" (``MotionError``: a bad request, input file or model folder; the error names
the field or file and the value), "memory" (the GPU ran out of memory; the worker frees its cache
and keeps running) or "engine" (any other exception, or a reply that cannot be written as JSON;
its traceback goes to stderr). Every line read gets exactly one final reply (except cancel, which
gets one only when it is refused, and shutdown), and the worker keeps reading after any error:
a line that is not UTF-8, not JSON, nested too deeply, too long or with a bad id or cancel gets an
"input" reply at once (it may overtake the replies to earlier requests); a bad field of a task is
its own "input" reply, in order. The process exits 0 after shutdown or end of input, and 1 if
reading stdin or writing stdout fails (it never stays alive without reading).
Everything that is not protocol (library prints, warnings, tracebacks) goes to stderr.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import queue
import re
import sys
import threading
import traceback
from pathlib import Path

from .errors import MotionError
from .files import load_npy, save_npy
from .model import MAX_SECONDS
from .motion import MODEL_FPS, NUM_JOINTS, Motion
from .timeline import MAX_ROWS, Segment, check_segments, compose_timeline, plan_prompt, text_to_motion_planned

WARM_UP_PROMPT = "a person walks forward and waves"
TASKS = ("hello", "load", "text_to_motion", "describe", "predict", "inbetween", "timeline")
MAX_LINE_BYTES = 1 << 20                     # a request line; longer ones are skipped with an error
MAX_ID = 2 ** 63 - 1
ID_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,64}")
MAX_SEED = 2 ** 32 - 1
MAX_FRAMES = int(MAX_SECONDS * MODEL_FPS)    # the longest in-between gap the model makes (1200)
MIN_FPS, MAX_FPS = 1.0, 1000.0
MAX_TEXT_CHARS = 10_000
SHOWN_CHARS = 80                             # a value quoted in an error message is cut to this


# ----------------------------------------------------------------------------- checking requests

def _shown(value) -> str:
    """A request value as an error message quotes it: ``repr``, cut to SHOWN_CHARS characters."""
    try:
        text = repr(value)
    except Exception:  # e.g. RecursionError for a deeply nested list
        text = f"<{type(value).__name__}>"
    return text if len(text) <= SHOWN_CHARS else text[:SHOWN_CHARS - 3] + "..."


def _got(value) -> str:
    """'got ...' for an error message: the JSON type and the (shortened) value."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"a boolean ({'true' if value else 'false'})"
    if isinstance(value, str):
        return f"the string {_shown(value)}"
    if isinstance(value, list):
        return f"a list {_shown(value)}"
    if isinstance(value, dict):
        return f"an object {_shown(value)}"
    return _shown(value)


REQUIRED = object()  # the default of a field that must be present
CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]")  # all but tab, LF, CR


def _absent(key: str, default, what: str):
    """The value of a field that is absent or null: ``default``, or a MotionError if it is REQUIRED."""
    if default is REQUIRED:
        raise MotionError(f"{key} is missing (or null): expected {what}")
    return default


def _number(request: dict, key: str, low: float, high: float, default=REQUIRED, *,
            low_open: bool = False, what: str | None = None) -> float:
    """A finite JSON number (not true/false) with low <= value <= high (low < value if ``low_open``)."""
    what = what or (f"a number greater than {low:g} and at most {high:g}" if low_open
                    else f"a number from {low:g} to {high:g}")
    value = request.get(key)
    if value is None:
        return _absent(key, default, what)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise MotionError(f"{key} must be {what}, got {_got(value)}")
    if not math.isfinite(value) or value > high or value < low or (low_open and value == low):
        raise MotionError(f"{key} must be {what}, got {_shown(value)}")
    return float(value)


def _integer(request: dict, key: str, low: int, high: int, default=REQUIRED) -> int:
    """A JSON integer (not true/false, not 2.0) with low <= value <= high."""
    what = f"an integer from {low} to {high}"
    value = request.get(key)
    if value is None:
        return _absent(key, default, what)
    if isinstance(value, bool) or not isinstance(value, int):
        raise MotionError(f"{key} must be {what}, got {_got(value)}")
    if not low <= value <= high:
        raise MotionError(f"{key} must be {what}, got {_shown(value)}")
    return value


def _string(request: dict, key: str, what: str, default=REQUIRED, *, max_chars: int = MAX_TEXT_CHARS) -> str:
    """A JSON string of at most ``max_chars`` characters without control characters (but tab,
    newline and carriage return) or lone surrogates."""
    value = request.get(key)
    if value is None:
        return _absent(key, default, what)
    if not isinstance(value, str):
        raise MotionError(f"{key} must be {what}, got {_got(value)}")
    if len(value) > max_chars:
        raise MotionError(f"{key} is {len(value)} characters long, more than the limit of {max_chars}: "
                          f"{_shown(value)}")
    bad = CONTROL.search(value)
    if bad:
        raise MotionError(f"{key} contains the character U+{ord(bad.group()):04X} at position {bad.start()} "
                          f"(control characters and lone surrogates are refused): {_shown(value)}")
    return value


def _text(request: dict, key: str = "text", optional: bool = False) -> str | None:
    """A caption: a non-blank string, or (``optional``) None for absent, null or blank."""
    text = _string(request, key, "a string: the words describing the motion", None if optional else REQUIRED)
    if text is None or not text.strip():
        if optional:
            return None
        raise MotionError(f"{key} is empty: describe the motion in words, e.g. 'a person walks forward'")
    return text


def _seconds(request: dict, optional: bool = False) -> float | None:
    return _number(request, "seconds", 0.0, MAX_SECONDS, None if optional else REQUIRED, low_open=True,
                   what=f"a positive number of seconds, at most {MAX_SECONDS:g}")


def _seed(request: dict) -> int | None:
    return _integer(request, "seed", 0, MAX_SEED, None)


def _timeline_rows(request: dict) -> list[Segment]:
    """``rows``: a list of at most MAX_ROWS objects {"text", "start", "seconds", "part"} ->
    checked Segments (engine.timeline.check_segments names the row at fault)."""
    rows = request.get("rows")
    if not isinstance(rows, list) or not rows:
        raise MotionError(f"rows must be a non-empty list of timeline rows, got {_got(rows)}")
    if len(rows) > MAX_ROWS:
        raise MotionError(f"rows: {len(rows)} rows; at most {MAX_ROWS}")
    segments = []
    for number, row in enumerate(rows, 1):
        if not isinstance(row, dict):
            raise MotionError(f"rows[{number - 1}] must be an object with text, start, seconds, part; got {_got(row)}")
        try:
            segments.append(Segment(_text(row), _number(row, "start", 0.0, MAX_SECONDS, None),
                                    _number(row, "seconds", 0.0, MAX_SECONDS, None, low_open=True),
                                    _string(row, "part", "body part", "whole")))
        except MotionError as error:
            raise MotionError(f"timeline row {number}: {error}") from None
    return check_segments(segments, "timeline")


def _path(request: dict, key: str) -> str:
    """The path of an input .npy file: a non-empty string."""
    path = _string(request, key, "the path of a .npy file", max_chars=4096)
    if not path:
        raise MotionError(f"{key} must be the path of a .npy file, got the empty string")
    return path


ID_RULE = "an integer or a string of 1 to 64 letters, digits, '-' or '_'"


def _is_id(value) -> bool:
    """An int (|id| <= MAX_ID, not bool) or a string matching ID_PATTERN (usable in a file name)."""
    if isinstance(value, str):
        return ID_PATTERN.fullmatch(value) is not None
    return isinstance(value, int) and not isinstance(value, bool) and abs(value) <= MAX_ID


def check_id(message: dict):
    """The request's id (None when absent or null); MotionError for any other JSON value."""
    value = message.get("id")
    if value is None or _is_id(value):
        return value
    raise MotionError(f"id must be {ID_RULE} (or absent), got {_got(value)}")


def check_cancel_ids(message: dict) -> list:
    """The ``ids`` of a cancel line: a list of ids (null is not one)."""
    ids = message.get("ids")
    if not isinstance(ids, list):
        raise MotionError(f"cancel: ids must be a list of request ids, got {_got(ids)}")
    for value in ids:
        if not _is_id(value):
            raise MotionError(f"cancel: ids must be a list of request ids ({ID_RULE}), one of them is {_got(value)}")
    return ids


# ----------------------------------------------------------------------------- reading lines

def _refuse_constant(name: str):
    raise ValueError(f"{name} is not valid JSON")


def parse_line(raw: bytes) -> dict | None:
    """One request line (bytes) -> its JSON object; None for a blank line; MotionError otherwise."""
    if len(raw) > MAX_LINE_BYTES:
        raise MotionError(f"the line is longer than the limit of {MAX_LINE_BYTES} bytes")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise MotionError(f"not UTF-8 text (byte 0x{raw[error.start]:02x} at position {error.start})") from None
    text = text.strip()
    if not text:
        return None
    try:
        message = json.loads(text, parse_constant=_refuse_constant)
    except RecursionError:
        raise MotionError("the JSON is nested too deeply") from None
    except ValueError as error:  # json.JSONDecodeError, NaN, or an integer of too many digits
        raise MotionError(f"not JSON: {error}") from None
    if not isinstance(message, dict):
        raise MotionError(f"expected a JSON object, got {_got(message)}")
    return message


def read_lines(stream):
    """Yield the lines of a binary stream; a line over MAX_LINE_BYTES is read to its end and
    yielded as its first MAX_LINE_BYTES + 1 bytes (parse_line refuses it), so memory stays bounded."""
    while True:
        line = stream.readline(MAX_LINE_BYTES + 1)
        if not line:
            return
        if len(line) > MAX_LINE_BYTES and not line.endswith(b"\n"):
            while True:                                  # skip the rest of the line
                rest = stream.readline(MAX_LINE_BYTES + 1)
                if not rest or rest.endswith(b"\n"):
                    break
        yield line


# ----------------------------------------------------------------------------- the worker

class Worker:
    """Loads the model on first use and runs one request at a time."""

    def __init__(self, source: str, device: str | None, exchange: Path, send):
        self.source, self.device, self.exchange, self.send = source, device, exchange, send
        self.model = None
        self.anonymous_results = 0

    # -- the model
    def ensure_model(self, request_id):
        if self.model is None:
            self.send({"id": request_id, "status": f"loading the MotionGPT model ({self.source})"})
            from .model import MotionGPT
            self.model = MotionGPT.from_pretrained(self.source, device=self.device)
        return self.model

    # -- motions through the exchange folder
    def read_motion(self, request: dict, key: str) -> Motion:
        """The motion of the .npy file named by ``request[key]`` at the request's fps."""
        path = _path(request, key)
        fps = _number(request, "fps", MIN_FPS, MAX_FPS, MODEL_FPS)
        what = "motion file" if key == "motion" else f"{key} motion file"
        joints = load_npy(path, what=what)
        if joints.ndim != 3 or joints.shape[1:] != (NUM_JOINTS, 3) or joints.shape[0] < 1:
            raise MotionError(f"{what} {path}: holds an array of shape {joints.shape}; expected joints "
                              f"(T, {NUM_JOINTS}, 3) with T >= 1")
        try:
            return Motion(joints, fps)
        except MotionError as error:
            raise MotionError(f"{what} {path}: {error}") from None

    def write_motion(self, request_id, motion: Motion) -> dict:
        """Save a result atomically in the exchange folder (made again if it was deleted)."""
        if not isinstance(motion, Motion):
            raise MotionError(f"the model returned {type(motion).__name__}, not an engine.Motion")
        if request_id is None:
            self.anonymous_results += 1
            name = f"result_null_{self.anonymous_results}.npy"
        else:
            name = f"result_{request_id}.npy"
        path = self.exchange / name
        save_npy(path, motion.joints.astype("float32", copy=False), what="result")
        return {"motion": str(path), "fps": float(motion.fps)}

    # -- the tasks: each checks all its fields (and reads its files) before loading the model
    def hello(self, request: dict) -> dict:
        return {"pid": os.getpid(), "python": sys.executable, "source": self.source,
                "device": self.device or "auto", "loaded": self.model is not None}

    def load(self, request: dict) -> dict:
        """Load the model and read ``WARM_UP_PROMPT`` with it: the lexicon, WordNet's index and the
        reading encoder load on the first prompt (~1.4 s on 2 cores), which then waits for none of
        them (the add-on sends "load" when Blender starts)."""
        model = self.ensure_model(request.get("id"))
        model.reading_of(WARM_UP_PROMPT)
        return {"device": str(getattr(model, "device", self.device or "auto"))}

    def text_to_motion(self, request: dict) -> dict:
        text, seconds, seed = _text(request), _seconds(request, optional=True), _seed(request)
        model = self.ensure_model(request.get("id"))
        motion, plan = text_to_motion_planned(model, text, seconds=seconds, seed=seed)
        reply = self.write_motion(request.get("id"), motion)
        if plan is not None:
            reply["plan"] = plan            # a compound prompt, generated as a timeline
            captions = [row.text for row in plan_prompt(text)]
        else:
            captions = [text]
            read_as = model.read_as(text)
            if read_as != text:
                reply["read_as"] = read_as  # words the model does not know were rewritten or read as a label
        return {**reply, **_notes(model, captions)}

    def timeline(self, request: dict) -> dict:
        rows, seed = _timeline_rows(request), _seed(request)
        model = self.ensure_model(request.get("id"))
        composed = compose_timeline(model, rows, seed=seed)
        return {**self.write_motion(request.get("id"), composed.motion), "plan": composed.plan,
                "spans": [list(span) for span in composed.spans], **_notes(model, [row.text for row in rows])}

    def describe(self, request: dict) -> dict:
        motion = self.read_motion(request, "motion")
        return {"text": str(self.ensure_model(request.get("id")).describe(motion))}

    def predict(self, request: dict) -> dict:
        seconds, seed = _seconds(request), _seed(request)
        motion = self.read_motion(request, "motion")
        model = self.ensure_model(request.get("id"))
        return self.write_motion(request.get("id"), model.predict(motion, seconds, seed=seed))

    def inbetween(self, request: dict) -> dict:
        frames, text, seed = _integer(request, "frames", 1, MAX_FRAMES), _text(request, optional=True), _seed(request)
        before, after = self.read_motion(request, "before"), self.read_motion(request, "after")
        model = self.ensure_model(request.get("id"))
        return self.write_motion(request.get("id"), model.inbetween(before, after, frames, text=text, seed=seed))

    def run(self, request: dict) -> dict:
        task = request.get("task")
        if not isinstance(task, str) or task not in TASKS:
            named = "the request has no task" if task is None else f"unknown task {_shown(task)}"
            raise MotionError(f"{named}; expected one of {', '.join(TASKS)}")
        return getattr(self, task)(request)

    def answer(self, request: dict) -> None:
        """Run one request and send its reply, whatever happens."""
        request_id = request.get("id")
        try:
            reply = {"id": request_id, "ok": True, **self.run(request)}
        except MotionError as error:
            reply = {"id": request_id, "ok": False, "kind": "input", "error": str(error)}
        except Exception as error:  # the worker must survive anything the engine raises
            if _is_out_of_memory(error):
                _free_gpu_memory()
                reply = {"id": request_id, "ok": False, "kind": "memory",
                         "error": "the GPU ran out of memory (CUDA). Close other GPU programs, ask for a "
                                  "shorter clip, or choose the CPU device in the add-on preferences"}
            else:
                _log_traceback()
                reply = {"id": request_id, "ok": False, "kind": "engine",
                         "error": f"{type(error).__name__}: {error}"}
        self.send(reply)


def _notes(model, captions: list[str]) -> dict:
    """{"notes": [...]}: one line per caption (a prompt, or a row of its plan or timeline) whose
    action the model does not know (``MotionGPT.reading_of``), each once; {} when there is none."""
    notes = [reading.notice for reading in model.reading_of(captions) if reading.notice]
    return {"notes": list(dict.fromkeys(notes))} if notes else {}


def _is_out_of_memory(error: BaseException) -> bool:
    name = type(error).__name__
    return name == "OutOfMemoryError" or (isinstance(error, RuntimeError) and "out of memory" in str(error))


def _free_gpu_memory() -> None:
    try:
        import torch
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    except Exception:  # freeing is best effort
        pass


def _log(text: str) -> None:
    """A line on stderr; never raises (stderr may be gone too)."""
    try:
        print(text, file=sys.stderr, flush=True)
    except Exception:
        pass


def _log_traceback() -> None:
    try:
        traceback.print_exc(file=sys.stderr)
    except Exception:
        pass


# ----------------------------------------------------------------------------- writing replies

def encode_reply(message: dict) -> str:
    """The JSON line of a reply; a reply that is not plain JSON (NaN, a numpy value, ...) becomes
    an "engine" error reply with the same id."""
    try:
        return json.dumps(message, allow_nan=False)
    except Exception as error:  # ValueError, TypeError, RecursionError, ...
        _log(f"engine.worker: cannot encode the reply {_shown(message)}: {type(error).__name__}: {error}")
        request_id = message.get("id") if isinstance(message, dict) else None
        request_id = request_id if request_id is None or isinstance(request_id, (int, str)) else None
        return json.dumps({"id": request_id, "ok": False, "kind": "engine",
                           "error": f"the engine's reply could not be written as JSON: {type(error).__name__}: "
                                    f"{_shown(str(error))}"})


class Channel:
    """The real stdout, for protocol lines only: fd 1 and ``sys.stdout`` are pointed at stderr so
    that stray prints (ours, a library's, C code's) cannot corrupt the protocol. ``send`` is
    thread-safe and never raises; ``broken`` is set once stdout cannot be written (the add-on is gone)."""

    def __init__(self):
        self.stream = os.fdopen(os.dup(1), "w", encoding="utf-8", buffering=1)
        os.dup2(2, 1)
        sys.stdout = sys.stderr
        self.lock = threading.Lock()
        self.broken = False

    def send(self, message: dict) -> None:
        line = encode_reply(message)
        with self.lock:
            if self.broken:
                return
            try:
                self.stream.write(line + "\n")
                self.stream.flush()
            except (OSError, ValueError) as error:
                self.broken = True
                _log(f"engine.worker: cannot write to stdout ({error}); stopping")


# ----------------------------------------------------------------------------- the process

END = None  # put on the request queue by the reader thread when it stops, however it stops


def serve(source: str, device: str | None, exchange: Path, stdin=None) -> int:
    """Read requests until ``shutdown`` or end of input; returns the exit code (0, or 1 when
    stdin or stdout failed). ``stdin`` is a binary stream (default: ``sys.stdin.buffer``)."""
    channel = Channel()
    send = channel.send
    worker = Worker(source, device, exchange, send)
    requests: queue.Queue = queue.Queue()
    cancelled: set = set()
    reader_failed = threading.Event()
    stdin = stdin if stdin is not None else sys.stdin.buffer

    def take(raw: bytes) -> bool:
        """Handle one line; False once it was a shutdown. Raises MotionError for a bad line."""
        message = parse_line(raw)
        if message is None:
            return True
        request_id = check_id(message)
        if message.get("task") == "cancel":
            try:
                cancelled.update(check_cancel_ids(message))
            except MotionError as error:
                send({"id": request_id, "ok": False, "kind": "input", "error": f"bad request line: {error}"})
            return True
        requests.put(message)
        return message.get("task") != "shutdown"

    def read_requests() -> None:
        """Reads stdin on its own thread so that a cancel can overtake queued requests. Every line
        gets handled or an "input" reply; the main loop always learns that reading stopped."""
        try:
            for raw in read_lines(stdin):
                try:
                    if not take(raw):
                        return
                except MotionError as error:
                    send({"id": None, "ok": False, "kind": "input", "error": f"bad request line: {error}"})
                except Exception as error:  # a bug here must not stop the reading either
                    _log_traceback()
                    send({"id": None, "ok": False, "kind": "input",
                          "error": f"bad request line: {type(error).__name__}: {_shown(str(error))}"})
        except BaseException:
            reader_failed.set()
            _log("engine.worker: reading requests failed:")
            _log_traceback()
        finally:
            requests.put(END)

    def answer_requests() -> int:
        """The main loop: answer queued requests in order until shutdown, the end of input or a
        broken stdout; returns the exit code."""
        while True:
            request = requests.get()
            if request is END or request.get("task") == "shutdown":
                return 1 if reader_failed.is_set() or channel.broken else 0
            request_id = request.get("id")
            if request_id is not None and request_id in cancelled:
                cancelled.discard(request_id)
                send({"id": request_id, "ok": False, "kind": "cancelled", "error": "cancelled"})
            else:
                worker.answer(request)
            if channel.broken:
                return 1

    reader = threading.Thread(target=read_requests, name="requests", daemon=True)
    reader.start()
    try:
        code = answer_requests()
    except BaseException:  # e.g. KeyboardInterrupt, or SystemExit raised inside a library
        _log("engine.worker: stopping:")
        _log_traceback()
        code = 1
    if reader.is_alive():
        _exit_now(code)
    return code


def _exit_now(code: int) -> None:
    """End the process while the reader thread is blocked reading stdin (stdout broke):
    Python's normal exit would abort ("could not acquire lock for <stdin> at interpreter
    shutdown"), so flush stderr and leave at once."""
    try:
        sys.stderr.flush()
    except Exception:
        pass
    os._exit(code)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m engine.worker", description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="default",
                        help='"default", "official" (engine/official.py), a model folder or a hub repo id')
    parser.add_argument("--device", default="auto", help="auto, cuda or cpu")
    parser.add_argument("--exchange", required=True, type=Path, help="folder for the .npy motion files")
    args = parser.parse_args(argv)
    args.exchange.mkdir(parents=True, exist_ok=True)
    device = None if args.device in ("", "auto") else args.device
    return serve(args.model, device, args.exchange)


if __name__ == "__main__":
    sys.exit(main())
