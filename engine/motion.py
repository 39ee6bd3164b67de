"""Human motion as 22 SMPL joint positions, and HumanML3D's 263-d features both ways.

numpy + scipy only: importable without torch and without bpy.

Conventions everywhere in the engine: joint positions are (T, 22, 3) float32, metres, Y up,
in SMPL's 22-joint order (``JOINT_NAMES``). The model works at 20 fps.

The feature representation follows HumanML3D (Guo et al., CVPR 2022; the public
``motion_representation`` script and ``paramUtil``): the motion is put on a uniform target
skeleton, dropped onto the floor, turned to face +Z at its first frame, and then described per
frame by root velocities, root-relative joint positions, 6D joint rotations, joint velocities and
foot contacts. The layout of the 263 channels is ``FEATURE_GROUPS``.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np
from scipy.ndimage import gaussian_filter1d

from .errors import MotionError

JOINT_NAMES: tuple[str, ...] = (
    "pelvis", "left_hip", "right_hip", "spine1", "left_knee", "right_knee", "spine2",
    "left_ankle", "right_ankle", "spine3", "left_foot", "right_foot", "neck", "left_collar",
    "right_collar", "head", "left_shoulder", "right_shoulder", "left_elbow", "right_elbow",
    "left_wrist", "right_wrist",
)
NUM_JOINTS = 22
MODEL_FPS = 20.0
FEATURE_DIM = 263

# Chains from the root (or spine3 for the arms) outwards; the HumanML3D kinematic tree.
KINEMATIC_CHAIN: tuple[tuple[int, ...], ...] = (
    (0, 2, 5, 8, 11),        # right leg
    (0, 1, 4, 7, 10),        # left leg
    (0, 3, 6, 9, 12, 15),    # spine, neck, head
    (9, 14, 17, 19, 21),     # right arm
    (9, 13, 16, 18, 20),     # left arm
)
PARENTS: tuple[int, ...] = tuple(
    {child: chain[i] for chain in KINEMATIC_CHAIN for i, child in enumerate(chain[1:])}.get(j, -1)
    for j in range(NUM_JOINTS)
)

# Rest direction of each bone (joint minus its parent) in HumanML3D's IK: left is +X, up is +Y,
# forward is +Z.
RAW_OFFSETS = np.array([
    [0, 0, 0], [1, 0, 0], [-1, 0, 0], [0, 1, 0], [0, -1, 0], [0, -1, 0], [0, 1, 0], [0, -1, 0],
    [0, -1, 0], [0, 1, 0], [0, 0, 1], [0, 0, 1], [0, 1, 0], [1, 0, 0], [-1, 0, 0], [0, 0, 1],
    [0, -1, 0], [0, -1, 0], [0, -1, 0], [0, -1, 0], [0, -1, 0], [0, -1, 0],
], dtype=np.float64)

# Bone lengths (metres) of HumanML3D's target skeleton, indexed by child joint (entry 0 unused).
# Every HumanML3D ``new_joints`` clip has exactly these lengths (tests check them on 012314).
TARGET_BONE_LENGTHS = np.array([
    0.0000000, 0.1030740, 0.1098834, 0.1315682, 0.3936232, 0.3901882, 0.1431902, 0.4324330,
    0.4256434, 0.0573647, 0.1433818, 0.1494191, 0.2193600, 0.1374868, 0.1433828, 0.1030392,
    0.1316140, 0.1229844, 0.2568399, 0.2630919, 0.2660118, 0.2698763,
], dtype=np.float64)

FEATURE_GROUPS: dict[str, slice] = {
    "root_rot_velocity": slice(0, 1),      # yaw velocity (quaternion half-angle), rad / frame
    "root_linear_velocity": slice(1, 3),   # ground-plane root velocity (x, z), m / frame, heading frame
    "root_y": slice(3, 4),                 # pelvis height, m
    "ric": slice(4, 67),                   # 21 joints relative to the root, heading frame, m
    "rot6d": slice(67, 193),               # 21 joint rotations, continuous 6D
    "local_velocity": slice(193, 259),     # 22 joint velocities, heading frame, m / frame
    "foot_contact": slice(259, 263),       # left ankle, left foot, right ankle, right foot: 0 or 1
}

FOOT_CONTACT_THRESHOLD = 0.002  # squared displacement per frame (m^2) below which a foot is planted
LEFT_FOOT_JOINTS = (7, 10)
RIGHT_FOOT_JOINTS = (8, 11)
LEG_JOINTS = (5, 8)  # knee and ankle: their bones make the leg length used for scaling


# ----------------------------------------------------------------------------- quaternions
# (..., 4) arrays, (w, x, y, z), Hamilton product, rotating column vectors.

def quat_mul(q: np.ndarray, r: np.ndarray) -> np.ndarray:
    """Hamilton product q * r of (..., 4) quaternions."""
    qw, qx, qy, qz = np.moveaxis(q, -1, 0)
    rw, rx, ry, rz = np.moveaxis(r, -1, 0)
    return np.stack([
        qw * rw - qx * rx - qy * ry - qz * rz,
        qw * rx + qx * rw + qy * rz - qz * ry,
        qw * ry - qx * rz + qy * rw + qz * rx,
        qw * rz + qx * ry - qy * rx + qz * rw,
    ], axis=-1)


def quat_inv(q: np.ndarray) -> np.ndarray:
    """Conjugate (the inverse of a unit quaternion)."""
    return q * np.array([1.0, -1.0, -1.0, -1.0])


def quat_rotate(q: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Rotate (..., 3) vectors v by (..., 4) unit quaternions q (broadcasting)."""
    q = np.broadcast_to(q, v.shape[:-1] + (4,))
    qvec = q[..., 1:]
    uv = np.cross(qvec, v)
    uuv = np.cross(qvec, uv)
    return v + 2.0 * (q[..., :1] * uv + uuv)


