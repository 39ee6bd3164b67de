"""BVH motion files: parse any hierarchy, forward kinematics, bone maps onto SMPL's 22 joints.

numpy (+ engine.motion) only. ``read_bvh``/``parse_bvh`` give an ``engine.Motion``: (T, 22, 3)
float32 joint positions in metres, Y up, at the file's own frame rate, in the motion's own world
orientation. ``write_bvh`` writes a Motion back as a BVH on the SMPL 22-joint skeleton.

BVH conventions honoured here: every joint's channels are read in the order listed (positions and
rotations may be interleaved; 0 to 6 channels), a joint's local rotation is the product of its
rotation channels in that order (``Zrotation Xrotation Yrotation`` gives R = Rz @ Rx @ Ry, column
vectors), angles are degrees, and position channels replace the joint's OFFSET (on any joint, not
only the root).
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .bone_maps import BoneMap, detect_bone_map, load_bone_map
from .errors import MotionError
from .files import write_text
from .motion import (JOINT_NAMES, NUM_JOINTS, PARENTS, RAW_OFFSETS, Motion, bone_lengths, fill_missing_joints,
                     quat_between, quat_inv, quat_mul, quat_rotate, quat_to_matrix)

# Unit candidates (metres per file unit) for files whose map gives no scale: the one that makes the
# leg (pelvis -> ankle along the hierarchy) 0.55-1.2 m long wins. The ranges do not overlap
# (neighbouring scales differ by more than 1.2 / 0.55), so at most one candidate fits; if none does,
# the candidate closest to 0.85 m (in log scale) is taken.
UNIT_SCALES = {"m": 1.0, "cm": 0.01, "mm": 0.001, "inch": 0.0254, "cmu": 0.056444}
PLAUSIBLE_LEG_METRES = (0.55, 1.2)
TYPICAL_LEG_METRES = 0.85

_AXIS = {"X": 0, "Y": 1, "Z": 2}


@dataclass
class BvhFile:
    """A parsed BVH file: the joint hierarchy (End Sites left out) and the raw channel values."""

    names: list[str]              # joint names in file order
    parents: list[int]            # index of each joint's parent, -1 for a root
    offsets: np.ndarray           # (J, 3) rest offsets, file units
    channels: list[list[str]]     # channel names per joint, e.g. ["Xposition", ..., "Yrotation"]
    first_channel: list[int]      # column of each joint's first channel in a frame line
    end_sites: dict[int, np.ndarray]  # joint index -> End Site offset (file units), if it has one
    frames: np.ndarray            # (T, C) float64 channel values, degrees for rotations
    frame_time: float             # seconds

    @property
    def fps(self) -> float:
        """1 / Frame Time, snapped to the nearest integer when within 0.005 (30.00003 -> 30)."""
        fps = 1.0 / self.frame_time
        return float(round(fps)) if abs(fps - round(fps)) < 0.005 else fps


# ----------------------------------------------------------------------------- parsing

def _number(token: str, source: str, line_number: int, what: str) -> float:
    try:
        value = float(token)
    except ValueError:
        raise MotionError(f"{source}: line {line_number}: {what} {token!r} is not a number") from None
    if not np.isfinite(value):
        raise MotionError(f"{source}: line {line_number}: {what} is {token!r} (NaN or infinite)")
    return value


def parse_bvh_file(text: str, source: str = "<string>") -> BvhFile:
    """Parse BVH text into a ``BvhFile``; MotionError naming ``source`` for any malformed part."""
    if not isinstance(text, str):
        raise MotionError(f"{source}: BVH text must be a str, got {type(text).__name__}")
    lines = text.lstrip("\ufeff").splitlines()
    motion_at = next((i for i, line in enumerate(lines) if line.strip().upper() == "MOTION"), None)
    first = next((line.strip() for line in lines if line.strip()), "")
    if first.upper() != "HIERARCHY":
        problem = "the file is empty" if not first else f"it starts with {first[:40]!r}"
        raise MotionError(f"{source}: not a BVH file: no HIERARCHY section ({problem})")
    if motion_at is None:
        raise MotionError(f"{source}: no MOTION section after the HIERARCHY (file truncated?)")

    names: list[str] = []
    parents: list[int] = []
    offsets: list[list[float]] = []
    channels: list[list[str]] = []
    end_sites: dict[int, np.ndarray] = {}
    stack: list[int] = []          # open joints (-2 marks an End Site block)
    pending: int | None = None     # joint (or -2) declared, waiting for its "{"
    for number, raw in enumerate(lines[:motion_at], start=1):
        tokens = raw.split()
        if not tokens:
            continue
        keyword = tokens[0].upper()
        if keyword == "HIERARCHY":
            continue
        if keyword in ("ROOT", "JOINT"):
            name = " ".join(t for t in tokens[1:] if t != "{")
            if not name:
                raise MotionError(f"{source}: line {number}: {tokens[0]} without a name")
            if keyword == "JOINT" and not stack:
                raise MotionError(f"{source}: line {number}: JOINT {name} outside any ROOT")
            if name in names:
                raise MotionError(f"{source}: line {number}: joint name {name!r} used twice")
            parent = stack[-1] if stack else -1
            if parent == -2:
                raise MotionError(f"{source}: line {number}: JOINT {name} inside an End Site")
            names.append(name)
            parents.append(parent)
            offsets.append([0.0, 0.0, 0.0])
            channels.append([])
            pending = len(names) - 1
            tokens = tokens[-1:] if tokens[-1] == "{" else []
        elif keyword == "END":
            if not stack or stack[-1] == -2:
                raise MotionError(f"{source}: line {number}: End Site outside a joint")
            pending = -2
            end_sites[stack[-1]] = np.zeros(3)
            tokens = tokens[-1:] if tokens[-1] == "{" else []
        if tokens and tokens[0] == "{":
            if pending is None:
                raise MotionError(f"{source}: line {number}: '{{' without a joint before it")
            stack.append(pending)
            pending = None
        elif tokens and tokens[0] == "}":
            if not stack:
                raise MotionError(f"{source}: line {number}: unbalanced '}}'")
            stack.pop()
        elif keyword == "OFFSET":
            if len(tokens) != 4 or not stack:
                raise MotionError(f"{source}: line {number}: OFFSET needs 3 numbers inside a joint")
            offset = [_number(t, source, number, "OFFSET value") for t in tokens[1:]]
            if stack[-1] == -2:
                end_sites[stack[-2]] = np.array(offset)
            else:
                offsets[stack[-1]] = offset
        elif keyword == "CHANNELS":
            if not stack or stack[-1] == -2:
                raise MotionError(f"{source}: line {number}: CHANNELS outside a joint")
            count = int(_number(tokens[1], source, number, "channel count")) if len(tokens) > 1 else -1
            listed = tokens[2:]
            if count != len(listed):
                raise MotionError(f"{source}: line {number}: CHANNELS says {count} but lists {len(listed)}")
            for channel in listed:
                if channel[1:].lower() not in ("position", "rotation") or channel[0].upper() not in _AXIS:
                    raise MotionError(f"{source}: line {number}: unknown channel {channel!r}")
            channels[stack[-1]] = [c[0].upper() + c[1:].lower() for c in listed]
        elif keyword not in ("ROOT", "JOINT", "END"):
            raise MotionError(f"{source}: line {number}: unexpected {tokens[0]!r} in the HIERARCHY")
    if stack or pending is not None:
        raise MotionError(f"{source}: HIERARCHY has unclosed braces before MOTION (file truncated?)")
    if not names:
        raise MotionError(f"{source}: HIERARCHY has no joints")

    frame_count, frame_time, body_at = None, None, motion_at + 1
    for number in range(motion_at + 1, min(motion_at + 6, len(lines))):
        line = lines[number].strip()
        if not line:
            continue
        key, _, value = line.partition(":")
        key = key.strip().lower()
        if key == "frames":
            frame_count = int(_number(value.strip() or "?", source, number + 1, "Frames"))
            body_at = number + 1
        elif key == "frame time":
            frame_time = _number(value.strip() or "?", source, number + 1, "Frame Time")
            body_at = number + 1
        else:
            break
    if frame_count is None or frame_time is None:
        raise MotionError(f"{source}: MOTION section lacks a 'Frames:' or 'Frame Time:' line")
    if frame_count <= 0:
        raise MotionError(f"{source}: the file has zero frames (Frames: {frame_count})")
    if frame_time <= 0:
        raise MotionError(f"{source}: Frame Time must be positive, got {frame_time}")

    width = sum(len(c) for c in channels)
    rows = [(number, line.split()) for number, line in enumerate(lines[body_at:], start=body_at + 1)
            if line.strip()][:frame_count]
    if len(rows) < frame_count:
        raise MotionError(f"{source}: truncated: 'Frames: {frame_count}' but only {len(rows)} frame lines follow")
    for frame, (number, values) in enumerate(rows):
        if len(values) != width:
            raise MotionError(f"{source}: line {number} (frame {frame}) has {len(values)} numbers, "
                              f"expected {width} (one per channel)")
    try:
        frames = np.array(list(itertools.chain.from_iterable(v for _, v in rows)), dtype=np.float64)
    except ValueError:
        for frame, (number, values) in enumerate(rows):
            for value in values:
                _number(value, source, number, f"frame {frame} value")
        raise
    frames = frames.reshape(frame_count, width)
    if not np.isfinite(frames).all():
        frame = int(np.argwhere(~np.isfinite(frames))[0][0])
        raise MotionError(f"{source}: line {rows[frame][0]} (frame {frame}) holds NaN or infinite values")
    first_channel = list(np.cumsum([0] + [len(c) for c in channels[:-1]]))
    return BvhFile(names, parents, np.array(offsets, dtype=np.float64), channels,
                   [int(c) for c in first_channel], end_sites, frames, float(frame_time))


# ----------------------------------------------------------------------------- kinematics

def _axis_rotations(axis: int, degrees: np.ndarray) -> np.ndarray:
    """(T,) angles about one axis -> (T, 3, 3) rotation matrices (column vectors)."""
    radians = np.radians(degrees)
    cos, sin = np.cos(radians), np.sin(radians)
    i, j = [(1, 2), (2, 0), (0, 1)][axis]
    matrices = np.zeros((len(degrees), 3, 3))
    matrices[:, axis, axis] = 1.0
    matrices[:, i, i] = cos
    matrices[:, j, j] = cos
    matrices[:, i, j] = -sin
    matrices[:, j, i] = sin
    return matrices


def forward_kinematics(bvh: BvhFile, needed: list[int] | None = None) -> np.ndarray:
    """World positions (T, J, 3) of the joints' origins, file units, the file's own axes.

    ``needed``: joint indices whose positions are wanted (their ancestors are computed too);
    the others are left NaN. Default: all joints.
    """
    count = len(bvh.names)
    compute = np.zeros(count, dtype=bool)
    for joint in (range(count) if needed is None else needed):
        while joint >= 0 and not compute[joint]:
            compute[joint] = True
            joint = bvh.parents[joint]
    frames = len(bvh.frames)
    positions = np.full((frames, count, 3), np.nan)
    rotations: dict[int, np.ndarray] = {}
    for joint in range(count):  # file order: parents come before their children
        if not compute[joint]:
            continue
        translation = np.repeat(bvh.offsets[joint][None], frames, axis=0)
        rotation = None
        for k, channel in enumerate(bvh.channels[joint]):
            values = bvh.frames[:, bvh.first_channel[joint] + k]
            axis = _AXIS[channel[0]]
            if channel.endswith("position"):
                translation[:, axis] = values
            else:
                step = _axis_rotations(axis, values)
                rotation = step if rotation is None else rotation @ step
        parent = bvh.parents[joint]
        if parent < 0:
            positions[:, joint] = translation
            world = rotation
        else:
            parent_rotation = rotations[parent]
            positions[:, joint] = positions[:, parent] + (
                translation if parent_rotation is None else np.einsum("tij,tj->ti", parent_rotation, translation))
            world = parent_rotation if rotation is None else (
                rotation if parent_rotation is None else parent_rotation @ rotation)
        rotations[joint] = world
    return positions


def _chain(bvh: BvhFile, ancestor: int, joint: int) -> list[int]:
    """Joint indices from ``ancestor`` down to ``joint``; just the two if not an ancestor."""
    path = [joint]
    while path[-1] != ancestor and path[-1] >= 0:
        path.append(bvh.parents[path[-1]])
    return path[::-1] if path[-1] == ancestor else [ancestor, joint]


def _infer_scale(leg_length: float, source: str) -> float:
    """Metres per file unit, from the leg length in file units (see ``UNIT_SCALES``)."""
    if not leg_length > 0:
        raise MotionError(f"{source}: the skeleton's legs have zero length; cannot infer its unit")
    low, high = PLAUSIBLE_LEG_METRES
    fitting = [s for s in UNIT_SCALES.values() if low <= leg_length * s <= high]
    if fitting:
        return fitting[0]
    return min(UNIT_SCALES.values(), key=lambda s: abs(np.log(leg_length * s / TYPICAL_LEG_METRES)))


def _smpl_joints(bvh: BvhFile, resolved: dict[str, str], source: str, scale: float | None) -> np.ndarray:
    """(T, 22, 3) SMPL joint positions in metres (file axes) from a parsed file and resolved map."""
    index = {name: i for i, name in enumerate(bvh.names)}
    mapped = {joint: index[bone] for joint, bone in resolved.items()}
    needed = list(mapped.values())
    spine_chain = _chain(bvh, mapped["pelvis"], mapped["neck"])
    needed += spine_chain
    positions = forward_kinematics(bvh, needed)

    if scale is None:
        legs = []
        for ankle in ("left_ankle", "right_ankle"):
            chain = _chain(bvh, mapped["pelvis"], mapped[ankle])
            legs.append(np.linalg.norm(np.diff(positions[0, chain], axis=0), axis=-1).sum())
        scale = _infer_scale(float(np.mean(legs)), source)
    positions = positions * scale

    joints = np.full((len(bvh.frames), NUM_JOINTS, 3), np.nan)
    for joint, bvh_index in mapped.items():
        joints[:, JOINT_NAMES.index(joint)] = positions[:, bvh_index]

    def file_spine(below: int, above: int) -> np.ndarray:
        """Positions (T, K, 3) of the file's joints from one mapped SMPL spine joint up to another."""
        return positions[:, _chain(bvh, mapped[JOINT_NAMES[below]], mapped[JOINT_NAMES[above]])]
    # Missing spine joints: along the file's own spine; missing collars: on spine3 -> shoulder.
    return fill_missing_joints(joints, spine_polyline=file_spine)


