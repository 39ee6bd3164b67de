"""The geometry of retargeting, in pure numpy: SMPL joint positions <-> armature bone rotations.

No bpy here; ``retarget.py`` reads the rig into a ``RigSkeleton`` and writes the result as keys.

Axes, decided once: engine coordinates are Y up, a character facing +Z, its left on +X.
Blender is Z up and a character faces -Y (the "front" view looks at its face), its left on +X.
So a point maps as ``blender = (x, -z, y)`` (a +90 degree turn about X, the same mapping as
Blender's glTF importer) and ``engine = (X, Z, -Y)``.

Rig space (``RigSpace``, built by ``rig_space``): the one conversion, used both ways, between an
armature's own space (any up axis, object rotation, parents, non-uniform scale, rig units) and
engine metres: world +Z is up, the engine origin sits at the object's origin, facing the rig's
rest facing turned about the vertical only.

Conventions: quaternions are (w, x, y, z) arrays (``engine.motion`` helpers); "armature space" is
the armature object's local space; a joint's "delta" is the armature-space rotation that takes
the rig's rest pose of that joint's bone to its posed orientation.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.spatial.transform import Rotation, Slerp

from engine.motion import (LEG_JOINTS, NUM_JOINTS, PARENTS, TARGET_BONE_LENGTHS, quat_between, quat_inv, quat_mul,
                           quat_rotate)

ENGINE_TO_BLENDER = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]])

# Joints whose bone aims at a later joint, with fall-backs when the rig lacks that joint
# (spine1/2/3 and the collars may be missing from a bone map).
AIM_CANDIDATES: dict[int, tuple[int, ...]] = {
    0: (3, 6, 9, 12), 3: (6, 9, 12), 6: (9, 12), 9: (12,), 12: (15,),
    1: (4,), 2: (5,), 4: (7,), 5: (8,), 7: (10,), 8: (11,),
    13: (16,), 14: (17,), 16: (18,), 17: (19,), 18: (20,), 19: (21,),
}
LEAF_JOINTS = (10, 11, 15, 20, 21)  # head, wrists, toes: no child joint, they follow their parent
LEGS = ((1, 4, 7, 10), (2, 5, 8, 11))          # hip, knee, ankle, toe; left then right
CONTACT_SPEED = 0.2                            # m/s: a foot joint slower than this is planted ...
CONTACT_HEIGHT = 0.1                           # m: ... when also this close to the clip's lowest foot joint
CONTACT_BLEND_SECONDS = 0.2                    # how long a foot lock fades in and out
_MIN_TWIST_SINE = np.sin(np.radians(15.0))     # below this bend, twist references fade out
SMPL_LEG = float(sum(TARGET_BONE_LENGTHS[j] for j in LEG_JOINTS))   # m: the engine skeleton's thigh + shin
HUMAN_LEG_RANGE = (0.45, 1.3)                  # m: thigh + shin of a rig taken at face value
GROUND_TOLERANCE = 0.0075                      # m: planted feet this close to the ground are left as they are
BELOW_ORIGIN = 0.5                             # legs: a rest floor this far under the origin is no floor
UNIT_GUESSES = (1.0, 0.01, 0.001, 0.0254, 0.1)  # metres per rig unit tried in turn: m, cm, mm, inch, dm
SAME_POINT = 1e-6                              # of the rig's extent: two rest joints closer than this are one point


def engine_to_blender(points: np.ndarray) -> np.ndarray:
    """(..., 3) engine points (Y up, facing +Z) -> Blender axes (Z up, facing -Y)."""
    return np.asarray(points, dtype=np.float64) @ ENGINE_TO_BLENDER.T


def blender_to_engine(points: np.ndarray) -> np.ndarray:
    """(..., 3) Blender points -> engine axes; the exact inverse of ``engine_to_blender``."""
    return np.asarray(points, dtype=np.float64) @ ENGINE_TO_BLENDER


def _normalised(vectors: np.ndarray) -> np.ndarray:
    return vectors / np.maximum(np.linalg.norm(vectors, axis=-1, keepdims=True), 1e-12)


def quat_from_matrix(matrices: np.ndarray) -> np.ndarray:
    """(..., 3, 3) rotation matrices -> (..., 4) (w, x, y, z) quaternions."""
    flat = np.asarray(matrices, dtype=np.float64).reshape(-1, 3, 3)
    quats = Rotation.from_matrix(flat).as_quat(scalar_first=True)
    return quats.reshape(np.shape(matrices)[:-2] + (4,))


def _safe_between(v0: np.ndarray, v1: np.ndarray) -> np.ndarray:
    """quat_between, with a half turn about a perpendicular axis when v0 and v1 are opposite."""
    v0, v1 = np.broadcast_arrays(v0, v1)
    with np.errstate(invalid="ignore", divide="ignore"):
        quats = quat_between(v0, v1)
    degenerate = ~((np.linalg.norm(v0, axis=-1) > 1e-12) & (np.linalg.norm(v1, axis=-1) > 1e-12))
    quats[degenerate] = [1.0, 0.0, 0.0, 0.0]     # no direction to turn from or to: no turn
    opposite = ~np.isfinite(quats).all(-1)
    if opposite.any():
        axis = np.cross(v0[opposite], [1.0, 0.0, 0.0])
        axis = np.where(np.linalg.norm(axis, axis=-1, keepdims=True) < 1e-6,
                        np.cross(v0[opposite], [0.0, 1.0, 0.0]), axis)
        quats[opposite] = np.concatenate([np.zeros(axis.shape[:-1] + (1,)), _normalised(axis)], -1)
    return quats


def _twist(axis: np.ndarray, angle: np.ndarray) -> np.ndarray:
    """(T, 4) rotations by ``angle`` (T,) radians about unit ``axis`` (T, 3)."""
    half = 0.5 * angle[..., None]
    return np.concatenate([np.cos(half), np.sin(half) * axis], axis=-1)


# ----------------------------------------------------------------------------- the rig

@dataclass(frozen=True)
class RigSkeleton:
    """An armature's rest pose as the solver sees it (armature space, the rig's units).

    bone_names (B,), bone_parents (B,) parent index or -1, bone_rest (B, 4, 4) the bones'
    ``matrix_local``; joint_bones (22,) the bone index playing each SMPL joint, -1 if none.
    Bones are listed parents before children.
    """

    bone_names: tuple[str, ...]
    bone_parents: np.ndarray
    bone_rest: np.ndarray
    joint_bones: np.ndarray
    bone_tails: np.ndarray | None = None      # (B, 3) rest tails; None: heads only

    def foot_points(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The rest heads and tails of each leg's ankle bone and every bone below it (toe, heel):
        (points (N, 3), joint (N,) the ankle or toe joint each rides on, side (N,) 0 left 1 right)."""
        children: dict[int, list[int]] = {}
        for bone, parent in enumerate(self.bone_parents):
            children.setdefault(int(parent), []).append(bone)
        points, joints, sides = [], [], []
        for side, (_, _, ankle, toe) in enumerate(LEGS):
            toe_bone = int(self.joint_bones[toe])
            stack = [(int(self.joint_bones[ankle]), ankle)] if self.joint_bones[ankle] >= 0 else []
            while stack:
                bone, joint = stack.pop()
                joint = toe if bone == toe_bone else joint
                ends = [self.bone_rest[bone, :3, 3]] + ([self.bone_tails[bone]] if self.bone_tails is not None else [])
                points += ends
                joints += [joint] * len(ends)
                sides += [side] * len(ends)
                stack += [(child, joint) for child in children.get(bone, [])]
        return np.array(points, dtype=np.float64).reshape(-1, 3), np.array(joints, dtype=int), np.array(sides, dtype=int)

    @property
    def rest_joints(self) -> np.ndarray:
        """(22, 3) rest positions (bone heads) of the mapped joints, NaN for unmapped ones."""
        joints = np.full((NUM_JOINTS, 3), np.nan)
        mapped = self.joint_bones >= 0
        joints[mapped] = self.bone_rest[self.joint_bones[mapped], :3, 3]
        return joints

    @property
    def mapped(self) -> np.ndarray:
        """(22,) bool: which SMPL joints the rig has."""
        return self.joint_bones >= 0

    def leg_length(self) -> float:
        """Thigh + shin length (knee and ankle bones, as ``engine.motion.LEG_JOINTS``), rig units."""
        return float(leg_length(self.rest_joints[None])[0])

    def forward(self) -> np.ndarray:
        """(3,) unit direction the rig faces in its rest pose (left x up; -Y for a usual rig)."""
        rest = self.rest_joints
        across = rest[1] - rest[2]
        up = rest[aim_joint(0, self.mapped, rest)] - rest[0]
        return _normalised(np.cross(across, up))

    def driven_bones(self) -> np.ndarray:
        """Indices of the bones that get keys: mapped bones and every ancestor of one, sorted."""
        driven = set()
        for bone in self.joint_bones[self.joint_bones >= 0]:
            while bone >= 0 and bone not in driven:
                driven.add(int(bone))
                bone = int(self.bone_parents[bone])
        return np.array(sorted(driven), dtype=int)