def quat_between(v0: np.ndarray, v1: np.ndarray) -> np.ndarray:
    """The shortest-arc unit quaternion that turns direction v0 onto v1, (..., 3) -> (..., 4)."""
    v0, v1 = np.broadcast_arrays(v0, v1)
    axis = np.cross(v0, v1)
    w = np.sqrt((v0 ** 2).sum(-1, keepdims=True) * (v1 ** 2).sum(-1, keepdims=True)) \
        + (v0 * v1).sum(-1, keepdims=True)
    q = np.concatenate([w, axis], axis=-1)
    return q / np.linalg.norm(q, axis=-1, keepdims=True)


def quat_to_matrix(q: np.ndarray) -> np.ndarray:
    """(..., 4) quaternions -> (..., 3, 3) rotation matrices."""
    w, x, y, z = np.moveaxis(q, -1, 0)
    two_s = 2.0 / (q * q).sum(-1)
    m = np.stack([
        1 - two_s * (y * y + z * z), two_s * (x * y - z * w), two_s * (x * z + y * w),
        two_s * (x * y + z * w), 1 - two_s * (x * x + z * z), two_s * (y * z - x * w),
        two_s * (x * z - y * w), two_s * (y * z + x * w), 1 - two_s * (x * x + y * y),
    ], axis=-1)
    return m.reshape(q.shape[:-1] + (3, 3))


def quat_to_cont6d(q: np.ndarray) -> np.ndarray:
    """(..., 4) quaternions -> (..., 6): the first two columns of the rotation matrix."""
    m = quat_to_matrix(q)
    return np.concatenate([m[..., 0], m[..., 1]], axis=-1)


def cont6d_to_matrix(d6: np.ndarray) -> np.ndarray:
    """(..., 6) continuous 6D rotations -> (..., 3, 3) matrices (Gram-Schmidt)."""
    x = d6[..., 0:3] / np.linalg.norm(d6[..., 0:3], axis=-1, keepdims=True)
    z = np.cross(x, d6[..., 3:6])
    z = z / np.linalg.norm(z, axis=-1, keepdims=True)
    y = np.cross(z, x)
    return np.stack([x, y, z], axis=-1)


# ----------------------------------------------------------------------------- skeleton maths

def bone_lengths(joints: np.ndarray) -> np.ndarray:
    """(..., 22, 3) positions -> (..., 22) length of the bone ending at each joint (0 for the root)."""
    parents = np.array(PARENTS[1:])
    lengths = np.zeros(joints.shape[:-1], dtype=np.float64)
    lengths[..., 1:] = np.linalg.norm(joints[..., 1:, :] - joints[..., parents, :], axis=-1)
    return lengths


