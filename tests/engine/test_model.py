"""engine.MotionGPT: loading, the four tasks, geometry of predict / in-between, bad input.

A tiny randomly initialised model (real VQ-VAE modules, real transformers T5, our text tokenizer)
saved to a folder and loaded back; contexts are real mocap (HumanML3D 012314, a Bandai walk).
The official layout is the converter's output for a synthetic checkpoint (see test_convert.py).
"""
import numpy as np
import pytest
import torch

import engine
from engine import Motion, MotionError
from engine.model import MotionGPT, resolve_model_folder
from tests.engine.tiny_models import bandai_walk, serve

BOUNDARY_TOLERANCE = 1e-4  # metres


def test_folder_layout_and_lazy_export(folder, model):
    assert {p.name for p in folder.iterdir()} >= {"tokenizer", "lm", "config.json", "MODEL_CARD.md"}
    assert (folder / "lm" / "tokenizer.json").is_file()
    assert engine.MotionGPT is MotionGPT
    assert model.lm.t5.lm_head.weight.data_ptr() != model.lm.t5.shared.weight.data_ptr()


def test_text_to_motion_lengths_seeds_and_batches(model):
    four = model.text_to_motion("a person jumps", seconds=4, seed=0)
    assert isinstance(four, Motion) and four.fps == 20.0 and four.num_frames == 80
    np.testing.assert_array_equal(four.joints, model.text_to_motion("a person jumps", seconds=4, seed=0).joints)
    assert not np.array_equal(four.joints, model.text_to_motion("a person jumps", seconds=4, seed=1).joints)
    assert model.text_to_motion("a person jumps", seconds=0.05, seed=0).num_frames == 1
    assert model.text_to_motion("a person jumps", seconds=1.3, seed=0).num_frames == 26
    free = model.text_to_motion("a person jumps", seed=3)
    assert 8 <= free.num_frames <= 196 and free.num_frames % 4 == 0
    # decoded motion starts at the origin (canonical placement)
    np.testing.assert_allclose(four.joints[0, 0, [0, 2]], 0.0, atol=1e-5)
    texts = ["a person walks forward", "someone waves with the left hand", "a man jumps"]
    batch = model.text_to_motion_batch(texts, seconds=2.5, seed=10)
    for i, text in enumerate(texts):
        np.testing.assert_array_equal(batch[i].joints, model.text_to_motion(text, seconds=2.5, seed=10 + i).joints)
    mixed = model.text_to_motion_batch(texts[:2], seconds=[1.0, None], seed=4)
    assert mixed[0].num_frames == 20 and mixed[1].num_frames % 4 == 0


def test_long_text_to_motion_is_chained_with_predict(model):
    long = model.text_to_motion("a person walks in a circle", seconds=14, seed=2)
    assert long.num_frames == 280
    np.testing.assert_array_equal(long.joints,
                                  model.text_to_motion("a person walks in a circle", seconds=14, seed=2).joints)


def test_describe_returns_plain_text(model, clip, shared_data):
    for motion in (clip, bandai_walk(shared_data), clip[10:11]):
        caption = model.describe(motion)
        assert isinstance(caption, str) and "motion_id" not in caption and "<" not in caption
    assert model.describe(clip) == model.describe(clip)         # greedy


def test_predict_keeps_the_given_frames_and_continues_them(model, clip, shared_data):
    given = clip[:60]
    result = model.predict(given, seconds=3, seed=0)
    assert result.num_frames == 60 + 60 and result.fps == 20.0
    np.testing.assert_array_equal(result.joints[:60], given.joints)
    # the first new frame moves no more than a plausible per-frame step away from the last given one
    seam = np.linalg.norm(result.joints[60] - result.joints[59], axis=-1).max()
    assert seam < 0.05, seam
    # other frame rates are resampled to 20 fps first; one-frame contexts work; long ones chain
    walk = bandai_walk(shared_data)
    continued = model.predict(walk, seconds=0.5, seed=1)
    assert continued.num_frames == walk.resample(20).num_frames + 10
    np.testing.assert_array_equal(continued.joints[:-10], walk.resample(20).joints)
    assert model.predict(clip[5:6], seconds=1, seed=0).num_frames == 21
    assert model.predict(given, seconds=12, seed=0).num_frames == 60 + 240