def leg_length(joints: np.ndarray) -> np.ndarray:
    """(..., 22, 3) -> (...,) length of the right thigh + shin (``LEG_JOINTS``), same units."""
    knee, ankle = LEG_JOINTS
    return (np.linalg.norm(joints[..., knee, :] - joints[..., PARENTS[knee], :], axis=-1)
            + np.linalg.norm(joints[..., ankle, :] - joints[..., PARENTS[ankle], :], axis=-1))


def aim_joint(joint: int, mapped: np.ndarray, rest_joints: np.ndarray | None = None) -> int:
    """The mapped joint the bone of ``joint`` points at, or -1 for a leaf. With ``rest_joints``
    (22, 3), a candidate at the same rest position as ``joint`` (two mapped bones sharing a head,
    e.g. Rigify's hips and chest controls) is passed over: it gives no direction."""
    for candidate in AIM_CANDIDATES.get(joint, ()):
        if not mapped[candidate]:
            continue
        if rest_joints is not None and not (
                np.linalg.norm(rest_joints[candidate] - rest_joints[joint]) > SAME_POINT * _spread(rest_joints)):
            continue
        return candidate
    return -1


def _spread(rest_joints: np.ndarray) -> float:
    """The largest extent of the mapped rest joints (NaN rows ignored), at least 1e-12."""
    finite = rest_joints[np.isfinite(rest_joints).all(-1)]
    return max(float(np.ptp(finite, axis=0).max()), 1e-12) if len(finite) else 1e-12


