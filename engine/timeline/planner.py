"""One prompt -> a timeline: "walks forward, then sits down", "waves while walking".

People write motion as sequences ("A, then B") and layers ("A while B"). ``plan_prompt`` reads a
prompt with a few word lists (no model, no WordNet: it must be instant and predictable) and
returns the rows of a timeline (``engine.timeline.Segment``):

- **Sequences** split at "then", "and then", "after that", "afterwards", "next", "finally",
  "followed by", ";", a sentence end, "after A, B", "A after B-ing", "A before B", "before A, B".
- **Layers**: "A while B", "A as B", "A whilst B", "A and B", "A, B-ing", "A with a wave", "A with
  arms raised" become an upper-body layer when exactly one side is an upper-body action (wave,
  raise the hands, punch, point, clap, salute ...) and the other moves the legs (walk, run, jog,
  turn, walk backward ...). "A and B" of two leg actions ("walks and turns left") stays one caption:
  it is one action of the training data.
- A clause without a subject borrows the prompt's ("a man walks, then sits" -> "a man sits"),
  with its verb in the third person ("walk, then turn left" -> "a person walks", "a person turns
  left"; "waving" -> "waves").
- "for 3 seconds" / "for 2 s" / "for two seconds" fixes the length of the clause that says it.

A prompt that is one action comes back as a single segment holding the prompt exactly as typed,
so it generates as plain text-to-motion does.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from ..text.lexicon import stems
from ..text.lexicon import third_person as conjugate
from .segments import Segment

# Verbs (dictionary forms) by what they move. A word counts when it or a simple stem of it
# (engine.text.lexicon.stems: "waving" -> "wave", "jogging" -> "jog") is listed.
LEG_VERBS = frozenset("""
    walk stroll amble saunter march stride wander hike trek pace tread step tiptoe sneak creep limp shuffle
    strut stomp trudge plod run jog sprint dash race rush hurry trot scurry turn circle pivot back retreat
    sidestep move go head cross approach travel advance proceed cruise roam skip
""".split())
UPPER_VERBS = frozenset("""
    wave raise lift punch jab box point clap salute beckon gesture shake throw greet applaud cheer signal
    hail flail swing
""".split())
OTHER_VERBS = frozenset("""
    bow kick jump hop leap sit stand squat kneel crouch lie fall dance spin stop pause rest stay wait climb
    crawl pick put bend reach stretch slash dribble look nod fight duck dodge roll stumble