def _to_y_up(joints: np.ndarray) -> np.ndarray:
    """Turn a Z-up clip to Y up: (x, y, z) -> (x, z, -y), when Z is clearly the up axis.

    The up direction is the median over frames of (head - pelvis) + (pelvis - mid-ankles); the clip
    is Z-up when that vector's Z part is positive and larger than its Y and X parts.
    """
    pelvis, head = joints[:, 0], joints[:, JOINT_NAMES.index("head")]
    ankles = joints[:, [JOINT_NAMES.index("left_ankle"), JOINT_NAMES.index("right_ankle")]].mean(axis=1)
    up = np.median((head - pelvis) + (pelvis - ankles), axis=0)
    if up[2] > abs(up[1]) and up[2] > abs(up[0]):
        return np.stack([joints[..., 0], joints[..., 2], -joints[..., 1]], axis=-1)
    return joints


def bvh_to_motion(bvh: BvhFile, bone_map: "BoneMap | dict | str | Path | None" = None,
                  source: str = "<string>") -> Motion:
    """A parsed BVH file as an ``engine.Motion`` (see ``parse_bvh``)."""
    try:
        bone_map = detect_bone_map(bvh.names) if bone_map is None else load_bone_map(bone_map)
        resolved = bone_map.resolve(bvh.names)
    except MotionError as error:
        raise MotionError(f"{source}: {error}") from None
    if bone_map.bvh.get("first_frame_is_tpose", False):
        if len(bvh.frames) < 2:
            raise MotionError(f"{source}: only the T-pose frame, no motion (bone map '{bone_map.source}' drops frame 0)")
        bvh = BvhFile(**{**bvh.__dict__, "frames": bvh.frames[1:]})
    joints = _smpl_joints(bvh, resolved, source, bone_map.bvh.get("scale_to_metres"))
    return Motion(_to_y_up(joints).astype(np.float32), bvh.fps)