def mapped_parent(joint: int, mapped: np.ndarray) -> int:
    """The nearest mapped SMPL ancestor of ``joint`` (-1 for the pelvis)."""
    parent = PARENTS[joint]
    while parent >= 0 and not mapped[parent]:
        parent = PARENTS[parent]
    return parent


# ----------------------------------------------------------------------------- rig space <-> engine metres

@dataclass(frozen=True)
class RigSpace:
    """The one conversion between a rig's armature space and engine coordinates (metres, Y up).

    matrix (4, 4) armature space -> world (the object's ``matrix_world``, parents, rotation and
    any non-uniform scale included); metres_per_unit (metres per world unit: the scene's unit
    scale times the rig's own unit, see ``guess_metres_per_unit``); origin (3,) the world point
    engine (0, 0, 0) sits on (the object's origin); heading (3, 3) the world rotation about the
    vertical that turns Blender's standard character frame (facing -Y, Z up) into the rig's;
    ground the world height the rig's feet stand on. World up is always +Z, whatever the
    armature data's up axis or the object's tilt.
    """

    matrix: np.ndarray
    metres_per_unit: float = 1.0
    origin: np.ndarray = field(default_factory=lambda: np.zeros(3))
    heading: np.ndarray = field(default_factory=lambda: np.eye(3))
    ground: float = 0.0

    def to_world(self, points: np.ndarray) -> np.ndarray:
        """(..., 3) armature space -> world."""
        return np.asarray(points, dtype=np.float64) @ self.matrix[:3, :3].T + self.matrix[:3, 3]

    def from_world(self, points: np.ndarray) -> np.ndarray:
        """(..., 3) world -> armature space (the exact inverse of ``to_world``)."""
        return (np.asarray(points, dtype=np.float64) - self.matrix[:3, 3]) @ np.linalg.inv(self.matrix[:3, :3]).T

    def to_engine(self, points: np.ndarray) -> np.ndarray:
        """(..., 3) armature-space points -> engine coordinates in metres."""
        local = (self.to_world(points) - self.origin) @ self.heading
        return blender_to_engine(local) * self.metres_per_unit

    def from_engine(self, points: np.ndarray) -> np.ndarray:
        """(..., 3) engine coordinates in metres -> armature space; the inverse of ``to_engine``."""
        local = engine_to_blender(points) / self.metres_per_unit
        return self.from_world(local @ self.heading.T + self.origin)

    @property
    def ground_height(self) -> float:
        """The rig's ground as an engine height (metres above the engine origin)."""
        return float((self.ground - self.origin[2]) * self.metres_per_unit)


def guess_metres_per_unit(leg_world: float, unit_scale: float = 1.0) -> float:
    """Metres per world unit for a rig whose thigh + shin measure ``leg_world`` world units in a
    scene of unit scale ``unit_scale``: the first of metres, centimetres, millimetres, inches,
    decimetres that makes a human leg (``HUMAN_LEG_RANGE``), else the engine skeleton's leg
    (a BVH in odd units such as CMU's, or a child or giant: scaled to an adult)."""
    for unit in UNIT_GUESSES:
        if HUMAN_LEG_RANGE[0] <= leg_world * unit_scale * unit <= HUMAN_LEG_RANGE[1]:
            return unit_scale * unit
    return SMPL_LEG / leg_world


def heading_matrix(matrix: np.ndarray, forward: np.ndarray) -> np.ndarray:
    """(3, 3) rotation about world Z taking the standard facing (-Y) to the rig's facing: its rest
    ``forward`` (armature space) snapped to the nearest armature axis, into world, made level.
    A rig facing straight up or down in the world gets the standard facing."""
    axis = int(np.argmax(np.abs(forward)))
    snapped = np.zeros(3)
    snapped[axis] = np.sign(forward[axis]) or 1.0
    facing = np.asarray(matrix, dtype=np.float64)[:3, :3] @ snapped
    facing[2] = 0.0
    if np.linalg.norm(facing) < 1e-6:
        facing = np.array([0.0, -1.0, 0.0])
    facing /= np.linalg.norm(facing)
    up = np.array([0.0, 0.0, 1.0])
    return np.stack([np.cross(-facing, up), -facing, up], axis=1)


