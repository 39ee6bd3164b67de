"""engine.training lm: a tiny real run on real clips writes a model folder that runs all four tasks,
and --resume continues the run where it stopped.

The dataset folder is the tokenizer trainer's test dataset (HumanML3D 012314, its mirror and
slices, with captions), tokenized by a tiny randomly initialised MotionTokenizer.
"""
import json

import numpy as np
import pytest

from engine import Motion, MotionError
from engine.model import MotionGPT
from engine.training.__main__ import main
from engine.training.lm import INSTRUCT_TASKS, ExampleSampler, LMTraining, TokenClip, learning_rate, train_lm
from tests.engine.test_train_tokenizer import write_dataset
from tests.engine.tiny_models import serve, tiny_motion_tokenizer

TINY = dict(batch=8, warmup=2, d_model=32, layers=1, heads=2, d_ff=64, text_vocab=400, log_every=2,
            val_every=3, val_examples=16, device="cpu")


@pytest.fixture(scope="module")
def dataset(tmp_path_factory, shared_data):
    return write_dataset(tmp_path_factory.mktemp("dataset"), shared_data)


@pytest.fixture(scope="module")
def motion_tokenizer(tmp_path_factory, shared_data):
    return tiny_motion_tokenizer(shared_data, code_num=32).save_pretrained(tmp_path_factory.mktemp("vq"))


def read_log(run):
    return [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]


def test_tiny_run_writes_a_model_that_does_all_four_tasks(dataset, motion_tokenizer, tmp_path, shared_data):
    run = tmp_path / "run"
    config = LMTraining(data=str(dataset), tokenizer=str(motion_tokenizer), out=str(run), steps=6,
                        pretrain_steps=3, **TINY)
    train_lm(config)
    records = read_log(run)
    train_records = [r for r in records if "loss" in r]
    assert [r["step"] for r in train_records] == [2, 4, 6]
    assert [r["stage"] for r in train_records] == [1, 2, 2]
    assert all(np.isfinite(r["loss"]) and r["seconds_per_step"] > 0 for r in train_records)
    val = [r for r in records if r.get("split") == "val"]
    assert [r["step"] for r in val] == [3, 6] and val[-1]["best_val_loss"] == min(r["val_loss"] for r in val)
    cache = json.loads((run / "tokens.json").read_text())
    assert len(cache["train"]) >= 4 and all(len(c["codes"]) <= 49 for c in cache["train"])

    model = MotionGPT.from_pretrained(run / "best", device="cpu")
    assert model.lm.t5.config.d_model == 32 and model.tokenizer.config.code_num == 32
    assert model.config.steered_inbetween is True
    clip = serve(shared_data)
    assert model.text_to_motion("a person serves a tennis ball", seconds=2, seed=0).num_frames == 40
    assert isinstance(model.describe(clip), str)
    assert model.predict(clip[:40], seconds=1, seed=0).num_frames == 60
    gap = model.inbetween(clip[:40], clip[100:], 20, text="a person serves", seed=0)
    assert isinstance(gap, Motion) and gap.num_frames == 20


def test_resume_continues_from_the_checkpoint(dataset, motion_tokenizer, tmp_path):
    run = tmp_path / "run"
    base = dict(data=str(dataset), tokenizer=str(motion_tokenizer), out=str(run), pretrain_steps=2, **TINY)
    train_lm(LMTraining(steps=3, **base))
    code = main(["lm", "--data", str(dataset), "--tokenizer", str(motion_tokenizer), "--out", str(run),
                 "--steps", "6", "--pretrain-steps", "2", "--resume", "--batch", "8", "--warmup", "2",
                 "--d-model", "32", "--layers", "1", "--heads", "2", "--d-ff", "64", "--text-vocab", "400",
                 "--log-every", "2", "--val-every", "3", "--val-examples", "16", "--device", "cpu"])
    assert code == 0
    steps = [r["step"] for r in read_log(run) if "loss" in r]
    assert steps == [2, 3, 4, 6]                   # 2, 3 (end of first run), then 4, 6 after resuming
    with pytest.raises(MotionError, match="model sizes"):
        train_lm(LMTraining(steps=9, resume=True, **{**base, "d_model": 64}))


