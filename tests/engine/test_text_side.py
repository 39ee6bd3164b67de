"""The pretrained text side (issue 9): the pinned all-MiniLM-L6-v2 and all-mpnet-base-v2 are the ones
we depend on (sha256; the latter put together from its split zip, a bad part refused),
captions travel marked inside prompts, a model folder with a text side saves / loads / generates
with the same results, a tiny training run with --text-side works end to end, and bad inputs get
one clear error or a sensible motion.
"""
import json
import warnings

import numpy as np
import pytest
import torch

from engine import Motion, MotionError
from engine.lm import T2M_LENGTH_PROMPT, T2M_PROMPT, MotionLanguageModel
from engine.model import MotionGPT, MotionGPTConfig
from engine.text.encoder import (READING_PARTS, READING_WEIGHTS_SHA256, WEIGHTS_SHA256, PretrainedTextEncoder,
                                 assemble_reading_model, model_folder, reading_model_folder, weights_sha256)
from engine.text.side import TextSide, TextSideConfig, mark_caption, split_prompt
from engine.training.lm import LMTraining, train_lm
from tests.engine.test_train_lm import TINY
from tests.engine.tiny_models import CODE_NUM, serve, tiny_motiongpt


@pytest.fixture(scope="module")
def encoder():
    return PretrainedTextEncoder.load("cpu")


@pytest.fixture(scope="module")
def tiny_with_text_side(shared_data, encoder):
    base = tiny_motiongpt(shared_data)
    torch.manual_seed(3)
    side = TextSide(TextSideConfig(d_model=base.lm.t5.config.d_model), encoder).eval()
    lm = MotionLanguageModel(base.lm.t5, base.lm.text_tokenizer, CODE_NUM, text_side=side)
    return MotionGPT(base.tokenizer, lm, MotionGPTConfig(name="tiny with text side", steered_inbetween=True))


def test_the_installed_encoder_is_all_minilm_l6_v2_by_sha256():
    assert weights_sha256() == WEIGHTS_SHA256
    config = json.loads((model_folder() / "config.json").read_text())
    assert (config["num_hidden_layers"], config["hidden_size"], config["vocab_size"]) == (6, 384, 30522)


def test_the_reading_encoder_is_all_mpnet_base_v2_by_sha256():
    import tomllib
    from pathlib import Path
    folder = reading_model_folder()         # put together from the installed parts on first use
    assert weights_sha256(folder) == READING_WEIGHTS_SHA256
    config = json.loads((folder / "config.json").read_text())
    assert (config["model_type"], config["num_hidden_layers"], config["hidden_size"]) == ("mpnet", 12, 768)
    pyproject = tomllib.loads((Path(__file__).resolve().parents[2] / "pyproject.toml").read_text())
    assert set(READING_PARTS) <= set(pyproject["tool"]["motiongpt"]["no-deps"])


