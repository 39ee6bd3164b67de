"""engine.motion on the HumanML3D reference pair 012314 and on real mocap."""
from pathlib import Path

import numpy as np
import pytest

from engine import FEATURE_GROUPS, Motion, MotionError, Normalizer
from engine.motion import (KINEMATIC_CHAIN, PARENTS, TARGET_BONE_LENGTHS, bone_lengths, fill_missing_joints,
                           quat_between, quat_rotate, uniform_skeleton)

HUMANML3D = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "humanml3d"


@pytest.fixture(scope="module")
def reference():
    joints = np.load(HUMANML3D / "new_joints" / "012314.npy")
    features = np.load(HUMANML3D / "new_joint_vecs" / "012314.npy")
    return joints, features


def test_parents_follow_the_kinematic_chain():
    assert PARENTS[0] == -1
    for chain in KINEMATIC_CHAIN:
        for parent, child in zip(chain[:-1], chain[1:]):
            assert PARENTS[child] == parent
    assert sorted(j for chain in KINEMATIC_CHAIN for j in chain[1:]) == list(range(1, 22))


def test_from_features_reproduces_reference_joints(reference):
    joints, features = reference
    motion = Motion.from_features(features)
    assert motion.joints.shape == (170, 22, 3) and motion.fps == 20
    assert np.abs(motion.joints - joints).max() < 1e-4


def test_target_skeleton_is_the_reference_skeleton(reference):
    joints, _ = reference
    lengths = bone_lengths(joints.astype(np.float64))
    assert np.abs(lengths - TARGET_BONE_LENGTHS).max() < 1e-5


# Per-group tolerance of re-extracted features against the reference, on the frames that the
# reference pair determines (see test docstring). Measured errors are far below these.
GROUP_TOLERANCE = {
    "root_rot_velocity": 1e-4, "root_linear_velocity": 1e-4, "root_y": 1e-5, "ric": 1e-4,
    "rot6d": 1e-4, "local_velocity": 1e-4, "foot_contact": 0.0,
}


def test_features_reextracted_from_reference_joints(reference):
    """Features of new_joints equal new_joint_vecs in every channel group.

    The reference joints were themselves recovered from the reference features, which were
    computed from the original 171-frame clip. Two things therefore cannot match exactly and are
    excluded: row 0 (the reference recovery starts the heading at zero, so its first frame
    carries a 0.1 rad yaw jump the original did not have) and the last 80 rows, whose heading is
    smoothed (Gaussian, sigma 20 frames, radius 80) over a window that reached the original's
    171st frame, which the 170-frame reference joints no longer have.
    """
    joints, features = reference
    extracted = Motion(joints).to_features()
    assert extracted.shape == (169, 263) and extracted.dtype == np.float32
    rows = slice(1, 170 - 81)
    for name, group in FEATURE_GROUPS.items():
        error = np.abs(extracted[rows, group] - features[rows, group]).max()
        assert error <= GROUP_TOLERANCE[name], f"{name}: max error {error}"
    # Over the whole clip (row 0 aside) the smoothing difference stays small.
    whole = np.abs(extracted[1:] - features[1:169]).max(axis=0)
    assert whole[FEATURE_GROUPS["ric"]].max() < 0.01  # metres
    assert whole[FEATURE_GROUPS["foot_contact"]].max() == 0


def test_features_round_trip_on_real_mocap_shape(reference):
    """Features -> joints -> features is stable: a generated motion re-encodes to itself."""
    joints, _ = reference
    recovered = Motion.from_features(Motion(joints).to_features())
    again = Motion.from_features(recovered.to_features())
    # from_features of features gives the uniform skeleton; doing it twice changes nothing
    # but the trailing frame lost to velocities and the smoothing at the new end.
    count = len(again) - 80
    assert np.abs(again.joints[1:count] - recovered.joints[1:count]).max() < 1e-3


def test_uniform_skeleton_keeps_directions_and_sets_lengths(reference):
    joints, _ = reference
    stretched = joints.astype(np.float64) * 1.3
    uniform = uniform_skeleton(stretched)
    assert np.abs(bone_lengths(uniform)[:, 1:] - TARGET_BONE_LENGTHS[1:]).max() < 1e-6
    np.testing.assert_allclose(uniform[:, 0], stretched[:, 0] / 1.3, atol=1e-5)


def test_features_are_invariant_to_world_placement(reference):
    joints, _ = reference
    yaw = quat_between(np.array([0.0, 0.0, 1.0]), np.array([1.0, 0.0, 1.0]))
    moved = quat_rotate(yaw, joints.astype(np.float64)) + np.array([3.0, 0.5, -2.0])
    a = Motion(joints).to_features()
    b = Motion(moved.astype(np.float32)).to_features()
    assert np.abs(a - b).max() < 1e-4


