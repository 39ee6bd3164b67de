"""The paraphrase sets tests/data/paraphrases.tsv and tests/data/paraphrases_heldout.tsv and their rules.

The set is the free-wording benchmark of issue 9: text-to-motion prompts worded the way an
animator types them ("a guy strolls across the lobby", "a lady curtsies"), each with the action it
asks for (walk, run, walk_backward, turn, wave, raise, bow). The benchmark runs the round trip
text -> motion -> describe (does the description name the prompt's action?) and retrieval (does
the generated motion sit nearest to motions of the prompt's action?) on these prompts, to measure
how the model copes with wording it never saw in training.

The rule that makes it a test of free wording: no content word of a prompt appears in the training
captions. A prompt word is allowed only if it is a function word of engine.text.lexicon.STOP_WORDS
(articles, pronouns, possessives, prepositions, conjunctions, auxiliaries; directional words such as up,
down, back, over are deliberately not in it), or if no simple stem of it (``engine.text.lexicon.stems``) is a
simple stem of a word of ``engine.data.training_vocabulary()``. So "jogging" is rejected (the
training captions say "jogs"), "a kid bolts across the yard" is allowed.
"""
from __future__ import annotations

from collections import Counter
from itertools import combinations
from pathlib import Path

import pytest

from bench.paraphrases import load_paraphrases
from engine.data import caption_words, training_vocabulary
from engine.errors import MotionError
from engine.text.lexicon import STOP_WORDS, stems

DATA = Path(__file__).resolve().parents[1] / "data"
ACTIONS = ("walk", "run", "walk_backward", "turn", "wave", "raise", "bow")
# The sets and their least sizes (prompts per action, prompts in all). The held-out set was written
# later, by someone who had seen neither the first set nor the lexicon's rewrites of it; the blind
# set later still, by someone who had seen no set, lexicon, caption bank or reading.
SETS = {"paraphrases.tsv": (16, 112), "paraphrases_heldout.tsv": (10, 70), "paraphrases_blind.tsv": (12, 84)}

# STOP_WORDS (engine.text.lexicon): the function words the lexicon never rewrites either.


@pytest.fixture(scope="module", params=sorted(SETS))
def paraphrase_set(request) -> tuple[str, list[tuple[str, str]]]:
    return request.param, load_paraphrases(DATA / request.param)


@pytest.fixture(scope="module")
def training_stems() -> set[str]:
    return set().union(*(stems(word) for word in training_vocabulary()))


def offending_words(prompt: str, training_stems: set[str]) -> list[str]:
    """The words of a prompt that break the rule, in sorted order."""
    return sorted(word for word in caption_words(prompt)
                  if word not in STOP_WORDS and stems(word) & training_stems)


def test_header():
    for name in SETS:
        assert (DATA / name).read_text(encoding="utf-8").splitlines()[0] == "prompt\taction"


def test_actions_and_counts(paraphrase_set):
    name, rows = paraphrase_set
    least_per_action, least_total = SETS[name]
    unknown = sorted({action for _, action in rows} - set(ACTIONS))
    assert not unknown, f"{name}: actions outside {ACTIONS}: {unknown}"
    counts = Counter(action for _, action in rows)
    short = {action: counts[action] for action in ACTIONS if counts[action] < least_per_action}
    assert not short, f"{name}: fewer than {least_per_action} prompts for: {short}"
    assert len(rows) >= least_total


def test_no_duplicates(paraphrase_set):
    name, rows = paraphrase_set
    counts = Counter(" ".join(prompt.lower().split()) for prompt, _ in rows)
    duplicates = sorted(prompt for prompt, count in counts.items() if count > 1)
    assert not duplicates, f"{name}: duplicate prompts: {duplicates}"


def test_the_sets_share_no_prompt():
    prompts = {name: {" ".join(p.lower().split()) for p, _ in load_paraphrases(DATA / name)} for name in SETS}
    for first, second in combinations(sorted(SETS), 2):
        assert not prompts[first] & prompts[second], (first, second)


def test_no_training_words(paraphrase_set, training_stems):
    name, rows = paraphrase_set
    offenders = [(prompt, words) for prompt, _ in rows if (words := offending_words(prompt, training_stems))]
    assert not offenders, f"{name}: prompts with training-caption words:\n" + "\n".join(
        f"  {prompt!r}: {', '.join(words)}" for prompt, words in offenders)


def test_stop_words_are_function_words_only():
    # The stop list may not smuggle in motion words: every one of these must stay rejected.
    assert not {"up", "down", "back", "over", "off", "out", "forward", "ahead"} & STOP_WORDS


def test_rule_examples(training_stems):
    assert offending_words("a guy is jogging", training_stems) == ["jogging"]
    assert offending_words("someone walked ahead, waving", training_stems) == ["ahead", "someone", "walked", "waving"]
    assert offending_words("a guy strolls cheerfully across the lobby", training_stems) == []


def test_loader_errors_name_the_file(tmp_path):
    missing = tmp_path / "missing.tsv"
    with pytest.raises(MotionError, match="missing.tsv"):
        load_paraphrases(missing)
    malformed = tmp_path / "malformed.tsv"
    malformed.write_text("prompt\taction\na guy strolls\twalk\nno action here\n", encoding="utf-8")
    with pytest.raises(MotionError, match=r"malformed\.tsv: line 3"):
        load_paraphrases(malformed)


def test_the_style_set_keeps_the_rule(training_stems):
    from bench.paraphrases import STYLE_ADVERBS, STYLE_PATH
    rows = load_paraphrases(STYLE_PATH, header="prompt\tstyle")
    counts = Counter(style for _, style in rows)
    assert set(counts) == set(STYLE_ADVERBS) and min(counts.values()) >= 6
    assert len({" ".join(p.lower().split()) for p, _ in rows}) == len(rows)
    offenders = [(prompt, words) for prompt, _ in rows if (words := offending_words(prompt, training_stems))]
    assert not offenders, offenders
    with pytest.raises(MotionError, match="line 1 must be the header 'prompt\\\\tstyle'"):
        load_paraphrases(DATA / "paraphrases.tsv", header="prompt\tstyle")