def test_a_split_zip_whose_weights_are_not_upstreams_is_refused_and_leaves_nothing(tmp_path):
    import io
    import zipfile
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("all-mpnet-base-v2/config.json", "{}")
        archive.writestr("all-mpnet-base-v2/model.safetensors", b"not the weights" * 1000)
    data = buffer.getvalue()
    parts = [tmp_path / "model.zip.001", tmp_path / "model.zip.002"]
    parts[0].write_bytes(data[: len(data) // 2])
    parts[1].write_bytes(data[len(data) // 2:])
    with pytest.raises(MotionError, match="not upstream's"):
        assemble_reading_model(parts, tmp_path / "assembled")
    assert sorted(path.name for path in tmp_path.iterdir()) == ["model.zip.001", "model.zip.002"]
    with pytest.raises(MotionError, match="cannot put the reading encoder together"):
        assemble_reading_model(parts[:1], tmp_path / "assembled")      # a part missing: not a zip


def test_the_encoder_puts_paraphrases_near_each_other(encoder):
    vectors = encoder.sentence_embeddings(["someone jogs", "a person runs forward", "a person waves the left hand"])
    assert vectors.shape == (3, 384)
    assert torch.allclose(vectors.norm(dim=-1), torch.ones(3), atol=1e-5)
    similarity = vectors @ vectors.t()
    assert similarity[0, 1] > similarity[0, 2] + 0.2


def test_long_text_is_cut_at_the_encoder_limit_with_a_warning(encoder):
    with pytest.warns(UserWarning, match=f"first {encoder.max_tokens} tokens"):
        states, mask = encoder.encode(["walk " * 2000])
    assert states.shape[1] == encoder.max_tokens and bool(mask.all())


def test_marked_captions_come_back_out_of_prompts():
    prompt = T2M_PROMPT.format(caption=mark_caption("a man: runs"))
    assert split_prompt(prompt) == ("Generate motion:", "a man: runs")
    assert split_prompt("Predict motion: <motion_id_512><motion_id_3>") == \
        ("Predict motion: <motion_id_512><motion_id_3>", None)


def test_encoder_inputs_put_the_caption_states_before_the_prompt_tokens(tiny_with_text_side):
    lm = tiny_with_text_side.lm
    prompts = [lm.fit_prompt(T2M_PROMPT, "a guy ambles along"), "Predict motion: <motion_id_512><motion_id_3>"]
    inputs = lm.encode_prompts(prompts)
    caption_tokens = len(lm.text_side.caption_states(["a guy ambles along"])[0])
    own = lm.text_tokenizer("Generate motion:")["input_ids"]
    lengths = inputs["attention_mask"].sum(1).tolist()
    assert lengths == [caption_tokens + len(own), len(lm.text_tokenizer(prompts[1])["input_ids"])]
    embed = lm.t5.get_input_embeddings()
    assert torch.allclose(inputs["inputs_embeds"][0, caption_tokens: lengths[0]], embed(torch.tensor(own)))


def test_a_folder_with_a_text_side_round_trips_and_generates_the_same(tiny_with_text_side, tmp_path, shared_data):
    folder = tiny_with_text_side.save_pretrained(tmp_path / "model")
    assert (folder / "lm" / "text_side.json").is_file() and (folder / "lm" / "text_side.safetensors").is_file()
    loaded = MotionGPT.from_pretrained(folder, device="cpu")
    assert loaded.lm.text_side is not None
    first = tiny_with_text_side.text_to_motion("a guy ambles along", seconds=2, seed=4)
    again = loaded.text_to_motion("a guy ambles along", seconds=2, seed=4)
    assert first.num_frames == 40 and np.allclose(first.joints, again.joints, atol=1e-5)
    batch = loaded.text_to_motion_batch(["a guy ambles along", "she curtsies"], seconds=2, seed=4)
    assert np.allclose(batch[0].joints, again.joints, atol=1e-5)
    clip = serve(shared_data)
    assert isinstance(loaded.describe(clip), str)
    assert loaded.inbetween(clip[:40], clip[100:], 9, text="a person serves", seed=0).num_frames == 9


def test_several_samples_keep_the_one_nearest_the_caption(tiny_with_text_side):
    import dataclasses
    from engine.model import SAMPLE_STEP, derived_seed
    model, lm, caption = tiny_with_text_side, tiny_with_text_side.lm, "a guy ambles along"
    prompt = lm.fit_prompt(T2M_LENGTH_PROMPT, caption, frames=40)

    def samples_of(seed: int) -> list[np.ndarray]:      # the first as with one sample, then derived seeds
        seeds = [derived_seed(seed, 0)] + [derived_seed(seed, SAMPLE_STEP + j) for j in (1, 2)]
        return lm.generate_motion([prompt] * 3, [10] * 3, [10] * 3, seeds, model.config.top_k, model.config.temperature)

    for seed in range(10):          # a seed whose nearest sample is not the first one
        samples = samples_of(seed)
        with torch.inference_mode():
            ids = lm.text_tokenizer([lm.vocab.motion_string(codes) for codes in samples], padding=True,
                                    return_tensors="pt")
            similarity = lm.text_side.motion_embedding(lm.t5, ids["input_ids"], ids["attention_mask"]) @ \
                lm.text_side.text_embedding([caption])[0]
        nearest = int(similarity.argmax())
        if nearest:
            break
    assert nearest and lm.closest_motions([caption], [samples]) == [nearest]
    one = model.text_to_motion(caption, seconds=2, seed=seed)
    assert np.allclose(model.tokenizer.decode(samples[0]).joints[:40], one.joints, atol=1e-6)
    model.config = dataclasses.replace(model.config, text_to_motion_samples=3)
    try:
        kept = model.text_to_motion(caption, seconds=2, seed=seed)
        batch = model.text_to_motion_batch([caption, "she curtsies"], seconds=2, seed=seed)
    finally:
        model.config = dataclasses.replace(model.config, text_to_motion_samples=1)
    assert np.allclose(model.tokenizer.decode(samples[nearest]).joints[:40], kept.joints, atol=1e-6)
    assert np.array_equal(batch[0].joints, kept.joints)        # a batch row is still the single request
    with pytest.raises(MotionError, match="text_to_motion_samples must be a positive integer"):
        dataclasses.replace(model.config, text_to_motion_samples=0)


def test_a_request_encodes_its_captions_once_with_the_same_results(tiny_with_text_side):
    """Several samples are embedded twice per request (T5 inputs, then picking the nearest
    sample): the caption goes through the pretrained encoder once, only within the request, and
    the motion strings' embedding by our own encoder loop equals transformers' bit for bit."""
    import dataclasses
    model, lm = tiny_with_text_side, tiny_with_text_side.lm
    encoder, calls = lm.text_side.encoder, []
    real_encode = encoder.encode

    def counting(captions, **options):
        calls.append(list(captions))
        return real_encode(captions, **options)

    model.config = dataclasses.replace(model.config, text_to_motion_samples=3)
    encoder.encode = counting
    try:
        first = model.text_to_motion_batch(["a guy ambles along", "she curtsies"], seconds=2, seed=5)
        again = model.text_to_motion_batch(["a guy ambles along", "she curtsies"], seconds=2, seed=5)
    finally:
        del encoder.encode
        model.config = dataclasses.replace(model.config, text_to_motion_samples=1)
    assert len(calls) == 2 and calls[0] == calls[1] and len(calls[0]) == 2     # once per request
    assert all(np.array_equal(a.joints, b.joints) for a, b in zip(first, again))
    assert lm.text_side.request is None
    rng = np.random.default_rng(0)
    with torch.inference_mode():
        ids = lm.text_tokenizer([lm.vocab.motion_string(rng.integers(0, CODE_NUM, n)) for n in (3, 10, 7)],
                                padding=True, return_tensors="pt")
        theirs = lm.text_side.motion_embedding(lm.t5, ids["input_ids"], ids["attention_mask"])
        ours = lm.text_side.motion_embedding(lm.t5, ids["input_ids"], ids["attention_mask"], lm.decoder().encode)
    assert torch.equal(theirs, ours)


@pytest.mark.parametrize("text", ["¿Puedes caminar hacia adelante?", "🏃‍♀️💨", "...!?", "人が走る"])
def test_unusual_text_gives_a_motion(tiny_with_text_side, text):
    motion = tiny_with_text_side.text_to_motion(text, seconds=1, seed=0)
    assert isinstance(motion, Motion) and motion.num_frames == 20 and np.isfinite(motion.joints).all()


def test_ten_thousand_characters_warn_and_still_generate(tiny_with_text_side):
    with pytest.warns(UserWarning, match="text encoder reads only its first"):
        motion = tiny_with_text_side.text_to_motion("a person walks " * 700, seconds=1, seed=0)
    assert motion.num_frames == 20


def test_empty_text_is_refused(tiny_with_text_side):
    with pytest.raises(MotionError, match="empty"):
        tiny_with_text_side.text_to_motion("  \n ", seconds=1)


def test_broken_text_side_files_are_named(tiny_with_text_side, tmp_path):
    folder = tiny_with_text_side.save_pretrained(tmp_path / "model")
    (folder / "lm" / "text_side.safetensors").unlink()
    with pytest.raises(MotionError, match="text_side.safetensors: missing file"):
        MotionGPT.from_pretrained(folder, device="cpu")
    folder = tiny_with_text_side.save_pretrained(tmp_path / "other")
    config = json.loads((folder / "lm" / "text_side.json").read_text())
    (folder / "lm" / "text_side.json").write_text(json.dumps({**config, "weights_sha256": "0" * 64}))
    with pytest.raises(MotionError, match="text_side.json: trained on text-encoder weights 000000000000"):
        MotionGPT.from_pretrained(folder, device="cpu")
    (folder / "lm" / "text_side.json").write_text(json.dumps({**config, "hidden": 7}))
    with pytest.raises(MotionError, match="text_side.safetensors: does not match"):
        MotionGPT.from_pretrained(folder, device="cpu")


def test_contrastive_loss_rewards_matching_pairs_and_ignores_shared_captions(tiny_with_text_side):
    side = tiny_with_text_side.lm.text_side
    vectors = torch.nn.functional.normalize(torch.randn(6, 8, generator=torch.Generator().manual_seed(0)), dim=-1)
    different = torch.zeros(6, 6, dtype=torch.bool)
    with torch.no_grad():
        matched = side.contrastive_loss(vectors, vectors, different).item()
        shuffled = side.contrastive_loss(vectors, vectors.roll(1, 0), different).item()
        everyone_same = side.contrastive_loss(vectors, vectors.roll(1, 0), torch.ones(6, 6, dtype=torch.bool)).item()
    assert matched + 5 < shuffled
    assert everyone_same == pytest.approx(0.0, abs=1e-6)


def test_a_tiny_text_side_run_trains_the_adapter_and_the_contrastive_loss(tmp_path, shared_data):
    from tests.engine.test_train_lm import read_log
    from tests.engine.test_train_tokenizer import write_dataset
    from tests.engine.tiny_models import tiny_motion_tokenizer
    dataset = write_dataset(tmp_path / "dataset", shared_data)
    vq = tiny_motion_tokenizer(shared_data, code_num=32).save_pretrained(tmp_path / "vq")
    run = tmp_path / "run"
    train_lm(LMTraining(data=str(dataset), tokenizer=str(vq), out=str(run), steps=4, pretrain_steps=2,
                        text_side=True, contrastive_batch=4, **TINY))
    records = [r for r in read_log(run) if "loss" in r]
    # every window of this dataset shares one caption list: no negatives, so InfoNCE is exactly 0
    assert [r["contrastive"] for r in records] == [0.0, 0.0] and all(np.isfinite(r["loss"]) for r in records)
    model = MotionGPT.from_pretrained(run / "best", device="cpu")
    assert model.lm.text_side is not None and model.lm.text_side.config.d_model == 32
    config = model.lm.text_side.config     # the lexicon's words are saved with the model
    assert "walks" in config.action_words and "backward" in config.action_words
    assert {"serves", "person"} <= set(config.known_words)       # the dataset's captions
    assert model.text_to_motion("a guy ambles along", seconds=1, seed=0).num_frames == 20
    with warnings.catch_warnings():
        warnings.simplefilter("error")    # no truncation warnings for ordinary captions
        model.lm.text_side.text_embedding(["a guy ambles along"])
