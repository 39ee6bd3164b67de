"""Captions with words a model never saw, read as the label caption nearest in meaning.

A small model trained on a few hours of labelled mocap generates its labels well ("a person bows":
described back right 94 % of the time) and anything else poorly: one word it never saw pulls the
motion off ("a cowboy walks into the saloon" waved). So a caption that still holds words outside
the model's training captions after ``engine.lexicon`` has rewritten what it could is read as one
of the model's **readings**, the content labels of its training data, each with its label
captions ("bow": "a person bows", "a person bows politely", "a person takes a bow"):

1. the sentence embedding of the caption by all-mpnet-base-v2 (``engine.text_encoder``; a larger
   encoder than the MiniLM the model reads its captions with, and the one that names the right
   action far more often: 90 % of the first paraphrase set against 75 % with MiniLM) is compared
   (cosine) with each label's mean embedding of its captions, with and without their sides
   (``Reader.prototypes``);
2. the best label's first caption is what the model reads: "a person bows"; a hand the caption
   names ("with the left hand") fills a caption's ``{hand}``, and a style word the model knows
   ("happily", "tired") adds that style's adverb: "a person walks forward happily".

Captions whose every word the model knows are read as typed, and so is text with no Latin word
at all (it has no word to be unknown). The readings and style words are stored with each model
(``engine.text_side.TextSideConfig``); without them (official weights) captions are read as typed.
"""
from __future__ import annotations

import re
from typing import Iterable, Mapping, Sequence

from .lexicon import unknown_words

MEMORY = 4096          # readings remembered per Reader
HAND_PHRASES = {"left": " with the left hand", "right": " with the right hand", "both": " with both hands"}
_HAND = re.compile(r"\b(left|right)\s+(?:hand|arm)\b|\bboth\s+(?:hands|arms)\b")


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
        means = [encoder.sentence_embeddings(self.prototypes(self.readings[label])).mean(0) for label in self.labels]
        self.label_embeddings = torch.nn.functional.normalize(torch.stack(means), dim=-1)    # (labels, hidden)

    @staticmethod
    def prototypes(captions: Sequence[str]) -> list[str]:
        """The captions a label is recognised by: its captions, one with a ``{hand}`` once per hand
        (as the training captions of such labels name the measured hand), and each of those with
        its sides left out too, as training captions often are (``engine.data.without_sides``: "a
        person walks and turns")."""
        from .data import without_sides
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

    def style_of(self, text: str) -> str | None:
        """The adverb of the first style whose words a lower-case text names ("a tired man" ->
        "tiredly"), or None."""
        return next((adverb for adverb, pattern in self.styles if pattern.search(text)), None)
