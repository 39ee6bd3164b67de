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
STYLE_PATH = DEFAULT_PATH.parent / "style_paraphrases.tsv"     # (prompt, style) pairs: header prompt<TAB>style


def load_paraphrases(path: str | Path | None = None, header: str = HEADER) -> list[tuple[str, str]]:
    """(prompt, action) for every line of the paraphrase TSV (header ``prompt<TAB>action``; the
    style set's is ``prompt<TAB>style``).

    Blank lines are skipped. Raises MotionError naming the file when it cannot be read, when its
    header is not ``prompt<TAB>action``, or when a line is not exactly two non-empty fields.
    """
    path = Path(path) if path is not None else DEFAULT_PATH
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise MotionError(f"{path}: cannot read the paraphrase set: {error}") from None
    if not lines or lines[0] != header:
        first = lines[0] if lines else "(empty file)"
        raise MotionError(f"{path}: line 1 must be the header {header!r}, got {first!r}")
    rows: list[tuple[str, str]] = []
    for number, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) != 2 or not fields[0].strip() or not fields[1].strip():
            raise MotionError(f"{path}: line {number} must be {header.replace(chr(9), '<TAB>')!r}, got {line!r}")
        rows.append((fields[0].strip(), fields[1].strip()))
    return rows


# The paraphrase actions, by the Bandai content labels that show them (walk-left / walk-right are
# measured diagonal walks: "walk").
ACTION_OF_CONTENT = {
    "walk": "walk", "walk-left": "walk", "walk-right": "walk", "run": "run", "dash": "run",
    "walk-back": "walk_backward", "walk-turn-left": "turn", "walk-turn-right": "turn",
    "wave-both-hands": "wave", "wave-left-hand": "wave", "wave-right-hand": "wave", "bye": "wave", "byebye": "wave",
    "raise-up-both-hands": "raise", "raise-up-left-hand": "raise", "raise-up-right-hand": "raise", "bow": "bow",
}

# The action a caption names, first match wins (the order settles "walks backward", "turns while walking").
CAPTION_ACTIONS = (
    ("walk_backward", r"\b(backward|backwards|steps? back)\b"),
    ("turn", r"\bturn"),
    ("run", r"\b(run|runs|running|jog|jogs|sprint|sprints|dash|dashes)\b"),
    ("walk", r"\bwalk"),
    ("wave", r"\b(wave|waves|waving|bye|goodbye)\b"),
    ("raise", r"\b(raise|raises|raising|lift|lifts|lifting)\b"),
    ("bow", r"\b(bow|bows|bowing)\b"),
)


def action_of_caption(caption: str) -> str:
    """The paraphrase action a caption names ("other" when none)."""
    import re
    text = caption.lower()
    for action, pattern in CAPTION_ACTIONS:
        if re.search(pattern, text):
            return action
    return "other"


def action_of_clip(name: str) -> str | None:
    """The paraphrase action of a Bandai dataset clip name (mirrors "M..." included), or None."""
    from engine.data import bandai_labels_of_clip
    labels = bandai_labels_of_clip(name)
    return ACTION_OF_CONTENT.get(labels[0]) if labels else None


# The style adverbs of the model's readings (engine.data.style_words) that name each style of the
# style set (the Bandai labels tired / exhausted and old / elderly are the same style).
STYLE_ADVERBS = {
    "happy": ("happily",), "sad": ("sadly",), "angry": ("angrily",), "proud": ("proudly",),
    "shy": ("timidly, without confidence",), "tired": ("tiredly", "in an exhausted way"),
    "old": ("like an old person", "like an elderly person"), "childlike": ("like a child",),
    "energetic": ("energetically",), "swaggering": ("like a street thug, swaggering",),
}