def test_predict_temperature_samples_continuations_and_nothing_else(model, clip):
    """``predict_temperature`` is the temperature of "Predict motion" steps (Continue, and the
    steps that lengthen a clip past 9.8 s); text-to-motion within 9.8 s keeps ``temperature``."""
    import dataclasses
    given, saved = clip[:60], model.config
    try:
        model.config = dataclasses.replace(saved, temperature=0.5)
        cool_all = model.predict(given, seconds=3, seed=4).joints
        model.config = dataclasses.replace(saved, predict_temperature=0.5)
        np.testing.assert_array_equal(model.predict(given, seconds=3, seed=4).joints, cool_all)
        short = model.text_to_motion("a person walks in a circle", seconds=3, seed=2).joints
        long = model.text_to_motion("a person walks in a circle", seconds=14, seed=2).joints
        model.config = saved
        np.testing.assert_array_equal(short, model.text_to_motion("a person walks in a circle", seconds=3, seed=2).joints)
        assert not np.array_equal(model.predict(given, seconds=3, seed=4).joints, cool_all)
        assert not np.array_equal(long, model.text_to_motion("a person walks in a circle", seconds=14, seed=2).joints)
    finally:
        model.config = saved
    with pytest.raises(MotionError, match="predict_temperature must be null or a number from 0.01 to 10, got 0"):
        dataclasses.replace(saved, predict_temperature=0)


@pytest.mark.parametrize("gap", [1, 3, 4, 5, 40])
@pytest.mark.parametrize("context", ["clips", "key poses"])
def test_inbetween_shape_and_exact_boundaries(model, clip, gap, context):
    before, after = (clip[:50], clip[110:]) if context == "clips" else (clip[49:50], clip[110:111])
    result = model.inbetween(before, after, gap, seed=0)
    assert isinstance(result, Motion) and result.num_frames == gap and result.fps == 20.0
    curve = model.inbetween(before, after, gap, seed=0, include_boundaries=True)
    assert curve.num_frames == gap + 2
    np.testing.assert_array_equal(curve.joints[1:-1], result.joints)
    assert np.abs(curve.joints[0] - before.joints[-1]).max() < BOUNDARY_TOLERANCE
    assert np.abs(curve.joints[-1] - after.joints[0]).max() < BOUNDARY_TOLERANCE
    # continuity: no step across a seam is larger than the whole jump spread evenly plus the
    # largest step inside the fill (the fill never "teleports" at the boundary)
    joined = np.concatenate([before.joints[-1:], result.joints, after.joints[:1]])
    steps = np.linalg.norm(np.diff(joined, axis=0), axis=-1).max(axis=1)
    jump = np.linalg.norm(after.joints[0] - before.joints[-1], axis=-1).max()
    assert steps[0] <= jump + 0.1 and steps[-1] <= jump + 0.1
    if gap >= 40:
        assert max(steps[0], steps[-1]) < 0.1


def test_inbetween_with_text_long_gaps_and_other_frame_rates(model, clip, shared_data):
    steered = model.inbetween(clip[:40], clip[120:], 40, text="a person jumps", seed=0)
    plain = model.inbetween(clip[:40], clip[120:], 40, seed=0)
    assert steered.num_frames == 40 and not np.array_equal(steered.joints, plain.joints)
    np.testing.assert_array_equal(steered.joints,
                                  model.inbetween(clip[:40], clip[120:], 40, text="a person jumps", seed=0).joints)
    long = model.inbetween(clip[:40], clip[120:], 200, seed=0, include_boundaries=True)   # 10 s
    assert long.num_frames == 202
    assert np.abs(long.joints[0] - clip.joints[39]).max() < BOUNDARY_TOLERANCE
    assert np.abs(long.joints[-1] - clip.joints[120]).max() < BOUNDARY_TOLERANCE
    walk = bandai_walk(shared_data)                                     # 30 fps BVH
    gap = model.inbetween(walk[:30], walk[-30:], 12, seed=0, include_boundaries=True)
    assert gap.num_frames == 14
    assert np.abs(gap.joints[-1] - walk[-30:].resample(20).joints[0]).max() < BOUNDARY_TOLERANCE


def test_bad_inputs_raise_motion_error(model, clip):
    with pytest.raises(MotionError, match="empty"):
        model.text_to_motion("  ")
    with pytest.raises(MotionError, match="-2"):
        model.text_to_motion("a person walks", seconds=-2)
    with pytest.raises(MotionError, match="seconds"):
        model.text_to_motion("a person walks", seconds="4")
    with pytest.raises(MotionError, match="seed"):
        model.text_to_motion("a person walks", seed=-1)
    with pytest.raises(MotionError, match="list"):
        model.text_to_motion_batch("a person walks")
    with pytest.raises(MotionError, match="motion: expected an engine.Motion, got list"):
        model.describe([[0, 0, 0]])
    with pytest.raises(MotionError, match=r"\(T, 22, 3\)"):
        model.predict(np.zeros((10, 3)), seconds=1)
    with pytest.raises(MotionError, match="seconds"):
        model.predict(clip, seconds=0)
    with pytest.raises(MotionError, match="frames .* got 0"):
        model.inbetween(clip[:10], clip[20:], 0)
    with pytest.raises(MotionError, match="after: expected an engine.Motion, got str"):
        model.inbetween(clip[:10], "clip.bvh", 5)
    with pytest.raises(MotionError, match="text"):
        model.inbetween(clip[:10], clip[20:], 5, text="")


