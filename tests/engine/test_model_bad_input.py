"""engine.MotionGPT on bad or unusual input: every case ends in a result or in one clear
engine.MotionError naming the value, never another exception or a hang.

Decisions tested here (documented in engine/model.py and engine/lm.py):
- empty / whitespace text: MotionError; text of any language works (byte-level text tokenizer);
- text longer than the prompt limit (max_prompt_tokens, 256): the caption is cut at a token
  boundary with a UserWarning (the motion part of a steered in-between prompt is kept whole);
- seconds <= 0, not finite or > 60 (MAX_SECONDS): MotionError; in-between gaps over 60 s too;
- contexts shorter than one token (1-3 frames) work for describe, predict and in-between;
- NaN / infinite joints: engine.Motion refuses them; a degenerate skeleton (all joints at one
  point, a zero-length bone) is refused by every task (engine.motion.check_skeleton);
- model folders with missing or mismatched files: MotionError naming the file and the mismatch
  (crafted sizes, settings, weights and devices: test_model_loading_faults.py).

A tiny randomly initialised model (tests/engine/tiny_models.py, 64 codes) saved and loaded back;
contexts are real mocap (HumanML3D 012314).
"""
import json
import shutil
import warnings

import numpy as np
import pytest

from engine import Motion, MotionError
from engine.lm import STEERED_INBETWEEN_PROMPT, T2M_PROMPT, new_t5, save_t5
from engine.model import MAX_SECONDS, MotionGPT, frames_of
from tests.engine.tiny_models import CODE_NUM, tiny_motion_tokenizer


LONG_TEXT = ("a person walks forward, turns around and waves with the right hand while smiling; " * 125)[:10_000]


# ----------------------------------------------------------------------------- text

@pytest.mark.parametrize("text", ["", "   ", "\n\t  \n"])
def test_empty_or_whitespace_text_is_refused(model, text):
    with pytest.raises(MotionError, match="text is empty"):
        model.text_to_motion(text, seconds=1, seed=0)
    with pytest.raises(MotionError, match="text 1 is empty"):
        model.text_to_motion_batch(["a person jumps", text], seconds=1, seed=0)


def test_ten_thousand_characters_are_cut_to_the_prompt_limit_with_a_warning(model, clip):
    assert len(LONG_TEXT) == 10_000
    lm = model.lm
    with pytest.warns(UserWarning, match=r"text is \d+ tokens \(10000 characters\) long; only its first \d+ tokens"):
        prompt = lm.fit_prompt(T2M_PROMPT, LONG_TEXT)
    assert prompt.startswith("Generate motion: a person walks forward")
    assert lm.prompt_length(prompt) <= lm.max_prompt_tokens == 256
    assert lm.prompt_length(prompt) >= lm.max_prompt_tokens - 8     # cut at the limit, not far before it
    # the motion part of a steered in-between prompt survives whole; the caption is what gets cut
    motion = lm.vocab.masked_string([1, 2, 3], 5, [4, 5])
    with pytest.warns(UserWarning, match="prompt limit of 256 tokens"):
        steered = lm.fit_prompt(STEERED_INBETWEEN_PROMPT, LONG_TEXT, motion=motion)
    assert steered.endswith(": " + motion) and lm.prompt_length(steered) <= 256
    # a short caption is left alone, without a warning
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert lm.fit_prompt(T2M_PROMPT, "a person jumps") == "Generate motion: a person jumps"
    # the tasks run on the cut caption and give the requested lengths
    with pytest.warns(UserWarning, match="10000 characters"):
        motion = model.text_to_motion(LONG_TEXT, seconds=1, seed=0)
    assert motion.num_frames == 20 and np.isfinite(motion.joints).all()
    with pytest.warns(UserWarning, match="10000 characters"):
        gap = model.inbetween(clip[:40], clip[100:], 20, text=LONG_TEXT, seed=0)
    assert gap.num_frames == 20


@pytest.mark.parametrize("text", ["一个人向前走然后挥手", "Eine Person läuft rückwärts und winkt",
                                  "человек прыгает на месте", "شخص يمشي إلى الأمام", "a person dances 💃🕺"])
def test_non_english_text_works(model, text):
    tokenizer = model.lm.text_tokenizer
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    assert tokenizer.unk_token_id not in ids                       # byte-level: every character is encodable
    assert tokenizer.decode(ids) == text
    motion = model.text_to_motion(text, seconds=1.5, seed=0)
    assert motion.num_frames == 30 and np.isfinite(motion.joints).all()
    gap = model.inbetween(motion[:10], motion[20:], 8, text=text, seed=0)
    assert gap.num_frames == 8