def _facing_across(joints: np.ndarray, hips: tuple[int, int], shoulders: tuple[int, int]) -> np.ndarray:
    """Left-to-right style 'across' vector from hip and shoulder pairs, normalised, (T, 3)."""
    across = (joints[..., hips[0], :] - joints[..., hips[1], :]) \
        + (joints[..., shoulders[0], :] - joints[..., shoulders[1], :])
    return across / np.linalg.norm(across, axis=-1, keepdims=True)


def _heading_from_across(across: np.ndarray) -> np.ndarray:
    """Yaw quaternions (T, 4) that turn the forward direction (up x across) onto +Z."""
    forward = np.cross(np.array([0.0, 1.0, 0.0]), across)
    forward = forward / np.linalg.norm(forward, axis=-1, keepdims=True)
    return quat_between(forward, np.array([0.0, 0.0, 1.0]))


def inverse_kinematics(joints: np.ndarray, smooth_forward: bool) -> np.ndarray:
    """Per-joint local rotations (T, 22, 4) that bend ``RAW_OFFSETS`` onto the bones of ``joints``.

    As HumanML3D's Skeleton.inverse_kinematics_np: the root rotation is the heading (optionally
    smoothed over time with a Gaussian of sigma 20 frames), each bone's global rotation is the
    shortest arc from its rest direction, and every chain (the arms included) starts from the root
    rotation. The heading's "across" vector here is (left hip - right hip) + (right shoulder -
    left shoulder), exactly as the reference computes it.
    """
    across = _facing_across(joints, hips=(1, 2), shoulders=(17, 16))
    forward = np.cross(np.array([0.0, 1.0, 0.0]), across)
    if smooth_forward:
        forward = gaussian_filter1d(forward, 20, axis=0, mode="nearest")
    forward = forward / np.linalg.norm(forward, axis=-1, keepdims=True)
    root_quat = quat_between(forward, np.array([0.0, 0.0, 1.0]))

    quats = np.zeros(joints.shape[:-1] + (4,))
    quats[:, 0] = root_quat
    for chain in KINEMATIC_CHAIN:
        parent_global = root_quat
        for parent, child in zip(chain[:-1], chain[1:]):
            bone = joints[:, child] - joints[:, parent]
            bone = bone / np.linalg.norm(bone, axis=-1, keepdims=True)
            global_rot = quat_between(RAW_OFFSETS[child], bone)
            quats[:, child] = quat_mul(quat_inv(parent_global), global_rot)
            parent_global = global_rot
    return quats


def uniform_skeleton(joints: np.ndarray) -> np.ndarray:
    """Re-pose ``joints`` (T, 22, 3) on HumanML3D's target skeleton.

    Bone directions are kept, bone lengths become ``TARGET_BONE_LENGTHS``, and the root path is
    scaled by the ratio of target to source leg length (knee + ankle bones of the first frame).
    Equal to the reference's inverse-then-forward kinematics, without its quaternion round trip.
    """
    source_lengths = bone_lengths(joints[0])
    source_leg = source_lengths[list(LEG_JOINTS)].sum()
    target_leg = TARGET_BONE_LENGTHS[list(LEG_JOINTS)].sum()
    out = np.zeros_like(joints, dtype=np.float64)
    out[:, 0] = joints[:, 0] * (target_leg / source_leg)
    for chain in KINEMATIC_CHAIN:
        for parent, child in zip(chain[:-1], chain[1:]):
            bone = joints[:, child] - joints[:, parent]
            bone = bone / np.linalg.norm(bone, axis=-1, keepdims=True)
            out[:, child] = out[:, parent] + bone * TARGET_BONE_LENGTHS[child]
    return out


SPINE_JOINTS = (0, 3, 6, 9, 12)          # pelvis, spine1, spine2, spine3, neck
# The joints a skeleton (a bone map) may lack: ``fill_missing_joints`` places them.
FILLABLE_JOINTS: tuple[str, ...] = ("spine1", "spine2", "spine3", "left_collar", "right_collar")


