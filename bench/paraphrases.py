"""The paraphrase set of the free-wording benchmark (issue 9): text-to-motion prompts worded the
way an animator types them, none of whose content words a training caption contains, each with
the action it asks for. The set lives in tests/data/paraphrases.tsv; its rules are enforced by
tests/engine/test_paraphrases.py.
"""
from __future__ import annotations

from pathlib import Path

from engine.errors import MotionError

DEFAULT_PATH = Path(__file__).resolve().parents[1] / "tests" / "data" / "paraphrases.tsv"
HEADER = "prompt\taction"


def load_paraphrases(path: str | Path | None = None) -> list[tuple[str, str]]:
    """(prompt, action) for every line of the paraphrase TSV (header ``prompt<TAB>action``).

    Blank lines are skipped. Raises MotionError naming the file when it cannot be read, when its
    header is not ``prompt<TAB>action``, or when a line is not exactly two non-empty fields.
    """
    path = Path(path) if path is not None else DEFAULT_PATH
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise MotionError(f"{path}: cannot read the paraphrase set: {error}") from None
    if not lines or lines[0] != HEADER:
        first = lines[0] if lines else "(empty file)"
        raise MotionError(f"{path}: line 1 must be the header {HEADER!r}, got {first!r}")
    rows: list[tuple[str, str]] = []
    for number, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) != 2 or not fields[0].strip() or not fields[1].strip():
            raise MotionError(f"{path}: line {number} must be 'prompt<TAB>action', got {line!r}")
        rows.append((fields[0].strip(), fields[1].strip()))
    return rows