def rig_space(matrix: np.ndarray, rig: "RigSkeleton", unit_scale: float = 1.0) -> RigSpace:
    """The ``RigSpace`` of ``rig`` under the object matrix ``matrix`` (armature -> world).

    Ground: the lowest rest foot point (``RigSkeleton.foot_points``) in the world when the rest
    pose stands on it (the pelvis over half a leg above it) less than ``BELOW_ORIGIN`` legs under
    the object's origin; else the origin's height (BVH imports: the hips at the origin in the
    rest pose and the clip's floor at the origin, or a rest pose with the legs spread sideways)."""
    matrix = np.asarray(matrix, dtype=np.float64)
    space = RigSpace(matrix)
    leg = float(leg_length(space.to_world(rig.rest_joints)[None])[0])
    points, _, _ = rig.foot_points()
    floor = float(space.to_world(points)[:, 2].min()) if len(points) else matrix[2, 3]
    pelvis = float(space.to_world(rig.rest_joints[0])[2])
    stands = pelvis - floor > 0.5 * leg and floor >= matrix[2, 3] - BELOW_ORIGIN * leg
    ground = floor if stands else float(matrix[2, 3])
    return RigSpace(matrix, guess_metres_per_unit(leg, unit_scale), matrix[:3, 3].copy(),
                    heading_matrix(matrix, rig.forward()), ground)


def upright_degrees(joints: np.ndarray) -> np.ndarray:
    """(T,) angle between pelvis -> head and engine up (+Y) per frame of (T, 22, 3) joints."""
    spine = _normalised(joints[:, 15] - joints[:, 0])
    return np.degrees(np.arccos(np.clip(spine[:, 1], -1.0, 1.0)))


def max_joint_travel(joints: np.ndarray) -> float:
    """The farthest any joint of (T, 22, 3) gets from where it is in the first frame (same units)."""
    return float(np.linalg.norm(joints - joints[:1], axis=-1).max()) if len(joints) else 0.0


# ----------------------------------------------------------------------------- positions -> deltas

def _twist_reference(joint: int, positions: np.ndarray, forward: np.ndarray, rest: bool,
                     mapped: np.ndarray) -> np.ndarray | None:
    """A second direction that fixes the roll of ``joint``'s bone, or None (swing only).

    Pelvis and spine1: the hips' left-right line; spine3 and neck: the collars' (the shoulders'
    when the rig has no collars); spine2: both. Thighs: the shin, which bends backwards from the
    knee (rest: backwards). Upper arms: the forearm, which bends forwards from the elbow (rest:
    forwards). ``positions`` (..., 22, 3); ``forward`` the rig's rest facing.
    """
    hips = _normalised(positions[..., 1, :] - positions[..., 2, :])
    left, right = (13, 14) if mapped[13] and mapped[14] else (16, 17)
    shoulders = _normalised(positions[..., left, :] - positions[..., right, :])
    if joint in (0, 3):
        return hips
    if joint == 6:
        return hips + shoulders
    if joint in (9, 12):
        return shoulders
    if joint in (1, 2):
        knee, ankle = (4, 7) if joint == 1 else (5, 8)
        return -forward if rest else positions[..., ankle, :] - positions[..., knee, :]
    if joint in (16, 17):
        elbow, wrist = (18, 20) if joint == 16 else (19, 21)
        return forward if rest else positions[..., wrist, :] - positions[..., elbow, :]
    return None


def solve_deltas(targets: np.ndarray, rest_joints: np.ndarray, forward: np.ndarray) -> np.ndarray:
    """Armature-space rotations (T, 22, 4) that pose the rig's bones along ``targets``.

    targets (T, 22, 3) joint positions in armature space (unmapped joints ignored); rest_joints
    (22, 3) the rig's rest joints, NaN where unmapped. Each mapped joint's bone is swung so the
    rest direction towards its aim joint points at the target direction, starting from its
    parent's rotation, then rolled about that direction so its twist reference matches (faded
    out where the reference is nearly parallel to the bone). Leaves and unmapped joints take
    their parent's rotation.
    """
    mapped = np.isfinite(rest_joints).all(-1)
    frames = targets.shape[0]
    identity = np.tile([1.0, 0.0, 0.0, 0.0], (frames, 1))
    deltas = np.tile(identity[:, None], (1, NUM_JOINTS, 1))
    for joint in range(NUM_JOINTS):                       # SMPL order lists parents first
        parent = mapped_parent(joint, mapped)
        parent_delta = deltas[:, parent] if parent >= 0 else identity
        aim = aim_joint(joint, mapped, rest_joints)
        if not mapped[joint] or aim < 0:
            deltas[:, joint] = parent_delta
            continue
        target_dir = _normalised(targets[:, aim] - targets[:, joint])
        swung_rest = quat_rotate(parent_delta, np.broadcast_to(rest_joints[aim] - rest_joints[joint], (frames, 3)))
        delta = quat_mul(_safe_between(swung_rest, target_dir), parent_delta)

        rest_ref = _twist_reference(joint, rest_joints, forward, rest=True, mapped=mapped)
        if rest_ref is not None:
            target_ref = _twist_reference(joint, targets, forward, rest=False, mapped=mapped)
            current = quat_rotate(delta, np.broadcast_to(rest_ref, target_ref.shape))
            current = current - (current * target_dir).sum(-1, keepdims=True) * target_dir
            wanted = target_ref - (target_ref * target_dir).sum(-1, keepdims=True) * target_dir
            sine = np.linalg.norm(wanted, axis=-1) / np.maximum(np.linalg.norm(target_ref, axis=-1), 1e-12)
            weight = np.clip(sine / _MIN_TWIST_SINE, 0.0, 1.0)
            angle = np.arctan2((np.cross(current, wanted) * target_dir).sum(-1), (current * wanted).sum(-1))
            delta = quat_mul(_twist(target_dir, weight * angle), delta)
        deltas[:, joint] = delta
    return deltas