def test_sources_that_are_not_models(tmp_path, monkeypatch):
    import engine.model as model_module
    monkeypatch.setattr(model_module, "DEFAULT_MODEL", tmp_path / "assets" / "default")
    with pytest.raises(MotionError, match="the bundled model is not built yet"):
        MotionGPT.from_pretrained("default")
    with pytest.raises(MotionError, match="not a MotionGPT model folder"):
        MotionGPT.from_pretrained(tmp_path)
    with pytest.raises(MotionError, match="no such model folder"):
        MotionGPT.from_pretrained(tmp_path / "missing" / "folder")
    # a hub repo id with HF_HUB_OFFLINE and an empty cache fails clearly, without network
    import huggingface_hub.constants as hub_constants
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(hub_constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(hub_constants, "HF_HUB_CACHE", str(tmp_path / "hub-cache"))
    with pytest.raises(MotionError, match="someone/motiongpt-model.*HF_HUB_OFFLINE"):
        resolve_model_folder("someone/motiongpt-model")


def test_converted_official_layout_loads_and_runs_every_task(tmp_path_factory, shared_data):
    from engine.convert import convert_motiongpt
    from tests.engine.test_convert import flan_t5_layout_tokenizer, synthetic_state_dict

    work = tmp_path_factory.mktemp("official")
    torch.save({"state_dict": synthetic_state_dict(seed=1)}, work / "motiongpt_s3_h3d.tar")
    flan_t5_layout_tokenizer(shared_data).save_pretrained(work / "flan")
    convert_motiongpt(work / "motiongpt_s3_h3d.tar", shared_data / "motiongpt_meta", work / "model",
                      text_tokenizer=work / "flan")
    assert (work / "model" / "config.json").is_file()
    official = MotionGPT.from_pretrained(work / "model", device="cpu")
    assert official.config.name == "MotionGPT (official, converted)" and official.config.steered_inbetween is False
    assert official.lm.vocab.first_id == 32100 and official.lm.vocab.start_id == 32612
    assert official.lm.vocab.mask_id == 32614
    clip = serve(shared_data)
    motion = official.text_to_motion("a person walks forward", seconds=2, seed=0)
    assert motion.num_frames == 40
    assert "motion_id" not in official.describe(clip[:40])
    assert official.predict(clip[:40], seconds=1, seed=0).num_frames == 60
    gap = official.inbetween(clip[:40], clip[100:], 12, seed=0, include_boundaries=True)
    assert gap.num_frames == 14 and np.abs(gap.joints[0] - clip.joints[39]).max() < BOUNDARY_TOLERANCE


def test_text_to_motion_batch_with_a_seed_per_row(model):
    """A list of seeds: row i equals text_to_motion with seeds[i] (the timeline batches rows 0 and 2)."""
    rows = model.text_to_motion_batch(["a person walks", "a person bows"], [1.0, 1.5], seed=[5, 2])
    np.testing.assert_array_equal(rows[0].joints, model.text_to_motion("a person walks", 1.0, seed=5).joints)
    np.testing.assert_array_equal(rows[1].joints, model.text_to_motion("a person bows", 1.5, seed=2).joints)
    with pytest.raises(MotionError, match="seed: 1 seeds for 2 texts"):
        model.text_to_motion_batch(["a", "b"], None, seed=[1])
    with pytest.raises(MotionError, match=r"seed\[1\]"):
        model.text_to_motion_batch(["a", "b"], None, seed=[1, -1])


def test_inbetween_many_fills_each_gap_in_one_batch(model, clip):
    """inbetween_many: exactly `frames` new frames per gap, each generated gap placed like inbetween
    (the curve with its boundaries starts at before[-1] and ends at after[0]); short gaps interpolated."""
    before, after = clip[:40], clip[60:100]
    gaps = model.inbetween_many([(before, after, 20), (before, after, 2), (before[:1], after[:1], 12)], seeds=[0, 1, 2])
    assert [g.num_frames for g in gaps] == [20, 2, 12]
    for gap, (b, a) in zip(gaps, [(before, after), (before, after), (before[:1], after[:1])]):
        assert np.isfinite(gap.joints).all()
        step_in = np.linalg.norm(gap.joints[0] - b.joints[-1], axis=-1).max()
        step_out = np.linalg.norm(a.joints[0] - gap.joints[-1], axis=-1).max()
        assert step_in < 0.5 and step_out < 0.5
    with pytest.raises(MotionError, match="gap 0: frames must be a positive integer"):
        model.inbetween_many([(before, after, 0)])
    with pytest.raises(MotionError, match="seeds: 1 seeds for 2 gaps"):
        model.inbetween_many([(before, after, 8), (before, after, 8)], seeds=[1])