def point_along(polylines: np.ndarray, fraction: float) -> np.ndarray:
    """The point at ``fraction`` of the arc length of polylines (T, K, 3), K >= 2 -> (T, 3)."""
    segments = np.linalg.norm(np.diff(polylines, axis=1), axis=-1)          # (T, K-1)
    cumulative = np.concatenate([np.zeros((len(polylines), 1)), np.cumsum(segments, axis=1)], axis=1)
    target = fraction * cumulative[:, -1:]                                   # (T, 1)
    index = np.clip((cumulative[:, 1:-1] < target).sum(axis=1), 0, polylines.shape[1] - 2)
    rows = np.arange(len(polylines))
    start, length = cumulative[rows, index], segments[rows, index]
    weight = np.where(length > 0, (target[:, 0] - start) / np.where(length > 0, length, 1.0), 0.0)
    return polylines[rows, index] + weight[:, None] * (polylines[rows, index + 1] - polylines[rows, index])


def fill_missing_joints(joints: np.ndarray,
                        spine_polyline: "Callable[[int, int], np.ndarray] | None" = None) -> np.ndarray:
    """(T, 22, 3) positions with NaN for the joints a skeleton lacks -> a float64 copy with all 22.

    A joint counts as present when it is finite in every frame; only spine1/2/3 and the collars
    (``FILLABLE_JOINTS``) may be missing. A missing spine joint is placed between its nearest
    present spine neighbours at SMPL's proportions (``TARGET_BONE_LENGTHS``): along the source
    skeleton's own spine when ``spine_polyline(below, above)`` is given (SMPL joint indices ->
    (T, K, 3) positions of the source's joints from ``below`` to ``above``, K >= 2), else on the
    straight line between the two. A missing collar goes on the line spine3 -> shoulder at SMPL's
    proportion.
    """
    joints = np.array(joints, dtype=np.float64)
    present = np.isfinite(joints).all(-1).all(0)
    unfillable = [name for name, found in zip(JOINT_NAMES, present) if not found and name not in FILLABLE_JOINTS]
    if unfillable:
        raise MotionError(f"joints {unfillable} are missing; only {list(FILLABLE_JOINTS)} can be filled in")
    heights = np.cumsum([0.0] + [TARGET_BONE_LENGTHS[j] for j in SPINE_JOINTS[1:]])
    for index, joint in enumerate(SPINE_JOINTS):
        if present[joint]:
            continue
        below = max(i for i in range(index) if present[SPINE_JOINTS[i]])
        above = min(i for i in range(index + 1, len(SPINE_JOINTS)) if present[SPINE_JOINTS[i]])
        fraction = (heights[index] - heights[below]) / (heights[above] - heights[below])
        low, high = SPINE_JOINTS[below], SPINE_JOINTS[above]
        polyline = (np.stack([joints[:, low], joints[:, high]], axis=1) if spine_polyline is None
                    else spine_polyline(low, high))
        joints[:, joint] = point_along(polyline, fraction)
    for collar, shoulder in ((13, 16), (14, 17)):
        if not present[collar]:
            fraction = TARGET_BONE_LENGTHS[collar] / (TARGET_BONE_LENGTHS[collar] + TARGET_BONE_LENGTHS[shoulder])
            joints[:, collar] = joints[:, 9] + fraction * (joints[:, shoulder] - joints[:, 9])
    return joints


# ----------------------------------------------------------------------------- Motion