def test_instruction_examples_use_the_engine_prompts():
    from engine.lm import MotionVocabulary
    vocab = MotionVocabulary(code_num=32, first_id=400, vocab_size=435)
    clips = [TokenClip(np.arange(20) % 32, ["a person jumps"])]
    sampler = ExampleSampler(clips, vocab, LMTraining(augment=0.0))
    rng = np.random.default_rng(0)
    seen = {}
    for _ in range(300):
        task, prompt, target = sampler.sample(INSTRUCT_TASKS, rng)
        seen.setdefault(task, (prompt, target))
    assert set(seen) == set(INSTRUCT_TASKS)
    assert seen["t2m"][0] == "Generate motion: a person jumps"
    assert seen["t2m_length"][0].startswith("Generate motion with ") and " frames: a person jumps" in seen["t2m_length"][0]
    assert seen["m2t"][0].startswith("Generate text: <motion_id_32>") and seen["m2t"][1] == "a person jumps"
    assert seen["predict"][0].startswith("Predict motion: <motion_id_32>")
    assert seen["inbetween"][0].startswith("Complete the masked motion: <motion_id_32>")
    assert "<motion_id_34>" in seen["inbetween"][0]
    assert seen["inbetween_steered"][0].startswith("Complete the masked motion in which a person jumps: ")
    assert learning_rate(LMTraining(steps=100, warmup=10, lr=1.0), 99) == pytest.approx(0.1, abs=1e-3)


def prompt_captions_and_targets(sampler: ExampleSampler, draws: int) -> tuple[set, set]:
    """The captions the sampler's prompts carry and its captioning targets, over ``draws`` examples."""
    from engine.text.side import split_prompt
    rng = np.random.default_rng(0)
    captions, targets = set(), set()
    for _ in range(draws):
        task, prompt, target = sampler.sample(INSTRUCT_TASKS, rng)
        if task in ("t2m", "t2m_length", "inbetween_steered"):
            captions.add(split_prompt(prompt)[1])
        if task == "m2t":
            targets.add(target)
    return captions, targets


def test_captions_are_rephrased_and_marked_for_the_text_side():
    from engine.lm import MotionVocabulary
    from engine.text.side import mark_caption
    vocab = MotionVocabulary(code_num=32, first_id=400, vocab_size=435)
    clips = [TokenClip(np.arange(20) % 32, ["a person jumps"])]
    sampler = ExampleSampler(clips, vocab, LMTraining(augment=1.0), mark=mark_caption)
    captions, targets = prompt_captions_and_targets(sampler, 200)
    assert {"a man jumps", "a woman jumps", "someone jumps"} <= captions
    assert all(c.endswith(" jumps") for c in captions | targets)
    assert not any("\x02" in t for t in targets)         # targets are plain captions


def test_balance_spreads_the_draws_over_content_labels():
    from engine.lm import MotionVocabulary
    from engine.training.lm import clip_weights
    vocab = MotionVocabulary(code_num=32, first_id=400, vocab_size=435)
    names = [f"dataset-2_raise-up-both-hands_happy_{i:03d}" for i in range(8)] + \
        ["dataset-2_bow_sad_001", "Mdataset-2_bow_sad_001", "cmu_01_01", "hdm05_squat1Reps_bd_001",
         "Mhdm05_squat1Reps_bd_001", "cmupred_walking_extra_train3_02"]
    clips = [TokenClip(np.arange(20) % 32, ["a person moves"], name) for name in names]
    assert np.allclose(clip_weights(clips, 0.0), 1 / 14)
    balanced = clip_weights(clips, 1.0)                   # 5 labels: raise, bow, cmu, squat, walk
    assert balanced[:8].sum() == pytest.approx(1 / 5) and balanced[8:10].sum() == pytest.approx(1 / 5)
    assert balanced[10] == pytest.approx(1 / 5)           # CMU's trials: the label "cmu"
    assert balanced[11] == balanced[12] == pytest.approx(1 / 10)   # HDM05 squats, mirror included
    assert balanced[13] == pytest.approx(1 / 5)           # a prediction window labelled walking
    sampler = ExampleSampler(clips, vocab, LMTraining(balance=1.0))
    rng = np.random.default_rng(0)
    drawn = [sampler.clip(rng).name for _ in range(3000)]
    assert sum("_bow_" in name for name in drawn) / 3000 == pytest.approx(1 / 5, abs=0.03)
    with pytest.raises(MotionError, match="balance 1.5"):
        clip_weights(clips, 1.5)


def test_rephrased_prompts_come_from_the_caption_bank_and_targets_keep_the_labels():
    from engine.text import caption_bank
    from engine.lm import MotionVocabulary
    from engine.text.side import mark_caption
    vocab = MotionVocabulary(code_num=32, first_id=400, vocab_size=435)
    labels = ["a person bows sadly", "a sad person bows politely", "someone takes a bow, sadly"]
    clips = [TokenClip(np.arange(20) % 32, labels, "dataset-2_bow_sad_001")]
    sampler = ExampleSampler(clips, vocab, LMTraining(augment=0.0, rephrase=1.0), mark=mark_caption)
    prompts, targets = prompt_captions_and_targets(sampler, 300)
    assert targets <= set(labels)
    assert len(prompts) > 50 and not prompts & set(labels)
    phrases = caption_bank.CONTENT_PHRASES["bow"]
    assert sum(any(phrase in p for phrase in phrases) for p in prompts) > len(prompts) / 3
