"""The dataset sources added for everyday actions: HDM05 (ASF/AMC), all 98 CMU 01-09 trials and the
CMU motion-prediction takes, read in place from ../shared/data (a few clips each)."""
import itertools
import json
from pathlib import Path

import numpy as np
import pytest

from engine import Motion, MotionError
from engine.data import (DEFAULT_SHARED_DATA, HDM05_CLASSES, HDM05_MIN_SECONDS, HDM05_TEST_ACTOR, build_dataset,
                         content_label_of_clip, hold_to_length, iter_cmu, iter_cmu_prediction, iter_hdm05,
                         label_readings, mirror_caption, sampling_weights, source_weights, split_of_clip)
from engine.motion import JOINT_NAMES

HDM05 = DEFAULT_SHARED_DATA / "hdm05" / "hdm05-subset.tar.xz"
PREDICTION = DEFAULT_SHARED_DATA / "cmu_prediction" / "cmu-prediction-subset.tar.xz"
WRIST = [JOINT_NAMES.index("left_wrist"), JOINT_NAMES.index("right_wrist")]
FEET = [JOINT_NAMES.index(n) for n in ("left_ankle", "right_ankle", "left_foot", "right_foot")]
HEAD, PELVIS = JOINT_NAMES.index("head"), 0


@pytest.fixture(scope="module")
def hdm05_clips():
    if not HDM05.is_file():
        pytest.skip(f"{HDM05} not here")
    return list(iter_hdm05(DEFAULT_SHARED_DATA, limit=40))


def test_hdm05_clips_are_named_captioned_with_their_side_and_held_to_length(hdm05_clips):
    assert len(hdm05_clips) == 40
    for name, motion, captions in hdm05_clips:
        _, label, actor, take = name.split("_")
        assert label in HDM05_CLASSES and take.isdigit()
        assert len(motion) >= round(HDM05_MIN_SECONDS * motion.fps) and motion.fps == 120
        assert len(captions) == 3 and captions[0].startswith("a person ")
        assert content_label_of_clip(name) == HDM05_CLASSES[label][0]
        assert split_of_clip(name) == ("test" if actor == HDM05_TEST_ACTOR else split_of_clip(name))
    deposit = [c for n, _, c in hdm05_clips if "depositFloorR" in n][0]
    assert "right hand" in deposit[0] and "left hand" in mirror_caption(deposit[0])


def test_hdm05_put_down_reaches_the_floor_and_the_actor_is_upright(hdm05_clips):
    """Measured from the joints: the body is upright at the start and a wrist comes down near the
    floor in a put-down clip (the caption says what a watcher sees)."""
    for name, motion, _ in hdm05_clips:
        joints = motion.resample(20).joints
        floor = joints[:, FEET, 1].min()
        assert 1.3 < joints[0, HEAD, 1] - floor < 1.9, name
        if "depositFloorR" in name:
            assert joints[:, WRIST, 1].min() - floor < 0.3, name


def test_the_held_out_actor_is_in_the_test_split_only():
    assert split_of_clip(f"hdm05_squat1Reps_{HDM05_TEST_ACTOR}_001") == "test"
    assert split_of_clip("hdm05_squat1Reps_bd_001") in ("train", "val")
    # every window of a prediction take falls in the same split
    assert len({split_of_clip(f"cmupred_jumping_train2_{k:02d}") for k in range(12)}) == 1


def test_hold_to_length_holds_the_first_and_last_pose():
    joints = np.random.default_rng(0).normal(size=(10, 22, 3)).astype(np.float32)
    held = hold_to_length(Motion(joints, 10.0), 2.0)
    assert len(held) == 20
    np.testing.assert_array_equal(held.joints[:5], np.repeat(joints[:1], 5, axis=0))
    np.testing.assert_array_equal(held.joints[5:15], joints)
    np.testing.assert_array_equal(held.joints[15:], np.repeat(joints[-1:], 5, axis=0))
    assert hold_to_length(Motion(joints, 10.0), 0.5) is not None and len(hold_to_length(Motion(joints, 10.0), 0.5)) == 10


def test_cmu_reads_the_archive_trials_with_their_whole_description():
    clips = list(iter_cmu(DEFAULT_SHARED_DATA, limit=1))
    assert [name for name, _, _ in clips][0] == "cmu_01_08" and len(clips) == 2
    name, motion, captions = clips[1]
    more = dict(line.split("\t", 1) for line in
                (DEFAULT_SHARED_DATA / "cmu" / "descriptions-01-09-more.tsv").read_text().splitlines())
    assert captions[-1] == more[name[4:] + ".bvh"]
    assert len(motion) > 100 and content_label_of_clip(name) == "cmu"


def test_prediction_takes_are_cut_into_windows_captioned_from_their_label():
    if not PREDICTION.is_file():
        pytest.skip(f"{PREDICTION} not here")
    clips = list(iter_cmu_prediction(DEFAULT_SHARED_DATA, limit=2))
    assert clips
    for name, motion, captions in clips:
        assert name.startswith("cmupred_") and len(motion) <= 10 * motion.fps
        assert content_label_of_clip(name) != "cmupred"
        assert captions[0].startswith("a person ")


def test_sampling_weights_share_draws_over_labels_of_every_source():
    names = ["dataset-2_bow_sad_001"] * 1 + ["dataset-2_walk_normal_001"] * 9 + ["hdm05_squat1Reps_bd_001"]
    weights = sampling_weights(names, 1.0)
    assert weights[0] == pytest.approx(1 / 3) and weights[-1] == pytest.approx(1 / 3)
    assert np.allclose(sampling_weights(names, 0.0), 1 / 11)
    with pytest.raises(MotionError, match="balance"):
        sampling_weights(names, -0.1)


def test_source_weights_give_every_source_the_same_share_and_every_frame_of_a_source_the_same_chance():
    names = ["dataset-2_bow_sad_001", "dataset-2_walk_normal_001", "dataset-1_run_normal_002",
             "cmu_01_04", "Mcmu_01_04", "hdm05_squat1Reps_bd_001"]
    weights = source_weights(names, [100, 100, 200, 2400, 2400, 50])
    np.testing.assert_allclose(weights, [1 / 12, 1 / 12, 1 / 6, 1 / 6, 1 / 6, 1 / 3])
    for lengths, problem in (([100] * 5, "5 lengths"), ([100, 100, 0, 1, 1, 1], "positive length")):
        with pytest.raises(MotionError, match=problem):
            source_weights(names, lengths)


def test_readings_cover_the_new_actions_once():
    readings = label_readings()
    for label in ("squat", "lie-down", "put-down", "reach-up", "hop", "jump", "throw", "sneak"):
        assert readings[label][0].startswith("a person ")
    assert readings["walk"][0] == "a person walks forward"      # Bandai's walk is the one read


def test_a_small_build_of_the_new_sources_has_a_test_split(tmp_path):
    if not HDM05.is_file():
        pytest.skip(f"{HDM05} not here")
    build_dataset(tmp_path, sources=("hdm05",), limit=30, log=lambda message: None,
                  stats_from=Path(__file__).resolve().parents[2] / "assets" / "models" / "default" / "tokenizer")
    meta = json.loads((tmp_path / "meta.json").read_text())
    test = (tmp_path / "test.txt").read_text().split()
    assert meta["test"] == len(test) > 0 and all(f"_{HDM05_TEST_ACTOR}_" in n for n in test)
    assert meta["stats_from"].endswith("tokenizer")