@dataclass(frozen=True, eq=False)
class Motion:
    """A clip of human motion: ``joints`` (T, 22, 3) float32, metres, Y up, SMPL order; ``fps``.

    Slicing by frames (``motion[10:50]``) gives a Motion; ``Motion.concatenate`` joins clips of
    one frame rate; ``resample`` changes the frame rate over the same duration.
    """

    joints: np.ndarray
    fps: float = MODEL_FPS

    def __post_init__(self) -> None:
        joints = np.asarray(self.joints)
        if joints.ndim != 3 or joints.shape[1:] != (NUM_JOINTS, 3):
            raise MotionError(f"joints must have shape (T, 22, 3), got {joints.shape}")
        if joints.shape[0] < 1:
            raise MotionError("motion has zero frames")
        if not np.isfinite(joints).all():
            bad = int(np.argwhere(~np.isfinite(joints))[0][0])
            raise MotionError(f"joints contain NaN or infinite values (first at frame {bad})")
        fps = float(self.fps)
        if not np.isfinite(fps) or fps <= 0:
            raise MotionError(f"fps must be a positive number, got {self.fps!r}")
        object.__setattr__(self, "joints", np.ascontiguousarray(joints, dtype=np.float32))
        object.__setattr__(self, "fps", fps)

    # -- basic container behaviour
    def __len__(self) -> int:
        return self.joints.shape[0]

    @property
    def num_frames(self) -> int:
        return self.joints.shape[0]

    @property
    def duration(self) -> float:
        """Seconds covered by the samples, (T - 1) / fps."""
        return (self.num_frames - 1) / self.fps

    def __getitem__(self, frames: slice | int) -> "Motion":
        if isinstance(frames, (int, np.integer)):
            frames = slice(int(frames), int(frames) + 1 if int(frames) != -1 else None)
        if not isinstance(frames, slice):
            raise MotionError(f"a Motion is sliced by frames (a slice or an int), got {type(frames).__name__}")
        return Motion(self.joints[frames], self.fps)

    def __repr__(self) -> str:
        return f"Motion({self.num_frames} frames, {self.fps:g} fps, {self.duration:.2f} s)"

    @classmethod
    def concatenate(cls, motions: Sequence["Motion"]) -> "Motion":
        """Join clips end to end; all must share one fps."""
        motions = list(motions)
        if not motions:
            raise MotionError("nothing to concatenate: no motions given")
        rates = {m.fps for m in motions}
        if len(rates) != 1:
            raise MotionError(f"cannot concatenate motions of different fps {sorted(rates)}; resample first")
        return cls(np.concatenate([m.joints for m in motions]), motions[0].fps)

    def resample(self, fps: float) -> "Motion":
        """The same motion sampled at ``fps``, over the same time span from the first frame.

        Linear interpolation of joint positions (exact frames where the times coincide);
        the last new frame is the last one at or before the clip's end.
        """
        fps = float(fps)
        if not np.isfinite(fps) or fps <= 0:
            raise MotionError(f"fps must be a positive number, got {fps!r}")
        if abs(fps - self.fps) < 1e-9:
            return self
        count = int(np.floor(self.duration * fps + 1e-6)) + 1
        source_index = np.arange(count) * (self.fps / fps)
        lower = np.clip(np.floor(source_index).astype(int), 0, self.num_frames - 1)
        upper = np.clip(lower + 1, 0, self.num_frames - 1)
        weight = (source_index - lower)[:, None, None]
        joints = self.joints[lower] * (1.0 - weight) + self.joints[upper] * weight
        return Motion(joints.astype(np.float32), fps)

    # -- HumanML3D features
    def to_features(self, feet_threshold: float = FOOT_CONTACT_THRESHOLD) -> np.ndarray:
        """HumanML3D features (T - 1, 263) float32 of this motion (resampled to 20 fps first).

        The steps of HumanML3D's ``process_file``: uniform skeleton, floor at y = 0, first root
        at the XZ origin, first frame facing +Z, foot contacts, heading-smoothed 6D rotations,
        root-relative positions and velocities. One row fewer than frames (velocities).
        """
        motion = self.resample(MODEL_FPS)
        if motion.num_frames < 2:
            raise MotionError("at least 2 frames at 20 fps are needed to compute features "
                              f"(got {motion.num_frames})")
        joints = uniform_skeleton(motion.joints.astype(np.float64))
        joints[..., 1] -= joints[..., 1].min()
        joints -= joints[0, 0] * np.array([1.0, 0.0, 1.0])

        across = _facing_across(joints[:1], hips=(2, 1), shoulders=(17, 16))
        joints = quat_rotate(_heading_from_across(across)[0], joints)
        global_joints = joints

        def contacts(ids: tuple[int, ...]) -> np.ndarray:
            step = ((global_joints[1:, list(ids)] - global_joints[:-1, list(ids)]) ** 2).sum(-1)
            return (step < feet_threshold).astype(np.float64)

        feet_left, feet_right = contacts(LEFT_FOOT_JOINTS), contacts(RIGHT_FOOT_JOINTS)

        quats = inverse_kinematics(joints, smooth_forward=True)
        cont6d = quat_to_cont6d(quats)
        heading = quats[:, 0]
        root_velocity = quat_rotate(heading[1:], joints[1:, 0] - joints[:-1, 0])
        yaw_velocity = quat_mul(heading[1:], quat_inv(heading[:-1]))

        local = joints.copy()
        local[..., 0] -= local[:, :1, 0]
        local[..., 2] -= local[:, :1, 2]
        local = quat_rotate(heading[:, None], local)

        joint_velocity = quat_rotate(heading[:-1, None], global_joints[1:] - global_joints[:-1])
        count = motion.num_frames - 1
        features = np.concatenate([
            np.arcsin(np.clip(yaw_velocity[:, 2:3], -1.0, 1.0)),
            root_velocity[:, [0, 2]],
            local[:-1, 0, 1:2],
            local[:-1, 1:].reshape(count, -1),
            cont6d[:-1, 1:].reshape(count, -1),
            joint_velocity.reshape(count, -1),
            feet_left,
            feet_right,
        ], axis=-1)
        return features.astype(np.float32)

    @classmethod
    def from_features(cls, features: np.ndarray, fps: float = MODEL_FPS) -> "Motion":
        """Joint positions from HumanML3D features (T, 263), as the reference ``recover_from_ric``.

        The yaw velocity is integrated into a heading, the root velocity rotated back into the
        world and summed, and the root-relative positions turned by the heading and placed on
        the root. Returns T frames.
        """
        features = validate_features(features)
        yaw = np.zeros(len(features))
        yaw[1:] = np.cumsum(features[:-1, 0])
        heading = np.zeros((len(features), 4))
        heading[:, 0], heading[:, 2] = np.cos(yaw), np.sin(yaw)

        root = np.zeros((len(features), 3))
        root[1:, [0, 2]] = features[:-1, 1:3]
        root = np.cumsum(quat_rotate(quat_inv(heading), root), axis=0)
        root[:, 1] = features[:, 3]

        local = features[:, FEATURE_GROUPS["ric"]].reshape(len(features), NUM_JOINTS - 1, 3)
        local = quat_rotate(quat_inv(heading)[:, None], local)
        local[..., 0] += root[:, None, 0]
        local[..., 2] += root[:, None, 2]
        return cls(np.concatenate([root[:, None], local], axis=1).astype(np.float32), fps)

    @classmethod
    def from_bvh(cls, path: str | Path, bone_map: dict | str | Path | None = None) -> "Motion":
        """Read a BVH file into a Motion at the file's own fps (see ``engine.formats.bvh.read_bvh``)."""
        from .formats.bvh import read_bvh
        return read_bvh(path, bone_map=bone_map)