def parse_bvh(text: str, source: str = "<string>",
              bone_map: "BoneMap | dict | str | Path | None" = None) -> Motion:
    """BVH text -> ``engine.Motion``: (T, 22, 3) float32 metres, Y up, at the file's fps.

    ``bone_map``: a preset id, JSON path, dict or BoneMap; None detects it from the joint names.
    Units come from the map's ``bvh.scale_to_metres`` or are inferred from the leg length
    (``UNIT_SCALES``); Z-up files are turned to Y up; the world root composes all ancestors; a map
    with ``bvh.first_frame_is_tpose`` drops frame 0. ``source`` names the text in error messages.
    """
    return bvh_to_motion(parse_bvh_file(text, source), bone_map, source)


def read_bvh_file(path: str | Path) -> BvhFile:
    """Read and parse a BVH file (hierarchy and channel values, no bone map); MotionError naming the file."""
    path = Path(path)
    if not path.is_file():
        raise MotionError(f"BVH file {path} does not exist")
    try:
        text = path.read_text(encoding="utf-8", errors="strict")
    except UnicodeDecodeError:
        text = path.read_text(encoding="latin-1")
    except OSError as error:
        raise MotionError(f"BVH file {path} cannot be read: {error}") from None
    return parse_bvh_file(text, source=str(path))