""".split())
# Verbs that name no motion of their own but carry an action noun ("takes a bow", "gives a wave").
LIGHT_VERBS = frozenset("take make do give get start begin keep continue try have perform".split())
VERBS = LEG_VERBS | UPPER_VERBS | OTHER_VERBS
# Said of two layered actions and meaning nothing more ("punches at the same time").
SIMULTANEOUS = re.compile(r",?\s*\b(at the same time|simultaneously|meanwhile|all the while)\b", re.IGNORECASE)
# Nouns of upper-body actions after "with" ("walks with a wave", "runs with both arms raised").
UPPER_PHRASES = (
    (re.compile(r"\b(arms?|hands?)\b.*\b(raised|up|high|aloft|lifted|in the air)\b"), "raises both hands"),
    (re.compile(r"\b(raised|lifted)\b.*\b(arms?|hands?)\b"), "raises both hands"),
    (re.compile(r"\bwave\b"), "waves"),
    (re.compile(r"\bpunch(es)?\b"), "punches"),
    (re.compile(r"\bsalute\b"), "salutes"),
    (re.compile(r"\bclap\b"), "claps"),
)
SUBJECT_PRONOUNS = frozenset("he she they someone somebody everyone it i we you".split())
DETERMINERS = frozenset("a an the this that one my his her our their some".split())
DEFAULT_SUBJECT = "a person"
# Leading words of a clause that only order it ("first", "then", ...).
ORDER_WORDS = ("and then", "after that", "afterwards", "afterward", "and finally", "finally", "first", "then",
               "next", "later", "subsequently", "and", "so")
NUMBER_WORDS = {"one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8,
                "nine": 9, "ten": 10, "a": 1, "half a": 0.5}
DURATION = re.compile(
    r",?\s*\bfor\s+(?:about\s+|around\s+)?(\d+(?:\.\d+)?|half a|one|two|three|four|five|six|seven|eight|nine|ten|a)"
    r"\s*(?:seconds?|secs?|s)\b", re.IGNORECASE)
SEQUENCE_SPLIT = re.compile(
    r"\s*(?:;|,?\s*\band then\b|,?\s*\band after that\b|,\s*after that\b|,\s*afterwards?\b|,\s*then\b|\bthen\b"
    r"|,?\s*\bfollowed by\b|,\s*next\b|,?\s*\band finally\b|,\s*finally\b|(?<=[a-z])\.\s+(?=[A-Za-z]))\s*",
    re.IGNORECASE)
LAYER_SPLIT = re.compile(r"\s*(?:\bwhile\b|\bwhilst\b|\bas\b|\band\b|\bwith\b|,)\s*", re.IGNORECASE)
WORD = re.compile(r"[A-Za-z']+")


@dataclass(frozen=True)
class Clause:
    """One action phrase of a prompt: its words as typed (without the subject), whether it had a
    subject of its own, what its main verb moves (legs, upper, other, or None: no verb found) and
    a length fixed in the text (seconds) if any."""

    text: str
    subject: str | None
    kind: str | None
    seconds: float | None = None


def verb_kind(word: str) -> str | None:
    """"legs", "upper" or "other" for a verb form of the word lists ("waving" -> "upper"), else None."""
    forms = stems(word)
    if forms & LEG_VERBS:
        return "legs"
    if forms & UPPER_VERBS:
        return "upper"
    if forms & OTHER_VERBS:
        return "other"
    return None


def third_person(word: str) -> str:
    """A verb form ("walk", "walking", "walks") in the third person singular ("walks")."""
    lower = word.lower()
    base = next((form for form in sorted(stems(lower), key=len, reverse=True) if form in VERBS), None)
    return word if base is None else conjugate(base)


def split_subject(text: str) -> tuple[str | None, list[str]]:
    """(subject or None, the remaining words) of a clause: a pronoun, or a determiner and the
    words up to the first verb ("an old man strolls ..." -> "an old man")."""
    words = text.split()
    if not words:
        return None, words
    first = words[0].lower().strip(",")
    if first in SUBJECT_PRONOUNS:
        return words[0], words[1:]
    if first in DETERMINERS or first in ("man", "woman", "person", "kid", "guy", "girl", "boy", "character"):
        for i in range(1, min(len(words), 6)):
            word = words[i].strip(",.").lower()
            if (verb_kind(word) is not None or stems(word) & LIGHT_VERBS) and word.endswith(("s", "ing")):
                return " ".join(words[:i]), words[i:]
    return None, words


def _duration_of(text: str) -> tuple[str, float | None]:
    """The text without "for N seconds", and N (None when not said)."""
    match = DURATION.search(text)
    if match is None:
        return text, None
    value = match.group(1).lower()
    seconds = float(NUMBER_WORDS[value]) if value in NUMBER_WORDS else float(value)
    return (text[:match.start()] + text[match.end():]).strip(" ,"), seconds


def _strip_order_words(text: str) -> str:
    text = text.strip(" ,.;!")
    changed = True
    while changed:
        changed = False
        for word in ORDER_WORDS:
            if text.lower().startswith(word + " ") or text.lower().startswith(word + ","):
                text, changed = text[len(word):].strip(" ,"), True
    return text


def read_clause(text: str) -> Clause:
    """A Clause from one action phrase ("then he turns right for 2 seconds")."""
    text, seconds = _duration_of(_strip_order_words(SIMULTANEOUS.sub("", text)))
    subject, words = split_subject(text)
    kind = next((verb_kind(w.strip(",.")) for w in words[:3] if verb_kind(w.strip(",."))), None)
    return Clause(" ".join(words).strip(" ,.;!"), subject, kind, seconds)


def _as_sentence(clause: Clause, subject: str) -> str:
    """The clause as a caption of its own: its subject (the prompt's for none or a pronoun) and a
    third-person verb."""
    words = clause.text.split()
    if words and words[0].lower() in ("a", "an", "another", "one"):     # "a polite bow" -> "bows"
        action = next((w for w in words if stems(w.lower()) & VERBS), None)
        words = [action] if action else words
    if words:
        words[0] = third_person(words[0])
    own = clause.subject if clause.subject and clause.subject.lower() not in SUBJECT_PRONOUNS else None
    return " ".join([own or subject] + words)


def _phrase_clause(text: str) -> Clause | None:
    """An upper-body action said as a noun phrase ("a wave", "both arms raised up") as a Clause."""
    lower = text.lower()
    for pattern, caption in UPPER_PHRASES:
        if pattern.search(lower):
            return Clause(caption, None, "upper")
    return None


def _layer_splits(text: str) -> list[tuple[str, str, str]]:
    """(left, joining word, right) at every place a layer may be joined: the words of LAYER_SPLIT
    and before a gerund of a listed verb ("jogs forward waving one hand")."""
    splits = [(text[:m.start()], m.group(0).strip().lower(), text[m.end():]) for m in LAYER_SPLIT.finditer(text)]
    for match in re.finditer(r"\s(?=([A-Za-z]+ing)\b)", text):
        if verb_kind(match.group(1)) in ("legs", "upper") and match.start() > 0 and text[match.start() - 1] != ",":
            splits.append((text[:match.start()], "", text[match.end():]))
    return splits


def _layers(text: str) -> tuple[Clause, Clause | None]:
    """(the clause that moves the whole body, its upper-body layer or None) of one sequence item."""
    whole = read_clause(text)
    for left, word, right in _layer_splits(text):
        if not left.strip() or not right.strip():
            continue
        a = read_clause(left)
        b = _phrase_clause(right) if word == "with" else read_clause(right)
        if b is None or a.kind is None or b.kind is None:
            continue
        if word == "," and not right.strip().lower().split()[0].endswith("ing") and b.subject is None:
            continue            # "bows deeply, politely": a comma joins a layer only before "waving"
        kinds = {a.kind, b.kind}
        if kinds == {"legs", "upper"}:
            base, layer = (a, b) if a.kind == "legs" else (b, a)
            seconds = base.seconds or layer.seconds or whole.seconds
            return Clause(base.text, base.subject, base.kind, seconds), Clause(layer.text, layer.subject, "upper")
    return whole, None


def _sequence_items(text: str) -> list[str]:
    """The prompt cut into its sequence items, in the order they happen."""
    items = [item for item in SEQUENCE_SPLIT.split(text) if item and item.strip(" ,.;!")]
    ordered = []
    for item in items:
        lower = item.strip().lower()
        after = re.match(r"(?:and\s+)?(after|before|once)\s+(.+?),\s*(.+)$", item.strip(), re.IGNORECASE)
        if after:          # "after A, B" / "once A, B" -> A, B ; "before A, B" -> B, A
            first, second = after.group(2), after.group(3)
            ordered += [first, second] if after.group(1).lower() != "before" else [second, first]
            continue
        inner = re.match(r"(.+?)\s+(before|after)\s+(.+)$", item.strip(), re.IGNORECASE)
        if inner and read_clause(inner.group(3)).kind is not None and lower.split()[0] not in ("after", "before"):
            first, second = inner.group(1), inner.group(3)    # "A before B" ; "A after B-ing" -> B, A
            ordered += [first, second] if inner.group(2).lower() == "before" else [second, first]
            continue
        ordered += _comma_list(item)
    return ordered


def _comma_list(item: str) -> list[str]:
    """"jog, jump, bow" / "walks, turns left and bows" -> its actions, where every part after a
    comma starts with a verb that is not a gerund (a gerund after a comma is a layer)."""
    parts = re.split(r"\s*,\s*(?:and\s+)?", item.strip())
    if len(parts) < 2:
        return [item]
    def starts_with_verb(part: str) -> bool:
        subject, words = split_subject(_strip_order_words(part))
        return bool(words) and verb_kind(words[0]) is not None and not words[0].lower().endswith("ing")
    if all(starts_with_verb(part) for part in parts):
        return parts
    return [item]


def plan_prompt(prompt: str) -> list[Segment]:
    """The timeline rows of one prompt (see the module docstring). One action -> one whole-body
    segment with the prompt exactly as typed; otherwise whole-body segments in order (start and
    length left to the timeline and the model unless the prompt says "for N seconds"), each
    followed by its upper-body layer if it has one."""
    items = _sequence_items(prompt)
    planned = [_layers(item) for item in items]
    if len(planned) <= 1 and (not planned or (planned[0][1] is None and planned[0][0].seconds is None)):
        return [Segment(prompt)]          # one action (or nothing to read): the prompt as typed
    subjects = [c.subject for pair in planned for c in pair if c is not None and c.subject]
    named = [s for s in subjects if s.lower() not in SUBJECT_PRONOUNS]
    pronoun = subjects[0].lower() if subjects else ""
    subject = named[0] if named else {"he": "a man", "she": "a woman"}.get(pronoun, DEFAULT_SUBJECT)
    segments = []
    for whole, layer in planned:
        segments.append(Segment(_as_sentence(whole, subject), seconds=whole.seconds))
        if layer is not None:
            segments.append(Segment(_as_sentence(layer, subject), part="upper"))
    return segments