def validate_features(features: np.ndarray, name: str = "features") -> np.ndarray:
    """Check a (T, 263) feature array; returns it as float64. Raises MotionError when wrong."""
    features = np.asarray(features)
    if features.ndim != 2 or features.shape[1] != FEATURE_DIM:
        raise MotionError(f"{name} must have shape (T, {FEATURE_DIM}), got {features.shape}")
    if features.shape[0] < 1:
        raise MotionError(f"{name} have zero frames")
    if not np.isfinite(features).all():
        bad = int(np.argwhere(~np.isfinite(features))[0][0])
        raise MotionError(f"{name} contain NaN or infinite values (first at frame {bad})")
    return features.astype(np.float64)


MIN_POSE_EXTENT = 1e-3      # m: a pose whose joints all lie within 1 mm of their mean is a point
MIN_BONE_SHARE = 1e-4       # a bone shorter than this share of its pose's extent has no direction


def check_skeleton(joints: np.ndarray, name: str = "motion") -> None:
    """MotionError when a (T, 22, 3) skeleton is degenerate, which would turn into NaN features:
    all joints at one point in a frame (a rig at scale 0?) or a bone of (near) zero length (two
    joints at one place, e.g. a bone map that gives two joints one bone). Names the frame and bone."""
    joints = np.asarray(joints, dtype=np.float64)
    extent = np.linalg.norm(joints - joints.mean(axis=1, keepdims=True), axis=-1).max(axis=1)   # (T,)
    if (extent < MIN_POSE_EXTENT).any():
        frame = int(np.argmax(extent < MIN_POSE_EXTENT))
        raise MotionError(f"{name}: the motion's skeleton is degenerate: all joints at one point (within "
                          f"{extent[frame] * 1000:.2g} mm of each other at frame {frame}; a rig at scale 0?)")
    short = bone_lengths(joints)[:, 1:] < MIN_BONE_SHARE * extent[:, None]
    if short.any():
        frame, bone = (int(i) for i in np.argwhere(short)[0])
        child = bone + 1
        raise MotionError(f"{name}: the motion's skeleton is degenerate: the bone {JOINT_NAMES[PARENTS[child]]} -> "
                          f"{JOINT_NAMES[child]} has zero length at frame {frame} (two joints at one place; check "
                          "the bone map)")