def forward_kinematics(root: np.ndarray, deltas: np.ndarray, rest_joints: np.ndarray) -> np.ndarray:
    """Posed joint positions (T, 22, 3) of the rig: pelvis at ``root`` (T, 3), bones turned by
    ``deltas`` (T, 22, 4), the rig's own bone lengths; NaN for unmapped joints."""
    mapped = np.isfinite(rest_joints).all(-1)
    posed = np.full(deltas.shape[:2] + (3,), np.nan)
    posed[:, 0] = root
    for joint in range(1, NUM_JOINTS):
        parent = mapped_parent(joint, mapped)
        if mapped[joint]:
            offset = np.broadcast_to(rest_joints[joint] - rest_joints[parent], posed[:, joint].shape)
            posed[:, joint] = posed[:, parent] + quat_rotate(deltas[:, parent], offset)
    return posed


# ----------------------------------------------------------------------------- feet

def foot_contacts(joints: np.ndarray, fps: float, speed: float = CONTACT_SPEED,
                  height: float = CONTACT_HEIGHT) -> np.ndarray:
    """(T, 2) bool: left / right foot planted, where ankle and toe both move slower than
    ``speed`` (m/s) and one of them is within ``height`` (m) of the lowest foot joint of the clip.
    ``joints`` (T, 22, 3) engine coordinates (Y up) in metres at ``fps``; the last frame copies
    the one before it."""
    contacts = np.zeros((joints.shape[0], 2), dtype=bool)
    if joints.shape[0] < 2:
        return contacts
    feet = [joint for leg in LEGS for joint in leg[2:]]
    floor = joints[:, feet, 1].min()
    for side, (_, _, ankle, toe) in enumerate(LEGS):
        step = np.linalg.norm(np.diff(joints[:, [ankle, toe]], axis=0), axis=-1).max(-1) * fps
        low = joints[:, [ankle, toe], 1].min(-1) < floor + height
        contacts[:-1, side] = (step < speed) & low[:-1]
        contacts[-1, side] = contacts[-2, side]
    return contacts


def _lock_offsets(points: np.ndarray, planted: np.ndarray, blend: int) -> np.ndarray:
    """(T, 3) corrections that hold ``points`` still over each run of ``planted`` frames (at the
    run's mean position) and fade to zero over ``blend`` frames either side."""
    frames = len(points)
    offsets = np.zeros_like(points)
    weights = np.zeros(frames)
    edges = np.flatnonzero(np.diff(np.concatenate([[0], planted.astype(int), [0]])))
    for start, stop in zip(edges[::2], edges[1::2]):
        if stop - start < 2:
            continue
        offset = points[start:stop].mean(0) - points[start:stop]
        offsets[start:stop] += offset
        weights[start:stop] += 1.0
        for step in range(1, blend + 1):
            fade = 1.0 - step / (blend + 1)
            for frame, edge in ((start - step, offset[0]), (stop - 1 + step, offset[-1])):
                if 0 <= frame < frames and not planted[frame]:
                    offsets[frame] += fade * edge
                    weights[frame] += fade
    return offsets / np.maximum(weights, 1.0)[:, None]


def plant_feet(targets: np.ndarray, posed: np.ndarray, rest_joints: np.ndarray, contacts: np.ndarray,
               blend: int) -> np.ndarray:
    """Targets (T, 22, 3) whose legs keep planted ankles still.

    ``posed`` are the rig's joints for ``targets`` (``forward_kinematics``); for every contact
    run of ``contacts`` (T, 2) the ankle is held at its mean position, the knee found by two-bone
    IK with the rig's thigh and shin lengths in the leg's own bending plane, the toe carried along.
    """
    targets = targets.copy()
    for side, (hip, knee, ankle, toe) in enumerate(LEGS):
        if not contacts[:, side].any():
            continue
        thigh = np.linalg.norm(rest_joints[knee] - rest_joints[hip])
        shin = np.linalg.norm(rest_joints[ankle] - rest_joints[knee])
        hip_at = posed[:, hip]
        wanted = posed[:, ankle] + _lock_offsets(posed[:, ankle], contacts[:, side], blend)
        reach = np.clip(np.linalg.norm(wanted - hip_at, axis=-1), abs(thigh - shin) + 1e-6,
                        (thigh + shin) * (1.0 - 1e-6))
        along = _normalised(wanted - hip_at)
        ankle_at = hip_at + along * reach[:, None]
        pole = posed[:, knee] - hip_at
        pole = _normalised(pole - (pole * along).sum(-1, keepdims=True) * along)
        to_knee = (thigh ** 2 - shin ** 2 + reach ** 2) / (2.0 * reach)
        height = np.sqrt(np.maximum(thigh ** 2 - to_knee ** 2, 0.0))
        knee_at = hip_at + along * to_knee[:, None] + pole * height[:, None]
        shift = targets[:, hip] - hip_at                 # targets only fix directions
        targets[:, knee] = knee_at + shift
        targets[:, ankle] = ankle_at + shift
        targets[:, toe] = ankle_at + (posed[:, toe] - posed[:, ankle]) + shift
    return targets