# ----------------------------------------------------------------------------- durations

@pytest.mark.parametrize("seconds, message", [(0, "positive number of seconds, got 0"),
                                              (-1.5, "positive number of seconds, got -1.5"),
                                              (float("nan"), "positive number of seconds, got nan"),
                                              (float("inf"), "positive number of seconds, got inf"),
                                              (60.5, "seconds 60.5 is longer than the limit of 60 seconds"),
                                              (3600, "seconds 3600 is longer than the limit of 60 seconds")])
def test_seconds_out_of_range_are_refused(model, clip, seconds, message):
    with pytest.raises(MotionError, match=message):
        model.text_to_motion("a person walks", seconds=seconds, seed=0)
    with pytest.raises(MotionError, match=message):
        model.predict(clip[:40], seconds=seconds, seed=0)
    with pytest.raises(MotionError, match=r"seconds\[1\]"):
        model.text_to_motion_batch(["a person walks", "a person runs"], seconds=[1.0, seconds], seed=0)


def test_the_limit_itself_is_allowed_and_long_gaps_are_refused(model, clip):
    assert MAX_SECONDS == 60 and frames_of(60) == 1200 and frames_of(0.03) == 1
    with pytest.raises(MotionError, match="seconds 0.01 is shorter than one frame at 20 fps"):
        model.text_to_motion("a person walks", seconds=0.01, seed=0)
    with pytest.raises(MotionError, match="frames 1201 is longer than the limit of 60 seconds"):
        model.inbetween(clip[:40], clip[100:], 1201, seed=0)


# ----------------------------------------------------------------------------- short and broken motions

@pytest.mark.parametrize("frames", [1, 2, 3])
def test_contexts_shorter_than_one_token_work(model, clip, frames):
    short = clip[50:50 + frames]
    caption = model.describe(short)
    assert isinstance(caption, str) and "motion_id" not in caption
    predicted = model.predict(short, seconds=1, seed=0)
    assert predicted.num_frames == frames + 20
    np.testing.assert_array_equal(predicted.joints[:frames], short.joints)
    for gap in (2, 12):
        fill = model.inbetween(short, clip[120:120 + frames], gap, seed=0, include_boundaries=True)
        assert fill.num_frames == gap + 2
        assert np.abs(fill.joints[0] - short.joints[-1]).max() < 1e-4
        assert np.abs(fill.joints[-1] - clip.joints[120]).max() < 1e-4


def test_nan_and_infinite_joints_are_refused(model, clip):
    joints = clip.joints.copy()
    joints[7, 3, 1] = np.nan
    with pytest.raises(MotionError, match="NaN or infinite values \\(first at frame 7\\)"):
        Motion(joints, 20.0)
    with pytest.raises(MotionError, match="NaN or infinite values \\(first at frame 7\\)"):
        model.predict(joints, seconds=1, seed=0)                    # a raw (T, 22, 3) array is checked too
    joints = clip.joints[:30].copy()
    joints[29, 0, 0] = np.inf
    with pytest.raises(MotionError, match="first at frame 29"):
        model.describe(joints)
    with pytest.raises(MotionError, match="first at frame 29"):
        model.inbetween(clip[:10], joints, 8, seed=0)
    with pytest.raises(MotionError, match=r"\(T, 22, 3\)"):
        model.describe(np.zeros((0, 22)))


def test_degenerate_skeletons_are_refused(model, clip):
    """All joints at one point (a rig at object scale 0) or two joints at one place would give NaN
    features and a nonsense caption: every task refuses them (engine.model.as_motion)."""
    zeros = np.zeros((30, 22, 3), dtype=np.float32)
    with pytest.raises(MotionError, match=r"motion: the motion's skeleton is degenerate: all joints at one point "
                                          r"\(within 0 mm of each other at frame 0; a rig at scale 0\?\)"):
        model.describe(zeros)
    with pytest.raises(MotionError, match="before: the motion's skeleton is degenerate"):
        model.inbetween(zeros, clip[100:], 10, seed=0)
    joints = clip.joints[:30].copy()
    joints[:, 4] = joints[:, 1]                                      # left_knee placed on left_hip
    with pytest.raises(MotionError, match="the bone left_hip -> left_knee has zero length at frame 0"):
        model.predict(joints, seconds=1, seed=0)


