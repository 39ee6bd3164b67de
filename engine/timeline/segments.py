"""The rows of a prompt timeline: what happens when, on which part of the body.

A timeline is a list of ``Segment`` rows::

    Segment("a person walks forward", start=0.0, seconds=3.0)            # whole body, 0-3 s
    Segment("a person sits down", start=3.0, seconds=2.0)                # whole body, 3-5 s
    Segment("a person waves", start=0.5, seconds=2.0, part="upper")      # arms, neck, head, 0.5-2.5 s

- ``part``: "whole" (the whole body and the root), "upper" (spine3 and up: arms, neck, head, on
  top of the whole-body motion under it) or "lower" (root, legs and spine up to spine2, under the
  whole-body motion's upper body).
- ``start`` None: a whole-body row starts where the whole-body row before it ends (0 for the
  first); a layer starts with the whole-body row listed before it.
- ``seconds`` None: a whole-body row lasts as long as the model chooses for its text; a layer
  lasts until the end of the whole-body row it starts in.

Whole-body rows must not overlap; a gap between two of them is filled by the model's in-between.
The text file form (``read_timeline_file``) has one row per line: ``start<TAB>seconds<TAB>part<TAB>text``
(``#`` comments and blank lines skipped; ``start`` and ``seconds`` may be ``-`` for None).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from ..errors import MotionError

PARTS = ("whole", "upper", "lower")
MAX_TIMELINE_SECONDS = 60.0     # the longest motion a timeline may make (the add-on's limit too)
MAX_ROWS = 64
MAX_TEXT_CHARS = 500


@dataclass(frozen=True)
class Segment:
    """One row of a timeline (see the module docstring); times in seconds."""

    text: str
    start: float | None = None
    seconds: float | None = None
    part: str = "whole"


def _time(value, name: str, row: str, positive: bool) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise MotionError(f"{row}: {name} must be a number of seconds, got {value!r}")
    if value < 0 or (positive and value <= 0):
        raise MotionError(f"{row}: {name} must be {'positive' if positive else 'at least 0'}, got {value:g}")
    if value > MAX_TIMELINE_SECONDS:
        raise MotionError(f"{row}: {name} {value:g} s is beyond the {MAX_TIMELINE_SECONDS:g} s limit")
    return float(value)


def _check_row(segment: Segment, row: str) -> Segment:
    """One row's own checks (see ``check_segments``); the row cleaned."""
    if not isinstance(segment, Segment):
        raise MotionError(f"{row}: expected a Segment, got {type(segment).__name__}")
    text = " ".join(segment.text.split()) if isinstance(segment.text, str) else ""
    if not text:
        raise MotionError(f"{row}: the text is empty (say what the person does)")
    if len(text) > MAX_TEXT_CHARS:
        raise MotionError(f"{row}: the text is {len(text)} characters; at most {MAX_TEXT_CHARS}")
    if segment.part not in PARTS:
        raise MotionError(f"{row}: unknown body part {segment.part!r}; expected one of {', '.join(PARTS)}")
    start = _time(segment.start, "start", row, positive=False)
    seconds = _time(segment.seconds, "seconds", row, positive=True)
    if start is not None and seconds is not None and start + seconds > MAX_TIMELINE_SECONDS + 1e-9:
        raise MotionError(f"{row}: ends at {start + seconds:g} s, past the {MAX_TIMELINE_SECONDS:g} s limit")
    return Segment(text, start, seconds, segment.part)