# ----------------------------------------------------------------------------- normalisation

class Normalizer:
    """Feature mean / std statistics: ``normalize(x) = (x - mean) / std`` and back.

    HumanML3D ships ``Mean.npy`` / ``Std.npy``; MotionGPT ships ``mean.npy`` / ``std.npy`` (the
    evaluator's statistics, whose foot-contact std is 1/25 of the natural one). Both load with
    ``Normalizer.load(folder)``; files are read with ``allow_pickle=False``.
    """

    def __init__(self, mean: np.ndarray, std: np.ndarray, source: str = "statistics"):
        mean = np.asarray(mean, dtype=np.float32).reshape(-1)
        std = np.asarray(std, dtype=np.float32).reshape(-1)
        if mean.shape != (FEATURE_DIM,) or std.shape != (FEATURE_DIM,):
            raise MotionError(f"{source}: mean and std must each have {FEATURE_DIM} values, "
                              f"got {mean.shape} and {std.shape}")
        if not (np.isfinite(mean).all() and np.isfinite(std).all()):
            raise MotionError(f"{source}: mean/std contain NaN or infinite values")
        if (std <= 0).any():
            raise MotionError(f"{source}: std has {(std <= 0).sum()} entries <= 0 "
                              f"(first at channel {int(np.argmax(std <= 0))})")
        self.mean, self.std, self.source = mean, std, source

    @classmethod
    def load(cls, folder: str | Path) -> "Normalizer":
        """Read ``mean.npy``/``std.npy`` (or HumanML3D's ``Mean.npy``/``Std.npy``) from a folder."""
        folder = Path(folder)
        for mean_name, std_name in (("mean.npy", "std.npy"), ("Mean.npy", "Std.npy")):
            if (folder / mean_name).is_file() and (folder / std_name).is_file():
                try:
                    mean = np.load(folder / mean_name, allow_pickle=False)
                    std = np.load(folder / std_name, allow_pickle=False)
                except (ValueError, OSError) as error:
                    raise MotionError(f"{folder}: cannot read statistics: {error}") from None
                return cls(mean, std, source=str(folder))
        raise MotionError(f"{folder}: no mean.npy/std.npy (or Mean.npy/Std.npy) statistics found")

    @classmethod
    def fit(cls, feature_arrays: Iterable[np.ndarray], group_std: bool = True) -> "Normalizer":
        """Statistics of (T, 263) arrays, as HumanML3D computes them.

        With ``group_std`` each channel group's std (``FEATURE_GROUPS``) is replaced by the group's
        mean std, as upstream ``cal_mean_variance`` does.
        """
        data = np.concatenate([validate_features(f) for f in feature_arrays])
        mean, std = data.mean(0), data.std(0)
        if group_std:
            for name, group in FEATURE_GROUPS.items():
                std[group] = std[group].mean()
        std = np.maximum(std, 1e-6)
        return cls(mean, std, source="fitted")

    def save(self, folder: str | Path) -> None:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        np.save(folder / "mean.npy", self.mean)
        np.save(folder / "std.npy", self.std)

    def normalize(self, features: np.ndarray) -> np.ndarray:
        return ((np.asarray(features, dtype=np.float32) - self.mean) / self.std).astype(np.float32)

    def denormalize(self, features: np.ndarray) -> np.ndarray:
        return (np.asarray(features, dtype=np.float32) * self.std + self.mean).astype(np.float32)