# ----------------------------------------------------------------------------- whole clip

@dataclass
class PoseTrack:
    """Per-frame pose of the driven bones: ``bones`` (K,) bone indices, ``rotations`` (T, K, 4)
    local (pose-bone basis) quaternions, ``root_bone`` its index and ``root_location`` (T, 3) its
    basis location (the bone's rest frame, rig units); ``fps``."""

    bones: np.ndarray
    rotations: np.ndarray
    root_bone: int
    root_location: np.ndarray
    fps: float

    def resample(self, fps: float) -> "PoseTrack":
        """Samples at ``fps`` over the same span (count as ``engine.Motion.resample``): rotations by
        scipy Slerp per bone, the root location linearly."""
        frames = self.rotations.shape[0]
        duration = (frames - 1) / self.fps
        count = int(np.floor(duration * fps + 1e-6)) + 1
        if abs(fps - self.fps) < 1e-9 or frames < 2:
            return PoseTrack(self.bones, self.rotations[:count], self.root_bone, self.root_location[:count], fps)
        source_times = np.arange(frames) / self.fps
        times = np.minimum(np.arange(count) / fps, source_times[-1])
        rotations = np.empty((count,) + self.rotations.shape[1:])
        for column in range(self.rotations.shape[1]):
            slerp = Slerp(source_times, Rotation.from_quat(self.rotations[:, column], scalar_first=True))
            rotations[:, column] = slerp(times).as_quat(scalar_first=True)
        location = np.stack([np.interp(times, source_times, self.root_location[:, axis]) for axis in range(3)], -1)
        return PoseTrack(self.bones, rotations, self.root_bone, location, fps)


def fit_motion(joints: np.ndarray, fps: float, rig: RigSkeleton, clean_feet: bool = True,
               in_place: bool = False, space: RigSpace | None = None, on_ground: bool | None = None) -> PoseTrack:
    """Pose the rig along a motion: ``joints`` (T, 22, 3) engine coordinates in metres at ``fps``
    (``fit_joints``), as the local rotations of its mapped bones and their ancestors and the
    pelvis bone's location (``PoseTrack``)."""
    fitted = fit_joints(joints, fps, rig, clean_feet=clean_feet, in_place=in_place, space=space, on_ground=on_ground)
    return local_pose(fitted.deltas, fitted.root, rig, fps)


@dataclass
class FittedJoints:
    """The rig posed along a motion, before it becomes keys: ``deltas`` (T, 22, 4) armature-space
    rotation of each SMPL joint's bone from its rest pose, ``root`` (T, 3) the pelvis bone's head
    (armature space, rig units)."""

    deltas: np.ndarray
    root: np.ndarray

    def joints(self, rig: RigSkeleton) -> np.ndarray:
        """(T, 22, 3) the posed joints (armature space), NaN for joints the rig lacks."""
        return forward_kinematics(self.root, self.deltas, rig.rest_joints)


def fit_joints(joints: np.ndarray, fps: float, rig: RigSkeleton, clean_feet: bool = True,
               in_place: bool = False, space: RigSpace | None = None, on_ground: bool | None = None) -> FittedJoints:
    """Pose the rig along a motion: ``joints`` (T, 22, 3) engine coordinates in metres at ``fps``.

    ``space`` maps engine metres to the rig (default: armature space is the world, in metres).
    The motion is scaled by ``leg_scale`` about the floor point under its first pelvis;
    ``in_place`` keeps the pelvis over its rest position on the ground plane; ``clean_feet``
    holds planted feet still (``foot_contacts`` / ``plant_feet``); ``on_ground`` shifts the
    clip up or down (when off by more than ``GROUND_TOLERANCE``) so the lowest point of the planted feet (the rig's own foot bones, median
    over the planted frames; the clip's lowest foot point when none is planted) is on the
    space's ground (default: when a ``space`` is given).
    """
    on_ground = space is not None if on_ground is None else on_ground
    space = space or RigSpace(np.eye(4))
    rest = rig.rest_joints
    joints = np.asarray(joints, dtype=np.float64)
    pivot = joints[0, 0] * [1.0, 0.0, 1.0]                  # under the first pelvis, on the floor
    scaled = (joints - pivot) * leg_scale(joints, rig, space) + pivot
    if in_place:
        scaled[..., [0, 2]] += space.to_engine(rest[0])[[0, 2]] - scaled[:, :1, [0, 2]]
    targets = space.from_engine(scaled)
    forward = rig.forward()
    deltas = solve_deltas(targets, rest, forward)
    contacts = foot_contacts(joints, fps)
    if clean_feet and not in_place and contacts.any():
        posed = forward_kinematics(targets[:, 0], deltas, rest)
        blend = max(1, int(round(CONTACT_BLEND_SECONDS * fps)))
        targets = plant_feet(targets, posed, rest, contacts, blend)
        deltas = solve_deltas(targets, rest, forward)
    if on_ground:
        lift = space.ground_height - planted_floor(rig, space, targets[:, 0], deltas, contacts)
        if abs(lift) > GROUND_TOLERANCE:
            targets[:, 0] = space.from_engine(space.to_engine(targets[:, 0]) + [0.0, lift, 0.0])
    return FittedJoints(deltas, targets[:, 0])


