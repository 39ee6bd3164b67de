"""BVH motion files: parse any hierarchy, forward kinematics, bone maps onto SMPL's 22 joints.

numpy (+ engine.motion) only. ``read_bvh``/``parse_bvh`` give an ``engine.Motion``: (T, 22, 3)
float32 joint positions in metres, Y up, at the file's own frame rate, in the motion's own world
orientation. ``write_bvh`` writes a Motion back as a BVH on the SMPL 22-joint skeleton.

BVH conventions honoured here: every joint's channels are read in the order listed (positions and
rotations may be interleaved; 0 to 6 channels), a joint's local rotation is the product of its
rotation channels in that order (``Zrotation Xrotation Yrotation`` gives R = Rz @ Rx @ Ry, column
vectors), angles are degrees, and position channels replace the joint's OFFSET (on any joint, not
only the root).

Files are read as a stream: the frame lines go block by block into one float64 array, so a
200 MB file needs about its frame array in memory, not its text many times over. Anything
malformed or out of range (``MAX_DEPTH``, ``MAX_ABS_VALUE``, ``FRAME_TIME_RANGE``) is a
``MotionError`` naming the file, the line and the value.
"""
from __future__ import annotations

import io
import itertools
import os
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Iterator

import numpy as np

from .bone_maps import BoneMap, detect_bone_map, load_bone_map
from ..errors import MotionError
from ..files import check_input_file, write_text
from ..motion import (JOINT_NAMES, NUM_JOINTS, PARENTS, RAW_OFFSETS, Motion, bone_lengths, fill_missing_joints,
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

# Limits that keep a damaged or hostile file from exhausting time or memory (refused with a MotionError).
MAX_DEPTH = 1000                 # joints nested deeper than this; real skeletons have well under 100 levels
MAX_ABS_VALUE = 1e9              # largest |OFFSET| or |channel value| (file units, degrees): beyond, FK overflows
FRAME_TIME_RANGE = (1e-4, 10.0)  # seconds per frame: 10,000 fps down to 0.1 fps
_READ_BLOCK = 1 << 20            # bytes read from the file at a time
_PARSE_BLOCK = 4 << 20           # bytes of frame lines given to one np.loadtxt call
_FK_JOINT_FRAMES = 1 << 19       # joints x frames of forward kinematics computed at a time


def _number(token: str, source: str, line_number: int, what: str, limit: float | None = None) -> float:
    """``float(token)``, finite and (with ``limit``) at most ``limit`` in size; else MotionError naming the line."""
    try:
        value = float(token)
    except ValueError:
        raise MotionError(f"{source}: line {line_number}: {what} {token!r} is not a number") from None
    if not np.isfinite(value):
        raise MotionError(f"{source}: line {line_number}: {what} is {token!r} (NaN or infinite)")
    if limit is not None and abs(value) > limit:
        raise MotionError(f"{source}: line {line_number}: {what} {token} is out of range "
                          f"(at most {limit:g} in size)")
    return value


def _read_lines(stream: IO[bytes]) -> Iterator[tuple[int, bytes]]:
    """(line number from 1, line without its ending) of a binary stream, read in blocks.

    ``\\n``, ``\\r\\n`` and ``\\r`` all end a line; only the current block and line are held in memory.
    """
    number, parts = 0, []
    while True:
        block = stream.read(_READ_BLOCK)
        if not block:
            break
        # The last line ending in the block, but not a final "\r" (it may be the first half of "\r\n").
        end = max(block.rfind(b"\n"), block.rfind(b"\r", 0, len(block) - 1))
        if end < 0:
            parts.append(block)
            continue
        head = b"".join(parts) + block[:end + 1]
        parts = [block[end + 1:]]
        for line in head.splitlines():
            number += 1
            yield number, line
    for line in b"".join(parts).splitlines():
        number += 1
        yield number, line


def _decode(raw: bytes) -> str:
    """A HIERARCHY line as text: UTF-8, else Latin-1 (which reads any byte); a byte-order mark dropped."""
    try:
        return raw.decode("utf-8").lstrip("\ufeff")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def _no_motion(source: str) -> MotionError:
    return MotionError(f"{source}: no MOTION section after the HIERARCHY (file truncated?)")


def parse_bvh_file(text: str, source: str = "<string>") -> BvhFile:
    """Parse BVH text into a ``BvhFile``; MotionError naming ``source`` for any malformed part."""
    if not isinstance(text, str):
        raise MotionError(f"{source}: BVH text must be a str, got {type(text).__name__}")
    data = text.encode("utf-8", "surrogatepass")
    return _parse_stream(io.BytesIO(data), len(data), source)


def _parse_stream(stream: IO[bytes], size: int, source: str) -> BvhFile:
    """Parse a BVH file from a binary stream of ``size`` bytes, line by line (see ``parse_bvh_file``).

    The frame lines are parsed in blocks straight into one (T, C) float64 array, so memory stays
    near the size of that array whatever the size of the file.
    """
    lines = _read_lines(stream)
    first = next((text.strip() for text in (_decode(raw) for _, raw in lines) if text.strip()), "")
    if first.upper() != "HIERARCHY":
        problem = "the file is empty" if not first else f"it starts with {first[:40]!r}"
        raise MotionError(f"{source}: not a BVH file: no HIERARCHY section ({problem})")
    try:
        names, parents, offsets, channels, end_sites = _parse_hierarchy(lines, source)
    except MotionError:
        # A file cut inside its HIERARCHY is reported as truncated, whatever broke first.
        if not any(raw.strip().upper() == b"MOTION" for _, raw in lines):
            raise _no_motion(source) from None
        raise
    columns = [(name, channel) for name, joint_channels in zip(names, channels) for channel in joint_channels]
    if not columns:
        raise MotionError(f"{source}: the HIERARCHY declares no CHANNELS, so the frames hold no values")
    frame_count, frame_time, first_row = _parse_motion_header(lines, source, len(columns), size)
    frames = _parse_frames(itertools.chain(first_row, lines), frame_count, columns, source)
    first_channel = np.cumsum([0] + [len(c) for c in channels[:-1]])
    return BvhFile(names, parents, np.array(offsets, dtype=np.float64), channels,
                   [int(c) for c in first_channel], end_sites, frames, frame_time)


def _parse_hierarchy(lines: Iterator[tuple[int, bytes]], source: str):
    """The joints, from the line after HIERARCHY up to and including the MOTION line.

    Returns (names, parents, offsets, channels, end_sites) as in ``BvhFile``. Joints nested more
    than ``MAX_DEPTH`` deep are refused; lookups are by dict, so any size parses in linear time.
    """
    names: list[str] = []
    index_of: dict[str, int] = {}
    parents: list[int] = []
    offsets: list[list[float]] = []
    channels: list[list[str]] = []
    end_sites: dict[int, np.ndarray] = {}
    stack: list[int] = []          # open joints (-2 marks an End Site block)
    pending: int | None = None     # joint (or -2) declared, waiting for its "{"
    for number, raw in lines:
        tokens = _decode(raw).split()
        if not tokens:
            continue
        keyword = tokens[0].upper()
        if keyword == "MOTION" and len(tokens) == 1:
            break
        if keyword == "HIERARCHY":
            continue
        if keyword in ("ROOT", "JOINT"):
            name = " ".join(t for t in tokens[1:] if t != "{")
            if not name:
                raise MotionError(f"{source}: line {number}: {tokens[0]} without a name")
            if keyword == "JOINT" and not stack:
                raise MotionError(f"{source}: line {number}: JOINT {name} outside any ROOT")
            if name in index_of:
                raise MotionError(f"{source}: line {number}: joint name {name!r} used twice")
            parent = stack[-1] if stack else -1
            if parent == -2:
                raise MotionError(f"{source}: line {number}: JOINT {name} inside an End Site")
            if len(stack) >= MAX_DEPTH:
                raise MotionError(f"{source}: line {number}: joint {name!r} is nested more than {MAX_DEPTH} "
                                  f"joints deep; real skeletons have far fewer levels (file damaged?)")
            index_of[name] = len(names)
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
            offset = [_number(t, source, number, "OFFSET value", MAX_ABS_VALUE) for t in tokens[1:]]
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
    else:
        raise _no_motion(source)
    if stack or pending is not None:
        raise MotionError(f"{source}: HIERARCHY has unclosed braces before MOTION (file truncated?)")
    if not names:
        raise MotionError(f"{source}: HIERARCHY has no joints")
    return names, parents, offsets, channels, end_sites


def _parse_motion_header(lines: Iterator[tuple[int, bytes]], source: str, width: int,
                         size: int) -> tuple[int, float, list[tuple[int, bytes]]]:
    """The 'Frames:' and 'Frame Time:' lines after MOTION -> (frames, frame time, [first frame line]).

    A frame count that needs more numbers than the file's ``size`` bytes could hold is refused
    before anything is allocated for it; the frame time must lie in ``FRAME_TIME_RANGE``.
    """
    frame_count = frame_time = None
    after: list[tuple[int, bytes]] = []
    for number, raw in lines:
        line = raw.decode("latin-1").strip()
        if not line:
            continue
        key, _, value = line.partition(":")
        key, value = key.strip().lower(), value.strip() or "?"
        if key == "frames":
            count = _number(value, source, number, "Frames")
            if count != int(count) or count < 0:
                raise MotionError(f"{source}: line {number}: Frames {value} is not a whole number of frames")
            frame_count = int(count)
            if frame_count * width > size // 2 + 1:  # every number takes at least 2 bytes with its separator
                raise MotionError(f"{source}: line {number}: 'Frames: {value}' claims more frames of {width} "
                                  f"channels than the file's {size} bytes can hold (truncated or damaged)")
        elif key == "frame time":
            frame_time = _number(value, source, number, "Frame Time")
            low, high = FRAME_TIME_RANGE
            if frame_time <= 0:
                raise MotionError(f"{source}: line {number}: Frame Time must be positive, got {value}")
            if not low <= frame_time <= high:
                raise MotionError(f"{source}: line {number}: Frame Time {value} is out of range: expected "
                                  f"{low:g} to {high:g} seconds per frame ({1 / low:g} to {1 / high:g} fps)")
        else:
            after = [(number, raw)]
            break
        if frame_count is not None and frame_time is not None:
            break
    if frame_count is None or frame_time is None:
        raise MotionError(f"{source}: MOTION section lacks a 'Frames:' or 'Frame Time:' line")
    if frame_count <= 0:
        raise MotionError(f"{source}: the file has zero frames (Frames: {frame_count})")
    return frame_count, float(frame_time), after


def _parse_frames(lines: Iterator[tuple[int, bytes]], frame_count: int, columns: list[tuple[str, str]],
                  source: str) -> np.ndarray:
    """The first ``frame_count`` non-empty lines -> (frame_count, C) float64, parsed in blocks."""
    frames = np.empty((frame_count, len(columns)), dtype=np.float64)
    filled = 0
    block: list[bytes] = []
    numbers: list[int] = []
    block_bytes = 0
    for number, raw in lines:
        if not raw.strip():
            continue
        block.append(raw)
        numbers.append(number)
        block_bytes += len(raw)
        if filled + len(block) == frame_count or block_bytes >= _PARSE_BLOCK:
            _parse_block(block, numbers, frames, filled, columns, source)
            filled += len(block)
            block, numbers, block_bytes = [], [], 0
            if filled == frame_count:
                return frames
    if block:
        _parse_block(block, numbers, frames, filled, columns, source)
        filled += len(block)
    raise MotionError(f"{source}: truncated: 'Frames: {frame_count}' but only {filled} frame lines follow")


def _parse_block(block: list[bytes], numbers: list[int], frames: np.ndarray, start: int,
                 columns: list[tuple[str, str]], source: str) -> None:
    """Parse frame lines ``block`` (file lines ``numbers``) into ``frames[start:]``; MotionError naming the line."""
    try:
        values = np.loadtxt(block, dtype=np.float64, comments=None, ndmin=2, encoding="latin-1")
    except ValueError as error:
        raise _explain_bad_block(block, numbers, start, columns, source, error) from None
    if values.shape != (len(block), len(columns)):
        raise _explain_bad_block(block, numbers, start, columns, source, None)
    bad = ~(np.abs(values) <= MAX_ABS_VALUE)  # NaN compares false, so it counts as bad
    if bad.any():
        row, column = (int(i) for i in np.argwhere(bad)[0])
        token = block[row].decode("latin-1").split()[column]
        joint, channel = columns[column]
        problem = ("NaN or infinite" if not np.isfinite(values[row, column])
                   else f"out of range: at most {MAX_ABS_VALUE:g} in size")
        raise MotionError(f"{source}: line {numbers[row]} (frame {start + row}): {channel} of joint {joint!r} "
                          f"is {token} ({problem})")
    frames[start:start + len(block)] = values


def _explain_bad_block(block: list[bytes], numbers: list[int], start: int, columns: list[tuple[str, str]],
                       source: str, error: ValueError | None) -> MotionError:
    """The MotionError for the first frame line of ``block`` that np.loadtxt could not read."""
    for row, raw in enumerate(block):
        tokens = raw.decode("latin-1").split()
        if len(tokens) != len(columns):
            return MotionError(f"{source}: line {numbers[row]} (frame {start + row}) has {len(tokens)} numbers, "
                               f"expected {len(columns)} (one per channel)")
        for token in tokens:
            _number(token, source, numbers[row], f"frame {start + row} value")
    return MotionError(f"{source}: lines {numbers[0]}-{numbers[-1]}: frame values cannot be read "
                       f"({'; '.join(str(error).splitlines()) if error else 'unexpected layout'})")


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


def _frame_range(bvh: BvhFile, start: int, stop: int) -> BvhFile:
    """The same file with only frames ``start:stop`` (a view, nothing copied)."""
    return BvhFile(**{**bvh.__dict__, "frames": bvh.frames[start:stop]})


def _smpl_joints(bvh: BvhFile, resolved: dict[str, str], source: str, scale: float | None) -> np.ndarray:
    """(T, 22, 3) float32 SMPL joint positions in metres (file axes) from a parsed file and resolved map.

    Forward kinematics runs on blocks of frames (``_FK_JOINT_FRAMES``), so its temporaries stay
    small however long the file is.
    """
    index = {name: i for i, name in enumerate(bvh.names)}
    mapped = {joint: index[bone] for joint, bone in resolved.items()}
    needed = list(mapped.values()) + _chain(bvh, mapped["pelvis"], mapped["neck"])

    if scale is None:
        first = forward_kinematics(_frame_range(bvh, 0, 1), needed)[0]
        legs = [np.linalg.norm(np.diff(first[_chain(bvh, mapped["pelvis"], mapped[ankle])], axis=0), axis=-1).sum()
                for ankle in ("left_ankle", "right_ankle")]
        scale = _infer_scale(float(np.mean(legs)), source)

    frames = len(bvh.frames)
    step = max(1, _FK_JOINT_FRAMES // len(bvh.names))
    joints = np.empty((frames, NUM_JOINTS, 3), dtype=np.float32)
    for start in range(0, frames, step):
        positions = forward_kinematics(_frame_range(bvh, start, start + step), needed)
        positions *= scale
        part = np.full((len(positions), NUM_JOINTS, 3), np.nan)
        for joint, bvh_index in mapped.items():
            part[:, JOINT_NAMES.index(joint)] = positions[:, bvh_index]

        def file_spine(below: int, above: int, positions: np.ndarray = positions) -> np.ndarray:
            """Positions (T, K, 3) of the file's joints from one mapped SMPL spine joint up to another."""
            return positions[:, _chain(bvh, mapped[JOINT_NAMES[below]], mapped[JOINT_NAMES[above]])]
        # Missing spine joints: along the file's own spine; missing collars: on spine3 -> shoulder.
        joints[start:start + step] = fill_missing_joints(part, spine_polyline=file_spine)
    return joints


def _body_up(joints: np.ndarray) -> np.ndarray:
    """(3,) median over frames of (head - pelvis) + (pelvis - mid-ankles): the body's up, file axes."""
    pelvis, head = joints[:, 0], joints[:, JOINT_NAMES.index("head")]
    ankles = joints[:, [JOINT_NAMES.index("left_ankle"), JOINT_NAMES.index("right_ankle")]].mean(axis=1)
    return np.median((head - pelvis) + (pelvis - ankles), axis=0)


def _z_dominant(up: np.ndarray) -> bool:
    return bool(up[2] > abs(up[1]) and up[2] > abs(up[0]))


def _floor_axis(joints: np.ndarray, steady: float = 0.15, wander: float = 0.3) -> str | None:
    """"y" or "z" when the clip's lowest point clearly keeps to one floor along that axis, else None.

    Per frame the lowest joint along an axis; its spread over the clip (5th-95th percentile,
    metres) stays within ``steady`` along the true up axis (a floor: standing feet, a lying body)
    while along the other it wanders by ``wander`` and three times as much (the body turning
    from upright to flat moves its lowest point along the ground). None when no axis is clear
    (e.g. a person standing still: both spreads small).
    """
    spread = {}
    for name, axis in (("y", 1), ("z", 2)):
        lowest = joints[..., axis].min(axis=1)
        spread[name] = float(np.percentile(lowest, 95) - np.percentile(lowest, 5))
    low, high = sorted(spread, key=spread.get)
    if spread[low] <= steady and spread[high] >= max(wander, 3.0 * spread[low]):
        return low
    return None


def _rest_pose(bvh: BvhFile, resolved: dict[str, str]) -> np.ndarray:
    """(22, 3) the skeleton's rest pose (the OFFSETs summed down each chain, file units and axes)
    at the mapped SMPL joints; NaN where a joint is not mapped."""
    world = np.zeros((len(bvh.names), 3))
    for joint, parent in enumerate(bvh.parents):        # parents are listed before their children
        world[joint] = bvh.offsets[joint] + (world[parent] if parent >= 0 else 0.0)
    index = {name: i for i, name in enumerate(bvh.names)}
    rest = np.full((NUM_JOINTS, 3), np.nan)
    for joint, bone in resolved.items():
        rest[JOINT_NAMES.index(joint)] = world[index[bone]]
    return rest


def _to_y_up(joints: np.ndarray, rest: np.ndarray | None = None) -> np.ndarray:
    """Turn a Z-up clip to Y up: (x, y, z) -> (x, z, -y), when Z is the up axis.

    The clip is Z-up when the body's median up (``_body_up``) points mostly along +Z. ``rest``
    (22, 3), the skeleton's rest pose in the same axes, settles a clip whose body lies flat for
    most of its frames (a take of lying down, head along +Z in a Y-up file): when the rest pose
    and the motion disagree on the up axis, the floor decides (``_floor_axis``: the axis along
    which the lowest point keeps to one level), and without a clear floor the motion does.
    """
    z_up = _z_dominant(_body_up(joints))
    rest_up = None if rest is None else _body_up(rest[None])
    if rest_up is not None and np.linalg.norm(rest_up) > 0 and _z_dominant(rest_up) != z_up:
        floor = _floor_axis(joints)
        z_up = z_up if floor is None else floor == "z"
    if z_up:
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
        bvh = _frame_range(bvh, 1, len(bvh.frames))
    joints = _smpl_joints(bvh, resolved, source, bone_map.bvh.get("scale_to_metres"))
    try:
        return Motion(_to_y_up(joints, _rest_pose(bvh, resolved)), bvh.fps)
    except MotionError as error:
        raise MotionError(f"{source}: {error}") from None


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
    """Read and parse a BVH file (hierarchy and channel values, no bone map); MotionError naming the file.

    The file is read as a stream (see ``_parse_stream``): memory stays near the size of its frame
    array, not of its text.
    """
    path = Path(path)
    try:
        check_input_file(path, "BVH")
        with open(path, "rb") as stream:
            return _parse_stream(stream, os.fstat(stream.fileno()).st_size, str(path))
    except OSError as error:
        raise MotionError(f"BVH file {path} cannot be read: {error.strerror or error}") from None


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