def read_bvh(path: str | Path, bone_map: "BoneMap | dict | str | Path | None" = None) -> Motion:
    """Read a BVH file into an ``engine.Motion`` (see ``parse_bvh``)."""
    return bvh_to_motion(read_bvh_file(path), bone_map, source=str(path))


# ----------------------------------------------------------------------------- writing

# Leaf joints get an End Site this long (metres) along their rest direction, so viewers draw a bone.
_END_SITE_METRES = {"head": 0.10, "left_wrist": 0.08, "right_wrist": 0.08, "left_foot": 0.05, "right_foot": 0.05}
_WRITE_UNITS = {"cm": 100.0, "m": 1.0}


def _bvh_joint_names() -> list[str]:
    """SMPL joint names as the 'smpl' bone-map preset spells them (Pelvis, L_Hip, ...)."""
    names = load_bone_map("smpl").joints
    return [names[joint] for joint in JOINT_NAMES]


def write_bvh(motion: Motion, path: str | Path, units: str = "cm") -> None:
    """Write ``motion`` as a BVH on the SMPL 22-joint skeleton (names as the 'smpl' preset), Y up.

    Rest offsets: SMPL's rest directions (``RAW_OFFSETS``: +Y up, +X left, +Z forward) times the
    first frame's bone lengths. Every joint has 6 channels ``Xposition Yposition Zposition
    Zrotation Xrotation Yrotation`` (R = Rz Rx Ry, degrees): the rotation turns the joint's main
    child bone onto its direction by the shortest arc (pelvis -> spine1, spine3 -> neck), and the
    position channels hold the exact local offset per frame, so ``read_bvh`` gives back the joints
    to within float rounding (< 1 mm). ``units``: "cm" (default) or "m".
    """
    if not isinstance(motion, Motion):
        raise MotionError(f"write_bvh needs an engine.Motion, got {type(motion).__name__}")
    if units not in _WRITE_UNITS:
        raise MotionError(f"write_bvh units must be one of {list(_WRITE_UNITS)}, got {units!r}")
    scale = _WRITE_UNITS[units]
    joints = motion.joints.astype(np.float64)
    lengths = bone_lengths(joints)
    if (lengths[:, 1:] < 1e-6).any():
        frame, joint = np.argwhere(lengths[:, 1:] < 1e-6)[0]
        raise MotionError(f"cannot write {path}: bone ending at {JOINT_NAMES[joint + 1]} has zero length "
                          f"at frame {frame}")
    main_child = {parent: child for child, parent in enumerate(PARENTS) if parent >= 0}
    main_child.update({0: JOINT_NAMES.index("spine1"), JOINT_NAMES.index("spine3"): JOINT_NAMES.index("neck")})

    frames = len(joints)
    world = np.zeros((frames, NUM_JOINTS, 4))
    local_rotation = np.zeros((frames, NUM_JOINTS, 4))
    local_offset = np.zeros((frames, NUM_JOINTS, 3))
    for joint in range(NUM_JOINTS):  # SMPL order lists parents before children
        parent = PARENTS[joint]
        if joint in main_child:
            child = main_child[joint]
            world[:, joint] = quat_between(RAW_OFFSETS[child], joints[:, child] - joints[:, joint])
        else:
            world[:, joint] = world[:, parent]
        if parent < 0:
            local_rotation[:, joint] = world[:, joint]
            local_offset[:, joint] = joints[:, joint]
        else:
            parent_inverse = quat_inv(world[:, parent])
            local_rotation[:, joint] = quat_mul(parent_inverse, world[:, joint])
            local_offset[:, joint] = quat_rotate(parent_inverse, joints[:, joint] - joints[:, parent])
    euler = _quat_to_euler_zxy(local_rotation)                       # (T, 22, 3) degrees

    names = _bvh_joint_names()
    children = {j: [c for c in range(NUM_JOINTS) if PARENTS[c] == j] for j in range(NUM_JOINTS)}
    rest = RAW_OFFSETS * lengths[0][:, None] * scale

    def block(joint: int, depth: int) -> list[str]:
        pad = "\t" * depth
        keyword = "ROOT" if PARENTS[joint] < 0 else "JOINT"
        lines = [f"{pad}{keyword} {names[joint]}", f"{pad}{{",
                 f"{pad}\tOFFSET {' '.join(f'{v:.6f}' for v in rest[joint])}",
                 f"{pad}\tCHANNELS 6 Xposition Yposition Zposition Zrotation Xrotation Yrotation"]
        for child in children[joint]:
            lines += block(child, depth + 1)
        if not children[joint]:
            end = RAW_OFFSETS[joint] * _END_SITE_METRES[JOINT_NAMES[joint]] * scale
            lines += [f"{pad}\tEnd Site", f"{pad}\t{{", f"{pad}\t\tOFFSET {' '.join(f'{v:.6f}' for v in end)}",
                      f"{pad}\t}}"]
        return lines + [f"{pad}}}"]

    # The hierarchy is written depth first, so channel columns follow that joint order.
    order = []
    def visit(joint: int) -> None:
        order.append(joint)
        for child in children[joint]:
            visit(child)
    visit(0)
    values = np.concatenate([local_offset * scale, euler], axis=-1)[:, order].reshape(frames, -1)
    lines = ["HIERARCHY"] + block(0, 0) + ["MOTION", f"Frames: {frames}", f"Frame Time: {1.0 / motion.fps:.8f}"]
    body = "\n".join(" ".join(f"{v:.6f}" for v in row) for row in values)
    write_text(path, "\n".join(lines) + "\n" + body + "\n", encoding="ascii", what="BVH file")


def _quat_to_euler_zxy(quats: np.ndarray) -> np.ndarray:
    """(..., 4) unit quaternions (w, x, y, z) -> (..., 3) intrinsic Z, X, Y angles in degrees (R = Rz Rx Ry)."""
    m = quat_to_matrix(quats)
    # Rz Rx Ry: m[2,1] = sin(x); m[0,1] = -sin(z) cos(x); m[1,1] = cos(z) cos(x);
    #           m[2,0] = -cos(x) sin(y); m[2,2] = cos(x) cos(y)
    x = np.arcsin(np.clip(m[..., 2, 1], -1.0, 1.0))
    z = np.arctan2(-m[..., 0, 1], m[..., 1, 1])
    y = np.arctan2(-m[..., 2, 0], m[..., 2, 2])
    return np.degrees(np.stack([z, x, y], axis=-1))