@dataclass(frozen=True)
class ControlRig:
    """Control bones that pose a rig whose fitted skeleton they do not belong to (a Rigify rig:
    FK controls drive ORG bones through constraints and MCH parents).

    bones (K,) indices into the ``RigSkeleton`` keyed with rotations; joints (K,) the SMPL joint
    whose armature-space delta each control takes (-1: stays at rest); parent_joints (K,) the SMPL
    joint whose delta the control's *Blender* parent carries when posed (-1: the parent stays at
    rest); root_bone the control that gets the location (its parent at rest); root_path the
    controls from it down to the pelvis joint, each turning the next one's head about its own
    (the pelvis sits at root_path[0]'s head + the turned offsets).
    """

    bones: np.ndarray
    joints: np.ndarray
    parent_joints: np.ndarray
    root_bone: int
    root_path: np.ndarray


def control_pose(fitted: FittedJoints, rig: RigSkeleton, controls: ControlRig, fps: float) -> PoseTrack:
    """The controls' basis rotations and the root control's location for a fitted pose.

    A control with rest orientation R in armature space, its Blender parent posed by delta P, that
    should be posed by delta D gets basis rotation R^-1 P^-1 D R. The root control's location moves
    the pelvis to ``fitted.root``: offset = root - (head_0 + sum_i D_i (head_{i+1} - head_i)) along
    ``root_path`` (the last "head" being the pelvis), in the root control's rest frame."""
    deltas = fitted.deltas
    frames = deltas.shape[0]
    identity = np.tile([1.0, 0.0, 0.0, 0.0], (frames, 1))

    def delta(joint: int) -> np.ndarray:
        return identity if joint < 0 else deltas[:, joint]

    bones = np.asarray(controls.bones, dtype=int)
    rest_quats = quat_from_matrix(rig.bone_rest[bones, :3, :3])
    local = np.empty((frames, len(bones), 4))
    for column, (joint, parent) in enumerate(zip(controls.joints, controls.parent_joints)):
        turn = quat_mul(quat_inv(delta(int(parent))), delta(int(joint)))
        rest_q = np.broadcast_to(rest_quats[column], turn.shape)
        local[:, column] = quat_mul(quat_mul(quat_inv(rest_q), turn), rest_q)
    local = _continuous(_unit_quats(local.reshape(-1, 4)).reshape(local.shape))

    joint_of = {int(b): int(j) for b, j in zip(bones, controls.joints)}
    path = [int(b) for b in controls.root_path]
    heads = [rig.bone_rest[b, :3, 3] for b in path] + [rig.rest_joints[0]]
    at_rest_root = np.broadcast_to(heads[0], (frames, 3)).copy()
    for step, bone in enumerate(path):
        offset = np.broadcast_to(heads[step + 1] - heads[step], (frames, 3))
        at_rest_root += quat_rotate(delta(joint_of.get(bone, -1)), offset)
    root_rest = rig.bone_rest[controls.root_bone]
    location = (fitted.root - at_rest_root) @ root_rest[:3, :3]
    return PoseTrack(bones, local, int(controls.root_bone), location, fps)


def leg_scale(joints: np.ndarray, rig: RigSkeleton, space: RigSpace) -> float:
    """The factor on engine ``joints`` (T, 22, 3) that gives the motion the rig's leg: rig leg /
    motion leg, both measured in armature space (so a motion read from a non-uniformly scaled rig
    comes back at exactly 1)."""
    return rig.leg_length() / float(np.mean(leg_length(space.from_engine(joints))))


