"""The dataset builder on a few real clips from every source."""
import json
from pathlib import Path

import numpy as np
import pytest

from engine import Motion, MotionError, Normalizer
from engine.formats.bvh import read_bvh
from engine.data import (bandai_captions, trim_glitches, build_dataset, load_split, mirror_caption, mirror_motion,
                         split_of, working_hand)
from engine.motion import JOINT_NAMES

SHARED_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    out = tmp_path_factory.mktemp("dataset")
    build_dataset(out, sources=("bandai1", "bandai2", "cmu"), shared_data=SHARED_DATA, limit=6,
                  log=lambda message: None)
    return out


def test_layout_and_meta(dataset):
    meta = json.loads((dataset / "meta.json").read_text())
    assert meta["sources"] == ["bandai1", "bandai2", "cmu"]
    names = (dataset / "train.txt").read_text().split() + (dataset / "val.txt").read_text().split()
    assert len(names) == meta["train"] + meta["val"] == sum(meta["clips"].values())
    assert len(set(names)) == len(names)
    for split in ("train", "val"):     # by name, whatever order the sources and archives were read in
        listed = (dataset / f"{split}.txt").read_text().split()
        assert listed == sorted(listed)
    for name in names:
        features = np.load(dataset / "features" / f"{name}.npy")
        joints = np.load(dataset / "joints" / f"{name}.npy")
        assert features.dtype == np.float32 and features.shape[1] == 263
        assert joints.shape == (len(features), 22, 3) and np.isfinite(features).all()
        assert (dataset / "texts" / f"{name}.txt").read_text().strip()
    statistics = Normalizer.load(dataset)
    assert np.all(statistics.std > 0)


def test_joints_file_is_what_the_features_decode_to(dataset):
    name = (dataset / "train.txt").read_text().split()[0]
    features = np.load(dataset / "features" / f"{name}.npy")
    np.testing.assert_allclose(Motion.from_features(features).joints,
                               np.load(dataset / "joints" / f"{name}.npy"), atol=1e-6)


def test_split_is_fixed_and_mirrors_follow_their_source(dataset):
    train = set((dataset / "train.txt").read_text().split())
    val = set((dataset / "val.txt").read_text().split())
    for name in train | val:
        source = name[1:] if name.startswith("M") else name
        expected = split_of(source)
        assert (name in val) == (expected == "val"), name
    assert split_of("dataset-1_walk_happy_001") == split_of("dataset-1_walk_happy_001")
    shares = [split_of(f"clip_{i}") == "val" for i in range(2000)]
    assert 0.07 < np.mean(shares) < 0.13


def test_load_split_returns_clips_with_captions(dataset):
    clips = load_split(dataset, "train")
    assert clips and all(len(c.captions) >= 3 and c.features.shape[1] == 263 for c in clips)
    by_name = {c.name: c for c in clips + load_split(dataset, "val")}
    mirrored = [n for n in by_name if n.startswith("M") and n[1:] in by_name]
    assert mirrored
    assert load_split(dataset, "test") == []          # no HDM05 clip in this build: an empty test split
    with pytest.raises(MotionError, match="no such split file"):
        load_split(dataset, "holdout")


def test_mirroring_swaps_sides_of_motion_and_captions():
    joints = np.load(SHARED_DATA / "humanml3d" / "new_joints" / "012314.npy")
    motion = Motion(joints)
    mirrored = mirror_motion(motion)
    left, right = JOINT_NAMES.index("left_wrist"), JOINT_NAMES.index("right_wrist")
    np.testing.assert_allclose(mirrored.joints[:, left, 0], -motion.joints[:, right, 0])
    np.testing.assert_allclose(mirror_motion(mirrored).joints, motion.joints)
    assert working_hand(mirrored) == {"left": "right", "right": "left", "both": "both"}[working_hand(motion)]
    assert mirror_caption("a person raises the left hand, then the right") == \
        "a person raises the right hand, then the left"
    assert mirror_caption("a person walks straight") == "a person walks straight"


def test_both_hands_clips_are_measured_as_both(dataset):
    # The first dataset-2 clips in the archive are "raise-up-both-hands".
    names = [n for n in (dataset / "train.txt").read_text().split() + (dataset / "val.txt").read_text().split()
             if n.startswith("dataset-2_raise-up-both-hands")]
    assert names
    for name in names:
        joints = np.load(dataset / "joints" / f"{name}.npy")
        assert working_hand(Motion(joints)) == "both", name


def test_captions_from_labels():
    captions = bandai_captions("walk", "happy", None)
    assert len(set(captions)) == 3 and all("walk" in c and "happ" in c for c in captions)
    assert all("right hand" in c for c in bandai_captions("bye", "normal", "right"))
    with pytest.raises(MotionError, match="unknown Bandai label"):
        bandai_captions("fly", "normal", None)


def test_unknown_source_is_refused(tmp_path):
    with pytest.raises(MotionError, match="unknown dataset source"):
        build_dataset(tmp_path, sources=("amass",), shared_data=SHARED_DATA)