def check_segments(segments: Sequence[Segment], source: str = "timeline") -> list[Segment]:
    """The rows checked and cleaned (text on one line, times as floats); a ``MotionError`` naming
    the row for an empty text, an unknown part, a negative, zero or non-finite time, rows that end
    past 60 s, overlapping whole-body rows (a row starting before an earlier one with a start and a
    length ends), a layer before any
    whole-body row, or more than ``MAX_ROWS`` rows."""
    if isinstance(segments, (str, bytes)) or not isinstance(segments, Sequence) or not segments:
        raise MotionError(f"{source}: a timeline needs at least one row")
    if len(segments) > MAX_ROWS:
        raise MotionError(f"{source}: {len(segments)} rows; at most {MAX_ROWS}")
    cleaned: list[Segment] = []
    for number, segment in enumerate(segments, 1):
        row = f"{source} row {number}"
        segment = _check_row(segment, row)
        if segment.part != "whole" and segment.start is None and not any(s.part == "whole" for s in cleaned):
            raise MotionError(f"{row}: a {segment.part}-body layer without a start needs a whole-body row before it")
        cleaned.append(segment)
    if not any(s.part == "whole" for s in cleaned):
        raise MotionError(f"{source}: no whole-body row; a timeline needs one to put its layers on")
    timed = sorted((s.start, i + 1, None if s.seconds is None else s.start + s.seconds)
                   for i, s in enumerate(cleaned) if s.part == "whole" and s.start is not None)
    for (_, first, end), (start, second, _) in zip(timed, timed[1:]):
        if end is not None and start < end - 1e-6:
            first, second = sorted((first, second))
            raise MotionError(f"{source} rows {first} and {second}: whole-body rows overlap "
                              f"(one starts at {start:g} s, before the other ends at {end:g} s)")
    return cleaned


def _field(text: str, name: str, row: str) -> float | None:
    text = text.strip()
    if text in ("", "-"):
        return None
    try:
        return float(text)
    except ValueError:
        raise MotionError(f"{row}: {name} {text!r} is not a number of seconds (or '-')") from None


def parse_timeline(text: str, source: str = "timeline") -> list[Segment]:
    """Rows ``start<TAB>seconds<TAB>part<TAB>text`` -> checked Segments (see the module docstring)."""
    segments = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        row = f"{source}:{number}"
        fields = line.split("\t")
        if len(fields) != 4:
            raise MotionError(f"{row}: expected 4 tab-separated fields start, seconds, part, text; "
                              f"got {len(fields)}")
        start, seconds, part, words = fields
        segment = Segment(words, _field(start, "start", row), _field(seconds, "seconds", row), part.strip().lower())
        segments.append(_check_row(segment, row))
    if not segments:
        raise MotionError(f"{source}: no rows (one per line: start<TAB>seconds<TAB>part<TAB>text)")
    return check_segments(segments, source)


def read_timeline_file(path: str | Path) -> list[Segment]:
    """``parse_timeline`` of a UTF-8 text file; a ``MotionError`` naming the file for anything unreadable."""
    path = Path(path)
    if path.is_dir():
        raise MotionError(f"{path}: is a folder, not a timeline file")
    try:
        data = path.read_bytes()
    except OSError as error:
        raise MotionError(f"{path}: cannot read it: {error.strerror or error}") from None
    if len(data) > 1_000_000:
        raise MotionError(f"{path}: {len(data)} bytes; a timeline file is at most 1 MB")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise MotionError(f"{path}: not UTF-8 text (byte {error.start})") from None
    return parse_timeline(text, str(path))


def describe_plan(segments: Sequence[Segment], durations: Sequence[float] | None = None) -> str:
    """"walks forward (3.0 s) | + upper body: waves": the rows as a user reads them, with the
    lengths (seconds per row) once they are known."""
    parts = []
    for i, segment in enumerate(segments):
        words = segment.text.split()
        action = " ".join(words[_verb_index(words):]) or segment.text
        seconds = durations[i] if durations is not None else segment.seconds
        length = f" ({seconds:.1f} s)" if seconds is not None else ""
        if segment.part == "whole":
            parts.append(f"{action}{length}")
        else:
            parts.append(f"+ {segment.part} body: {action}{length}")
    return " | ".join(parts)


def _verb_index(words: list[str]) -> int:
    """Index of the first word after a caption's subject ("a man walks" -> 2), 0 when unsure."""
    from .planner import split_subject
    subject, rest = split_subject(" ".join(words))
    return len(words) - len(rest)