def posed_foot_points(rig: RigSkeleton, root: np.ndarray, deltas: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(T, N, 3) armature-space positions of the rig's foot points (``foot_points``) for a pose
    (pelvis at ``root`` (T, 3), ``deltas`` (T, 22, 4)), and their side (N,)."""
    rest = rig.rest_joints
    points, joints, sides = rig.foot_points()
    posed = forward_kinematics(root, deltas, rest)
    offsets = np.broadcast_to(points - rest[joints], (len(root),) + points.shape)
    return posed[:, joints] + quat_rotate(deltas[:, joints], offsets), sides


def planted_floor(rig: RigSkeleton, space: RigSpace, root: np.ndarray, deltas: np.ndarray,
                  contacts: np.ndarray) -> float:
    """Engine height of the lowest foot point of the planted feet (median over the planted
    frames of ``contacts`` (T, 2)); the lowest foot point of the clip when no foot is planted."""
    points, sides = posed_foot_points(rig, root, deltas)
    if points.shape[1] == 0:
        return space.ground_height
    heights = space.to_engine(points)[..., 1]
    lowest = np.stack([heights[:, sides == side].min(-1) if (sides == side).any() else
                       np.full(len(heights), np.inf) for side in range(2)], -1)
    planted = lowest[contacts & np.isfinite(lowest)]
    return float(np.median(planted)) if planted.size else float(lowest[np.isfinite(lowest)].min())


def local_pose(deltas: np.ndarray, root: np.ndarray, rig: RigSkeleton, fps: float) -> PoseTrack:
    """Joint deltas (T, 22, 4) and pelvis path (T, 3) -> pose-bone basis rotations and location.

    A bone's armature-space delta is its joint's, or its parent's when it plays no joint;
    basis = rest^-1 * delta(parent)^-1 * delta(bone) * rest. Bones above the pelvis stay at rest.
    """
    frames = deltas.shape[0]
    bone_count = len(rig.bone_names)
    identity = np.array([1.0, 0.0, 0.0, 0.0])
    bone_deltas = np.tile(identity, (frames, bone_count, 1))
    joint_of_bone = {int(b): j for j, b in enumerate(rig.joint_bones) if b >= 0}
    for bone in range(bone_count):                       # parents come first
        parent = int(rig.bone_parents[bone])
        if bone in joint_of_bone:
            bone_deltas[:, bone] = deltas[:, joint_of_bone[bone]]
        elif parent >= 0:
            bone_deltas[:, bone] = bone_deltas[:, parent]
    rest_quats = quat_from_matrix(rig.bone_rest[:, :3, :3])
    bones = rig.driven_bones()
    parents = rig.bone_parents[bones]
    parent_deltas = np.where((parents >= 0)[None, :, None], bone_deltas[:, np.maximum(parents, 0)], identity)
    local = quat_mul(quat_inv(parent_deltas), bone_deltas[:, bones])
    local = quat_mul(quat_mul(quat_inv(rest_quats[bones]), local), rest_quats[bones])
    local = local / np.linalg.norm(local, axis=-1, keepdims=True)
    local = _continuous(local)

    root_bone = int(rig.joint_bones[0])
    rest_matrix = rig.bone_rest[root_bone]
    location = (root - rest_matrix[:3, 3]) @ rest_matrix[:3, :3]   # R^T (p - head), per frame
    return PoseTrack(bones, local, root_bone, location, fps)


def _continuous(quats: np.ndarray) -> np.ndarray:
    """Flip signs along time (axis 0) so consecutive quaternions lie in one hemisphere."""
    dots = (quats[1:] * quats[:-1]).sum(-1)
    signs = np.concatenate([np.ones((1,) + dots.shape[1:]), np.cumprod(np.where(dots < 0, -1.0, 1.0), axis=0)])
    return quats * signs[..., None]


# ----------------------------------------------------------------------------- rotation modes

EULER_ORDERS = ("XYZ", "XZY", "YXZ", "YZX", "ZXY", "ZYX")


def _unit_quats(quats: np.ndarray) -> np.ndarray:
    """(T, 4) quaternions normalised; a zero or non-finite one (a bone the fit could give no
    direction) becomes the identity instead of an error."""
    quats = np.array(quats, dtype=np.float64)
    norms = np.linalg.norm(quats, axis=-1, keepdims=True)
    bad = ~(np.isfinite(quats).all(-1, keepdims=True) & (norms > 1e-9))
    quats = np.where(bad, [1.0, 0.0, 0.0, 0.0], quats / np.where(bad, 1.0, norms))
    return quats


def rotation_channels(quats: np.ndarray, mode: str) -> tuple[str, np.ndarray]:
    """(T, 4) quaternions -> (pose-bone property, (T, n) channel values) for a rotation mode.

    QUATERNION -> rotation_quaternion (w, x, y, z); Blender Euler 'XYZ' etc. (the rotations
    applied in that order about fixed axes, scipy's extrinsic lower-case order) -> rotation_euler
    (x, y, z) radians, unwrapped along time; AXIS_ANGLE -> rotation_axis_angle (angle, x, y, z).
    """
    quats = _unit_quats(quats)
    if mode == "QUATERNION":
        return "rotation_quaternion", quats
    rotation = Rotation.from_quat(quats, scalar_first=True)
    if mode in EULER_ORDERS:
        angles = rotation.as_euler(mode.lower())
        xyz = angles[:, [mode.index(axis) for axis in "XYZ"]]
        return "rotation_euler", np.unwrap(xyz, axis=0)
    if mode == "AXIS_ANGLE":
        rotvec = rotation.as_rotvec()
        angle = np.linalg.norm(rotvec, axis=-1)
        axis = np.where(angle[:, None] > 1e-9, rotvec / np.maximum(angle, 1e-12)[:, None], [0.0, 1.0, 0.0])
        return "rotation_axis_angle", np.concatenate([angle[:, None], axis], -1)
    raise ValueError(f"unknown rotation mode {mode!r}")