def test_leading_zero_frames_are_trimmed():
    motion = read_bvh(SHARED_DATA / "cmu" / "09_10.bvh")
    assert np.abs(motion.joints[:4, 0]).max() == 0  # the file starts with four all-zero frames
    trimmed = trim_glitches(motion)
    assert len(trimmed) == len(motion) - 4
    steps = np.linalg.norm(np.diff(trimmed.joints[:, 0], axis=0), axis=-1)
    assert steps.max() < 0.05


def test_bandai_labels_of_clip_swap_sides_for_mirrors():
    from engine.data import bandai_labels_of_clip
    assert bandai_labels_of_clip("dataset-2_wave-left-hand_happy_001") == ("wave-left-hand", "happy")
    assert bandai_labels_of_clip("Mdataset-2_wave-left-hand_happy_001") == ("wave-right-hand", "happy")
    assert bandai_labels_of_clip("Mdataset-1_walk-turn-right_normal_002") == ("walk-turn-left", "normal")
    assert bandai_labels_of_clip("cmu_01_01") is None and bandai_labels_of_clip("dataset-2_oops") is None


def test_rephrased_captions_keep_the_action_the_side_and_the_hand():
    from engine.text import caption_bank
    from engine.data import BANDAI_STYLE, caption_words, label_phrases, rephrase_caption, training_vocabulary
    assert set(caption_bank.CONTENT_PHRASES) == set(label_phrases())
    assert set(caption_bank.STYLE_ADVERBS) == set(caption_bank.STYLE_ADJECTIVES) == set(BANDAI_STYLE)
    rng = np.random.default_rng(0)
    vocabulary = training_vocabulary()
    mirrored = [rephrase_caption("Mdataset-2_raise-up-left-hand_tired_004", ["a person raises the right hand"], rng)
                for _ in range(100)]
    assert not any("left" in c for c in mirrored)
    sided = sum("right" in c for c in mirrored)       # the others leave the side out (SIDELESS)
    assert 50 <= sided <= 90
    waving = [rephrase_caption("dataset-1_bye_normal_001", ["a person waves goodbye with the left hand"], rng)
              for _ in range(200)]
    assert any("with the left hand" in c for c in waving) and not any("right" in c for c in waving)
    assert not any("{hand}" in c for c in mirrored + waving)
    for caption in mirrored + waving:
        assert caption_words(caption) <= vocabulary, caption
    assert rephrase_caption("cmu_01_01", ["a person: walk"], rng) == "a person: walk"


def test_rephrased_captions_of_the_other_sources_keep_their_side():
    from engine.text import caption_bank
    from engine.data import rephrase_caption, without_sides
    rng = np.random.default_rng(1)
    # A mirrored HDM05 left front kick is a right kick: its own (mirrored) captions name the side.
    kicks = [rephrase_caption("Mhdm05_kickLFront1Reps_bd_01", ["a person kicks forward with the right leg"], rng)
             for _ in range(100)]
    assert not any("left" in c for c in kicks)
    assert 50 <= sum(c.endswith("with the right leg") for c in kicks) <= 90      # the others: SIDELESS
    bank_verbs = {without_sides(f"x {v}")[2:] for v in caption_bank.CONTENT_PHRASES["front-kick"]}
    assert all(any(v in c for v in bank_verbs) for c in kicks)
    lying = {rephrase_caption("hdm05_lieDownFloor_bd_01", ["a person lies down on the floor"], rng) for _ in range(50)}
    assert len(lying) > 10 and not any("left" in c or "right" in c for c in lying)
    # The pure CMU climbs are the label "climb"; a mixed playground take keeps its description.
    assert any("climb" in rephrase_caption("cmu_01_02", ["a person: playground - climb"], rng) for _ in range(20))
    mixed = "a person: playground - climb, hang, swing"
    assert {rephrase_caption("cmu_01_03", [mixed], rng) for _ in range(20)} == {mixed}


def test_captions_without_sides_read_naturally():
    from engine.data import without_sides
    assert without_sides("a person raises the left hand") == "a person raises a hand"
    assert without_sides("someone waves both arms happily") == "someone waves the arms happily"
    assert without_sides("a man walks and turns left") == "a man walks and turns"
    assert without_sides("a person walks diagonally forward to the right, sadly") == \
        "a person walks diagonally forward, sadly"
    assert without_sides("a person bows") == "a person bows"


def test_the_pure_cmu_climbs_are_a_label_read_as_their_own_caption():
    from engine.data import action_words, content_label_of_clip, label_readings
    assert content_label_of_clip("cmu_01_02") == content_label_of_clip("Mcmu_01_04") == "climb"
    assert content_label_of_clip("cmu_01_03") == "cmu"        # climb, hang, swing: a mixed take
    assert label_readings()["climb"][0] == "a person: playground - climb"       # its training caption
    assert "climbs" in action_words()
