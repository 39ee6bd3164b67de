"""engine.text.reading: captions with words the model never saw are read as its nearest label caption,
with the real all-mpnet-base-v2 (put together from its pip parts, checked by sha256) and the real
labels and vocabulary of our training data (none of these prompts is in a paraphrase set)."""
import pytest
import torch

from engine.data import action_words, label_readings, style_words, training_vocabulary
from engine.text.lexicon import is_unknown, unknown_words
from engine.text.reading import Reader
from engine.text.encoder import PretrainedTextEncoder
from engine.text.side import TextSide, TextSideConfig


@pytest.fixture(scope="module")
def known() -> frozenset[str]:
    return frozenset(training_vocabulary())


@pytest.fixture(scope="module")
def reader(known) -> Reader:
    return Reader(known, label_readings(), style_words(), PretrainedTextEncoder.load("cpu", reading=True))


def test_unknown_words_are_content_words_outside_the_vocabulary():
    known = frozenset({"person", "walk", "walks"})
    assert unknown_words("A person walks to the Saloon, ok?", known) == ["saloon"]
    assert not is_unknown("the", known) and not is_unknown("ok", known) and is_unknown("cowboy", known)
    assert not is_unknown("walking", known) and not is_unknown("persons", known)    # by simple stem


def test_captions_the_model_knows_are_read_as_typed(reader, known):
    for caption in ("a person walks forward happily", "a man raises the left hand", "someone bows politely"):
        assert not unknown_words(caption, known)
        assert reader.read(caption) == caption
    assert reader.read("人が歩いている") == "人が歩いている"      # no Latin word: nothing is unknown


def test_unknown_context_words_no_longer_pull_the_motion_off(reader):
    assert reader.read("a cowboy walks into the saloon") == "a person walks forward"
    assert reader.read("the duchess bows before the maharaja") == "a person bows"
    assert reader.read("a sailor runs along the quay") in ("a person runs forward", "a person sprints forward")


def test_a_named_hand_and_a_known_style_word_are_kept(reader):
    assert reader.read("a happy cowboy walks into the saloon") == "a person walks forward happily"
    assert reader.read("a sailor waves goodbye with the left hand from the quay") == \
        "a person waves goodbye with the left hand"


def test_every_label_reads_as_its_own_first_phrase(reader):
    # the readings classify their own first phrase, reworded with an unknown subject, as themselves
    wrong = [label for label, phrases in label_readings().items()
             if reader.label(f"the cowboy {phrases[0].format(hand='')}") != label
             and not label.startswith(("dance", "bye"))]      # dance-short / -long, bye / byebye share phrasings
    assert len(wrong) <= 2, wrong


def test_the_text_side_reads_through_the_lexicon_then_the_readings(known):
    encoder = PretrainedTextEncoder.load("cpu")
    torch.manual_seed(0)
    plain = TextSide(TextSideConfig(d_model=32), encoder).eval()
    reading = TextSide(TextSideConfig(d_model=32, known_words=sorted(known), action_words=action_words(),
                                      readings=label_readings(), styles=style_words()), encoder).eval()
    reading.load_state_dict(plain.state_dict())
    assert plain.normalise("a cowboy perambulates into the saloon") == "a cowboy perambulates into the saloon"
    assert reading.normalise("a cowboy perambulates into the saloon") == "a person walks forward"
    assert reading.normalise("a man perambulates") == "a man walks"       # the lexicon alone is enough
    with torch.inference_mode():
        read = reading.text_embedding(["a cowboy perambulates into the saloon"])
        assert torch.allclose(read, plain.text_embedding(["a person walks forward"]), atol=1e-6)


def test_bad_input_is_read_sensibly(reader):
    for text in ("?!...", "💃🕺", "一个人向前走然后挥手"):      # no Latin word: read as typed
        assert reader.read(text) == text
    # other languages in Latin letters hold unknown words: read as one of the labels
    assert reader.read("Eine Person läuft rückwärts und winkt").startswith("a person ")
    long_text = ("a cowboy walks into the saloon; " * 300)[:10_000]
    with pytest.warns(UserWarning, match="reads only its first 384 tokens"):      # all-mpnet-base-v2's limit
        assert reader.read(long_text).startswith("a person walks")


def test_readings_are_read_as_one_batch_and_remembered(reader):
    captions = ["a cowboy walks into the saloon", "a man walks", "the duchess bows before the maharaja",
                "a cowboy walks into the saloon"]
    read = reader.read_many(captions)
    assert read == [reader.read(caption) for caption in captions]
    assert read[:3] == ["a person walks forward", "a man walks", "a person bows"]
    # remembered: a reading is not computed again when the prompt is embedded and reported
    assert reader.read_before["a cowboy walks into the saloon"] == "a person walks forward"
    assert "a man walks" not in reader.read_before          # known words: read as typed, nothing to remember


def test_label_embeddings_are_kept_beside_the_encoder_with_the_same_bits(tmp_path):
    """The ~8 s of encoding every label's captions is paid once per machine: the result is stored
    under the encoder's folder, named by what it depends on, read back bit for bit, computed again
    when the file is damaged or the captions change, and still given when nothing can be written."""
    import types

    import numpy as np

    from engine.text.reading import label_embeddings
    encoder = PretrainedTextEncoder.load("cpu", reading=True)
    (tmp_path / "model.safetensors").symlink_to(encoder.folder / "model.safetensors")
    here = types.SimpleNamespace(folder=tmp_path, device=encoder.device, sentence_embeddings=encoder.sentence_embeddings)
    prototypes = {"bow": ["a person bows", "a person takes a bow"], "jump": ["a person jumps", "someone hops up"],
                  "walk": ["a person walks forward"]}
    first = label_embeddings(here, prototypes)
    assert first.shape == (3, 768) and torch.allclose(first.norm(dim=-1), torch.ones(3))
    stored, = (tmp_path / "label_embeddings").glob("*.npy")
    cannot_encode = types.SimpleNamespace(folder=tmp_path, device=encoder.device, sentence_embeddings=None)
    assert torch.equal(label_embeddings(cannot_encode, prototypes), first)        # read from the file
    stored.write_bytes(b"not an array")
    assert torch.equal(label_embeddings(here, prototypes), first)                 # damaged: computed again
    assert np.array_equal(np.load(stored), first.numpy())
    label_embeddings(here, {**prototypes, "walk": ["a person strolls"]})
    assert len(list((tmp_path / "label_embeddings").glob("*.npy"))) == 2          # other captions, other file
    blocked = tmp_path / "blocked"
    blocked.mkdir()
    (blocked / "model.safetensors").symlink_to(encoder.folder / "model.safetensors")
    (blocked / "label_embeddings").write_text("a file where the folder would go")
    nowhere = types.SimpleNamespace(folder=blocked, device=encoder.device, sentence_embeddings=encoder.sentence_embeddings)
    assert torch.equal(label_embeddings(nowhere, prototypes), first)