# ----------------------------------------------------------------------------- model folders

def broken_copy(folder, tmp_path, name):
    target = tmp_path / name
    shutil.copytree(folder, target)
    return target


def edit_json(path, **changes):
    values = json.loads(path.read_text())
    values.update(changes)
    path.write_text(json.dumps(values))


def test_missing_files_are_named(folder, tmp_path):
    cases = [("tokenizer", r"no tokenizer/ inside"),
             ("lm", r"no lm/ inside"),
             ("lm/model.safetensors", r"lm/model.safetensors: missing file"),
             ("lm/tokenizer.json", r"lm/tokenizer.json: missing file"),
             ("lm/config.json", r"lm: not a language-model folder \(no config.json\)"),
             ("tokenizer/model.safetensors", r"tokenizer/model.safetensors: missing file"),
             ("tokenizer/mean.npy", r"mean.npy")]
    for index, (part, message) in enumerate(cases):
        broken = broken_copy(folder, tmp_path, f"case{index}")
        path = broken / part
        shutil.rmtree(path) if path.is_dir() else path.unlink()
        with pytest.raises(MotionError, match=message):
            MotionGPT.from_pretrained(broken, device="cpu")


def test_unreadable_files_are_named(folder, tmp_path):
    truncated = broken_copy(folder, tmp_path, "truncated")
    weights = truncated / "lm" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    with pytest.raises(MotionError, match=r"lm/model.safetensors: cannot read the weights"):
        MotionGPT.from_pretrained(truncated, device="cpu")
    garbage = broken_copy(folder, tmp_path, "garbage")
    (garbage / "config.json").write_text("{not json")
    with pytest.raises(MotionError, match=r"config.json: cannot read JSON"):
        MotionGPT.from_pretrained(garbage, device="cpu")
    other = broken_copy(folder, tmp_path, "other")
    edit_json(other / "config.json", model_type="bert")
    with pytest.raises(MotionError, match="model_type is 'bert'"):
        MotionGPT.from_pretrained(other, device="cpu")
    hot = broken_copy(folder, tmp_path, "hot")
    edit_json(hot / "config.json", temperature="hot")
    with pytest.raises(MotionError, match=r"config.json: temperature must be a number from 0.01 to 10, got 'hot'"):
        MotionGPT.from_pretrained(hot, device="cpu")
    deep = broken_copy(folder, tmp_path, "deep")
    (deep / "lm" / "config.json").write_text("[" * 100_000)
    with pytest.raises(MotionError, match=r"lm/config.json: cannot read JSON: nested deeper than the limit"):
        MotionGPT.from_pretrained(deep, device="cpu")


def test_vocabulary_mismatches_are_named(folder, tmp_path, model):
    # config.json's vocab_size disagrees with the weights
    edited = broken_copy(folder, tmp_path, "edited")
    rows = model.lm.t5.config.vocab_size
    edit_json(edited / "lm" / "config.json", vocab_size=rows + 100)
    with pytest.raises(MotionError, match=rf"shared.weight has shape \({rows}, 32\), but config.json says "
                                          rf"vocab_size {rows + 100}"):
        MotionGPT.from_pretrained(edited, device="cpu")
    # a T5 with fewer embedding rows than the text tokenizer has tokens
    smaller = broken_copy(folder, tmp_path, "smaller")
    save_t5(new_t5(rows - 10, d_model=32, num_layers=1, num_heads=2, d_ff=64, seed=0), smaller / "lm")
    with pytest.raises(MotionError, match=rf"the T5 has {rows - 10} embedding rows, the text tokenizer {rows} tokens"):
        MotionGPT.from_pretrained(smaller, device="cpu")


@pytest.mark.parametrize("code_num, message", [
    (32, r"more motion tokens than code_num 32 \+ 3; the VQ-VAE and the language model do not belong together"),
    (128, r"has no <motion_id_130> token: its motion tokens are for fewer codes than the VQ-VAE's code_num 128")])
def test_codebook_size_mismatch_between_tokenizer_and_lm(folder, tmp_path, shared_data, code_num, message):
    assert CODE_NUM == 64
    broken = broken_copy(folder, tmp_path, f"codes{code_num}")
    shutil.rmtree(broken / "tokenizer")
    tiny_motion_tokenizer(shared_data, code_num=code_num).save_pretrained(broken / "tokenizer")
    with pytest.raises(MotionError, match=message):
        MotionGPT.from_pretrained(broken, device="cpu")