def test_resample_slicing_and_concatenation(reference):
    joints, _ = reference
    motion = Motion(joints, fps=20)
    at_60 = motion.resample(60)
    assert at_60.fps == 60 and len(at_60) == (len(motion) - 1) * 3 + 1
    np.testing.assert_allclose(at_60.joints[::3], motion.joints, atol=1e-6)
    back = at_60.resample(20)
    np.testing.assert_allclose(back.joints, motion.joints, atol=1e-6)
    at_30 = motion.resample(30)
    assert abs(at_30.duration - motion.duration) < 1 / 30
    assert len(motion[10:30]) == 20 and len(motion[5]) == 1
    joined = Motion.concatenate([motion[:50], motion[50:]])
    np.testing.assert_array_equal(joined.joints, motion.joints)
    with pytest.raises(MotionError, match="different fps"):
        Motion.concatenate([motion, at_30])


@pytest.mark.parametrize("joints, message", [
    (np.zeros((0, 22, 3)), "zero frames"),
    (np.zeros((10, 21, 3)), r"shape \(T, 22, 3\)"),
    (np.full((4, 22, 3), np.nan), "NaN"),
])
def test_bad_joints_raise_motion_error(joints, message):
    with pytest.raises(MotionError, match=message):
        Motion(joints)


def test_bad_features_raise_motion_error(reference):
    _, features = reference
    with pytest.raises(MotionError, match=r"\(T, 263\)"):
        Motion.from_features(features[:, :260])
    broken = features.copy()
    broken[7, 3] = np.inf
    with pytest.raises(MotionError, match="frame 7"):
        Motion.from_features(broken)
    with pytest.raises(MotionError, match="at least 2 frames"):
        Motion(np.load(HUMANML3D / "new_joints" / "012314.npy")[:1]).to_features()


def test_normalizers_of_humanml3d_and_motiongpt(reference):
    _, features = reference
    humanml = Normalizer.load(HUMANML3D)
    motiongpt = Normalizer.load(HUMANML3D.parent / "motiongpt_meta")
    np.testing.assert_allclose(humanml.denormalize(humanml.normalize(features)), features, atol=1e-5)
    contact = FEATURE_GROUPS["foot_contact"]
    # MotionGPT's statistics weigh the contact channels 25x (std divided by 25).
    ratio = humanml.std[contact] / motiongpt.std[contact]
    assert np.all((ratio > 24) & (ratio < 26.5))


def test_normalizer_rejects_bad_statistics(tmp_path):
    np.save(tmp_path / "mean.npy", np.zeros(263, np.float32))
    np.save(tmp_path / "std.npy", np.zeros(263, np.float32))
    with pytest.raises(MotionError, match="std has 263 entries <= 0"):
        Normalizer.load(tmp_path)
    with pytest.raises(MotionError, match="no mean.npy"):
        Normalizer.load(tmp_path / "missing")
    np.save(tmp_path / "std.npy", np.ones(100, np.float32))
    with pytest.raises(MotionError, match="263 values"):
        Normalizer.load(tmp_path)


def test_fill_missing_joints_on_the_spine_and_collars(reference):
    joints = reference[0][:10].astype(np.float64)
    sparse = joints.copy()
    sparse[:, [6, 13]] = np.nan                       # spine2, left collar
    filled = fill_missing_joints(sparse)
    np.testing.assert_array_equal(np.delete(filled, [6, 13], axis=1), np.delete(joints, [6, 13], axis=1))
    # spine2 on the straight line spine1 -> spine3 at SMPL's proportion of the two bones.
    fraction = TARGET_BONE_LENGTHS[6] / (TARGET_BONE_LENGTHS[6] + TARGET_BONE_LENGTHS[9])
    np.testing.assert_allclose(filled[:, 6], joints[:, 3] + fraction * (joints[:, 9] - joints[:, 3]), atol=1e-12)
    # Along the source's own spine polyline instead: HumanML3D's bones have SMPL's lengths, so the
    # polyline spine1 -> spine2 -> spine3 gives back the real spine2.
    along = fill_missing_joints(sparse, spine_polyline=lambda below, above: joints[:, [below, 6, above]])
    np.testing.assert_allclose(along[:, 6], joints[:, 6], atol=1e-5)
    fraction = TARGET_BONE_LENGTHS[13] / (TARGET_BONE_LENGTHS[13] + TARGET_BONE_LENGTHS[16])
    np.testing.assert_allclose(filled[:, 13], joints[:, 9] + fraction * (joints[:, 16] - joints[:, 9]), atol=1e-12)
    missing_knee = joints.copy()
    missing_knee[:, 4] = np.nan
    with pytest.raises(MotionError, match="left_knee"):
        fill_missing_joints(missing_knee)
