"""Captions with words a model never saw, read as the label caption nearest in meaning.

A small model trained on a few hours of labelled mocap generates its labels well ("a person bows":
described back right 94 % of the time) and anything else poorly: one word it never saw pulls the
motion off ("a cowboy walks into the saloon" waved). So a caption that still holds words outside
the model's training captions after ``engine.text.lexicon`` has rewritten what it could is read as one
of the model's **readings**, the content labels of its training data, each with its label
captions ("bow": "a person bows", "a person bows politely", "a person takes a bow"):

1. the sentence embedding of the caption by all-mpnet-base-v2 (``engine.text.encoder``; a larger
   encoder than the MiniLM the model reads its captions with, and the one that names the right
   action far more often: 90 % of the first paraphrase set against 75 % with MiniLM) is compared
   (cosine) with each label's mean embedding of its captions, with and without their sides
   (``Reader.prototypes``);
2. the best label's first caption is what the model reads: "a person bows"; a hand the caption
   names ("with the left hand") fills a caption's ``{hand}``, and a style word the model knows
   ("happily", "tired") adds that style's adverb: "a person walks forward happily".

Captions whose every word the model knows are read as typed, and so is text with no Latin word
at all (it has no word to be unknown). The readings and style words are stored with each model
(``engine.text.side.TextSideConfig``); without them (official weights) captions are read as typed.

**Actions a model does not know.** A reading is always *some* label, however far; so each prompt is
also judged (``Reader.action_readings``): its action, i.e. the caption after the lexicon with its
subject put as "a person" from the main verb on ("a person crawls on all fours", and that cut
before its first preposition: "a person crawls"), is scored against every label like a caption
(the higher of the two views' best cosines). Under ``UNKNOWN_ACTION_SCORE`` the model knows no
motion for it, and ``Reading.notice`` says so: "this model knows no motion for 'swims
breaststroke'; generated 'a person jogs in a circle to the left', its nearest". The action is judged after the
lexicon, so a verb WordNet ties to an action word ("saunters" -> "walks") is known, and one the
lexicon rewrote into an action of another meaning is judged by what it now says. The threshold
is a property of the similarity, not of the labels: calibrated on the paraphrase sets
(tests/data/paraphrases*.tsv, actions the model knows) against tests/data/unknown_action_prompts.tsv
(actions it does not); tests/engine/test_unknown_action.py prints the shares.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterable, Mapping, Sequence

from .lexicon import CLAUSE_WORDS, NOUN_MARKERS, SUBJECT_PRONOUNS, WORD, unknown_words

MEMORY = 4096          # readings remembered per Reader
HAND_PHRASES = {"left": " with the left hand", "right": " with the right hand", "both": " with both hands"}
_HAND = re.compile(r"\b(left|right)\s+(?:hand|arm)\b|\bboth\s+(?:hands|arms)\b")
# An action whose best label cosine (all-mpnet-base-v2, ``Reader.action_readings``) is under this is
# one the model does not know. Calibrated (tests/engine/test_unknown_action.py, bundled model):
# v0.3.0: 4.4 / 1.4 / 4.8 / 1.7 % of the paraphrase / held-out / blind / style sets flagged, 66 % of
# tests/data/unknown_action_prompts.tsv; v0.4.0 (42 labels): 3.7 / 1.4 / 2.4 / 1.7 %, 34 % (crawling
# now reads as sneaking, kneeling as lying down: near, so not flagged); 0.8 % of the blind physical
# prompts of actions the data holds; v0.5.0 (43 labels, climb added): 3.7 / 1.4 / 2.4 / 1.7 %, 34 %.
# A higher threshold buys detection with false alarms (0.50: 54.5 % caught, 6-12 % flagged), so it stays.
UNKNOWN_ACTION_SCORE = 0.43
AUXILIARIES = frozenset("does do did is are was were keeps".split())     # "a man does a cartwheel"
ACTION_ENDS = frozenset("of to in on at by from into onto with for through across along past around behind "
                        "while when until before after toward towards".split())


@dataclass(frozen=True)
class Reading:
    """How a model reads one prompt: ``read`` (the caption it generates from), ``action`` (the
    words of the prompt that carry its action), ``score`` (the action's best label cosine; None:
    not judged, e.g. a model without readings) and ``nearest`` (that label's caption)."""

    text: str
    read: str
    action: str
    score: float | None = None
    nearest: str | None = None

    @property
    def known(self) -> bool:
        """Whether the model knows the prompt's action (or could not judge it)."""
        return self.score is None or self.score >= UNKNOWN_ACTION_SCORE

    @property
    def notice(self) -> str | None:
        """One line for a prompt whose action the model does not know, else None."""
        if self.known:
            return None
        if self.read != self.text:
            return f"this model knows no motion for '{self.action}'; generated '{self.read}', its nearest"
        return (f"this model knows no motion for '{self.action}'; generated it as typed "
                f"(the nearest it knows: '{self.nearest}')")


def print_notices(model, captions: Sequence[str]) -> None:
    """``note: ...`` on stderr, each once, for the captions whose action ``model`` does not know
    (``MotionGPT.reading_of``): what the CLI says beside the motion it still writes."""
    import sys
    for notice in dict.fromkeys(r.notice for r in model.reading_of(list(captions)) if r.notice):
        print(f"note: {notice}", file=sys.stderr, flush=True)


def action_views(text: str, verb_places) -> tuple[str, str, str]:
    """(the words of ``text`` that carry its action, "a person" + the text from its main verb on,
    that cut before the first preposition or clause break after the verb). ``verb_places``:
    ``engine.text.lexicon.Lexicon.verb_places``. The main verb is the first verb place, or an auxiliary
    before it ("does a cartwheel"); without one the whole text is the action."""
    matches = list(WORD.finditer(text))
    words = [match.group(0).lower() for match in matches]
    clause_starts = [i > 0 and ("," in text[matches[i - 1].end():match.start()] or words[i - 1] in CLAUSE_WORDS)
                     for i, match in enumerate(matches)]
    places = verb_places(words, clause_starts) if words else None
    main = min(places) if places else None
    auxiliary = next((i for i, word in enumerate(words) if word in AUXILIARIES and 0 < i < (main or len(words))), None)
    main = auxiliary if auxiliary is not None else main
    if main is None:        # no verb found: "backpedaling away from the edge"
        plain = text.strip()
        person = plain if words and words[0] in NOUN_MARKERS | SUBJECT_PRONOUNS else f"a person {plain}"
        return plain, person, person
    clause_end = next((j for j in range(main + 1, len(words)) if clause_starts[j]), len(words))
    short_end = next((j for j in range(main + 1, clause_end) if words[j] in ACTION_ENDS), clause_end)
    start = matches[main].start()
    action = text[start: matches[clause_end - 1].end()]
    whole = text[start:].strip()
    short = text[start: matches[short_end - 1].end()]
    return action, f"a person {whole}", f"a person {short}"


def label_embeddings(encoder, prototypes: Mapping[str, Sequence[str]]):
    """(labels, hidden) float32 unit vectors: each label's mean sentence embedding of its
    prototype captions, normalised. Encoding them all (~2,800 captions through all-mpnet-base-v2)
    takes ~8 s on 2 CPU cores, which a user would wait for at the first prompt with an unknown
    word of every session; so the result is kept in ``label_embeddings/`` of the encoder's folder,
    named by the sha256 of everything it depends on (the encoder's weights file, the prototypes,
    the torch version and the device type), so that a stored file holds the very bits a new
    computation would give. An unreadable or mismatched file is computed again; a folder that
    cannot be written only costs the time."""
    import hashlib
    import json
    from pathlib import Path

    import numpy as np
    import torch

    labels = list(prototypes)
    folder, identity = getattr(encoder, "folder", None), None
    if folder is not None:
        try:
            weights = (Path(folder) / "model.safetensors").stat()
            identity = [str(folder), weights.st_size, weights.st_mtime_ns]
        except OSError:
            pass
    key = json.dumps({"weights": identity, "torch": torch.__version__,
                      "device": str(getattr(encoder, "device", "cpu")).split(":")[0],
                      "prototypes": [[label, list(prototypes[label])] for label in labels]}, ensure_ascii=True)
    path = None if identity is None else \
        Path(folder) / "label_embeddings" / f"{hashlib.sha256(key.encode()).hexdigest()}.npy"
    if path is not None and path.is_file():
        try:
            stored = np.load(path, allow_pickle=False)
            if stored.dtype == np.float32 and stored.ndim == 2 and len(stored) == len(labels) \
                    and np.isfinite(stored).all():
                return torch.from_numpy(stored).to(encoder.device)
        except (OSError, ValueError):
            pass
    means = [encoder.sentence_embeddings(prototypes[label]).mean(0) for label in labels]
    embeddings = torch.nn.functional.normalize(torch.stack(means), dim=-1)
    if path is not None:
        from ..errors import MotionError
        from ..files import save_npy
        try:
            save_npy(path, embeddings.cpu().numpy().astype(np.float32), what="label embeddings")
        except MotionError:
            pass
    return embeddings


class Reader:
    """Reads a caption as one of a model's labels (see the module docstring).

    ``readings``: label -> captions ("a person bows", "a person waves goodbye{hand}"), the first
    being the one read; ``styles``: adverb -> the words and phrases that name that style ("happily":
    ["happy", "happily", "cheerful", ...]); ``encoder``: a ``PretrainedTextEncoder`` (all-mpnet-base-v2)."""

    def __init__(self, known_words: Iterable[str], readings: Mapping[str, Sequence[str]],
                 styles: Mapping[str, Sequence[str]], encoder):
        import torch
        self.known = frozenset(word.lower() for word in known_words)
        self.labels = list(readings)
        self.readings = {label: list(captions) for label, captions in readings.items()}
        self.styles = [(adverb, re.compile(r"\b(" + "|".join(re.escape(p) for p in sorted(phrases, key=len, reverse=True))
                                           + r")\b")) for adverb, phrases in styles.items() if phrases]
        self.encoder = encoder
        self.read_before: dict[str, str] = {}       # caption -> its reading (at most MEMORY)
        self.label_embeddings = label_embeddings(encoder, {label: self.prototypes(self.readings[label])
                                                           for label in self.labels})     # (labels, hidden)

    @staticmethod
    def prototypes(captions: Sequence[str]) -> list[str]:
        """The captions a label is recognised by: its captions, one with a ``{hand}`` once per hand
        (as the training captions of such labels name the measured hand), and each of those with
        its sides left out too, as training captions often are (``engine.data.without_sides``: "a
        person walks and turns")."""
        from ..data import without_sides
        with_hands = [caption.format(hand=hand) for caption in captions
                      for hand in (HAND_PHRASES.values() if "{hand}" in caption else ("",))]
        return list(dict.fromkeys(with_hands + [without_sides(caption) for caption in with_hands]))

    def needs_reading(self, caption: str) -> bool:
        """Whether ``caption`` holds a word the model never saw."""
        return bool(unknown_words(caption, self.known))

    def scores(self, captions: Sequence[str]):
        """(B, labels) float32: each caption's cosine similarity to every label."""
        return self.encoder.sentence_embeddings(list(captions)) @ self.label_embeddings.t()

    def label(self, caption: str) -> str:
        """The label a caption is read as."""
        return self.labels[int(self.scores([caption])[0].argmax())]

    def read(self, caption: str) -> str:
        """The caption as the model reads it: as typed when it knows every word, else the nearest
        label's caption with the caption's hand and known style word ("a lady curtsies happily"
        -> "a person bows happily")."""
        return self.read_many([caption])[0]

    def read_many(self, captions: Sequence[str]) -> list[str]:
        """``read`` for each caption; the captions to read go through the encoder as one batch,
        and each reading is remembered (a prompt is read again when it is generated, embedded
        and reported)."""
        unread = list(dict.fromkeys(c for c in captions if c not in self.read_before and self.needs_reading(c)))
        for first in range(0, len(unread), 64):
            chunk = unread[first: first + 64]
            for caption, best in zip(chunk, self.scores(chunk).argmax(1).tolist()):
                if len(self.read_before) >= MEMORY:
                    self.read_before.clear()
                self.read_before[caption] = self.reading(caption, self.labels[best])
        return [self.read_before.get(c, c) for c in captions]

    def reading(self, caption: str, label: str) -> str:
        """``label``'s first caption with the hand and the known style word ``caption`` names."""
        lower = caption.lower()
        hand = _HAND.search(lower)
        read = self.readings[label][0].format(
            hand="" if hand is None else HAND_PHRASES["both" if hand.group(1) is None else hand.group(1)])
        style = self.style_of(lower)
        return read if style is None else f"{read} {style}"

    def action_readings(self, captions: Sequence[str], lexed: Sequence[str], read: Sequence[str],
                        verb_places) -> list[Reading]:
        """A ``Reading`` of each caption (as typed), given it after the lexicon (``lexed``) and as
        read (``read``): its action judged on the lexicon's words (see the module docstring).
        Text with no Latin word is not judged (this encoder reads English)."""
        views = []
        for caption, after in zip(captions, lexed):
            if WORD.search(caption):
                views += action_views(after, verb_places)[1:]
        scores = self.scores(views) if views else None
        readings, row = [], 0
        for caption, after, as_read in zip(captions, lexed, read):
            action = action_views(caption, verb_places)[0]
            if not WORD.search(caption):
                readings.append(Reading(caption, as_read, action))
                continue
            best, label = scores[2 * row: 2 * row + 2].max(1)
            view = int(best.argmax())
            nearest = self.reading(after, self.labels[int(label[view])])
            readings.append(Reading(caption, as_read, action, float(best[view]), nearest))
            row += 1
        return readings

    def style_of(self, text: str) -> str | None:
        """The adverb of the first style whose words a lower-case text names ("a tired man" ->
        "tiredly"), or None."""
        return next((adverb for adverb, pattern in self.styles if pattern.search(text)), None)
