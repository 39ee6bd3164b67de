"""Acclaim ASF (skeleton) + AMC (motion) files -> ``engine.Motion`` (SMPL 22 joints, metres, Y up).

numpy only, like ``engine.formats.bvh``. ``read_asf`` parses a skeleton, ``read_amc`` its motion,
``asf_amc_to_motion`` / ``read_asf_amc`` give the Motion.

Conventions honoured (the Acclaim format as written by Vicon for CMU and HDM05):

* ``:units``: ``length L`` is a multiplier: file lengths divided by L are inches (CMU's FAQ:
  metres = value * (1/0.45) * 2.54/100 for ``length 0.45``). If that gives an implausible leg
  (not 0.55-1.2 m from pelvis to ankle) the unit is inferred like BVH (``engine.formats.bvh.UNIT_SCALES``).
  ``angle deg|rad`` is the unit of ``axis``, ``orientation`` and the AMC angles (an AMC
  ``:DEGREES`` / ``:RADIANS`` header overrides it for the AMC).
* ``:root``: ``order`` lists the root's AMC values (``TX TY TZ RX RY RZ`` in any order);
  ``axis`` is the order of ``orientation``; ``position`` is used when the AMC gives no translation.
* ``:bonedata``: ``direction`` (rest direction, world axes), ``length``, ``axis ax ay az ORDER``
  and ``dof`` (the order of the bone's AMC values; rx ry rz, tx ty tz and l accepted, only the
  rotations move the skeleton).
* Euler angles: the first listed axis is applied first, so ``XYZ`` (or ``rx ry rz``) is
  R = Rz @ Ry @ Rx (column vectors).
* Forward kinematics: C = the bone's ``axis`` rotation, M = its AMC rotation; the bone's world
  rotation W = W_parent @ C @ M @ C^-1 (the root: C_root @ M_root @ C_root^-1), and its end =
  its start + length * W @ direction. A bone starts at its parent's end; the root bone at the
  AMC root position. An SMPL joint mapped to a bone sits at that bone's START (as a BVH joint
  sits at its offset), e.g. left_knee <- ltibia.

AMC has no frame rate: ``fps`` defaults to 120 (CMU and HDM05 capture rate). Headers are read
as UTF-8 or else Latin-1 (HDM05 files carry a German path in a comment). Every malformed file is
one ``MotionError`` naming the file and, where there is one, the line.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .bone_maps import BoneMap, load_bone_map
from ..errors import MotionError
from ..files import read_input_bytes
from ..motion import JOINT_NAMES, NUM_JOINTS, Motion, fill_missing_joints

DEFAULT_FPS = 120.0
MAX_ABS_VALUE = 1e6           # largest |number| in an ASF or AMC (file units, degrees)
MAX_BONES = 1000
MAX_FILE_BYTES = 1 << 30
INCH = 0.0254

# The Acclaim (CMU / HDM05) bone names on SMPL's joints; a joint sits at its bone's start.
# Like the CMU BVH preset (assets/bone_maps/cmu.json), spine2 and the collars are filled in (the
# clavicles start where the neck does). spine3 (thorax start) -> neck (upperneck start) comes out
# ~23 cm on HDM05, close to SMPL's 22 cm; the cgspeed CMU BVH gives ~9 cm there, as it seems to
# drop the thorax bone. Kept here, not in assets/bone_maps, so the BVH preset list is unchanged.
ACCLAIM_BONE_MAP = {
    "name": "Acclaim ASF/AMC (CMU, HDM05)",
    "description": "Vicon/Acclaim skeletons as in the CMU and HDM05 databases; a joint is the start of its bone",
    "prefixes": [""],
    "joints": {
        "pelvis": "root",
        "left_hip": "lfemur", "right_hip": "rfemur",
        "spine1": "upperback",
        "left_knee": "ltibia", "right_knee": "rtibia",
        "left_ankle": "lfoot", "right_ankle": "rfoot",
        "spine3": "thorax",
        "left_foot": "ltoes", "right_foot": "rtoes",
        "neck": "upperneck",
        "head": "head",
        "left_shoulder": "lhumerus", "right_shoulder": "rhumerus",
        "left_elbow": "lradius", "right_elbow": "rradius",
        "left_wrist": "lwrist", "right_wrist": "rwrist",
    },
}



def acclaim_bone_map() -> BoneMap:
    """``ACCLAIM_BONE_MAP`` as a BoneMap (source 'acclaim')."""
    return BoneMap.from_dict(ACCLAIM_BONE_MAP, source="acclaim")


_AXES = {"X": 0, "Y": 1, "Z": 2}
_DOFS = ("rx", "ry", "rz", "tx", "ty", "tz", "l")


@dataclass
class AsfBone:
    name: str
    direction: np.ndarray        # (3,) unit rest direction, world axes
    length: float                # file units
    axis: np.ndarray             # (3,) radians
    axis_order: str              # e.g. "XYZ"
    dof: list[str]               # e.g. ["rx", "ry", "rz"]
    line: int


@dataclass
class AsfSkeleton:
    """A parsed ASF file. ``bones`` holds the root first (name 'root', zero length), then every
    bone so that parents come before their children; ``parents[name]`` is the parent's name."""

    source: str
    name: str
    length_unit: float
    angle_unit: str              # "deg" or "rad"
    root_order: list[str]        # e.g. ["TX", "TY", "TZ", "RX", "RY", "RZ"]
    root_position: np.ndarray    # (3,) file units
    bones: dict[str, AsfBone] = field(default_factory=dict)
    parents: dict[str, str] = field(default_factory=dict)

    @property
    def names(self) -> list[str]:
        return list(self.bones)

    def dof(self, bone: str) -> list[str]:
        return [d.upper() for d in self.root_order] if bone == "root" else self.bones[bone].dof


@dataclass
class AmcMotion:
    """AMC values per bone: ``values[bone]`` is (T, len(dof)) float64, angles in radians."""

    source: str
    frame_count: int
    values: dict[str, np.ndarray]


# ----------------------------------------------------------------------------- reading text

def _read_lines(path: str | Path, what: str) -> tuple[str, list[str]]:
    """(source, lines) of a text file, UTF-8 or else Latin-1; MotionError naming the file."""
    path = Path(path)
    raw = read_input_bytes(path, what, MAX_FILE_BYTES)
    try:
        text = raw.decode("utf-8").lstrip("\ufeff")
    except UnicodeDecodeError:
        text = raw.decode("latin-1")
    if b"\0" in raw:
        raise MotionError(f"{path}: not an {what} file (it holds NUL bytes; binary?)")
    if not text.strip():
        raise MotionError(f"{path}: the {what} file is empty")
    return str(path), text.splitlines()


def _number(token: str, source: str, line: int, what: str) -> float:
    try:
        value = float(token)
    except ValueError:
        raise MotionError(f"{source}: line {line}: {what} {token!r} is not a number") from None
    if not np.isfinite(value):
        raise MotionError(f"{source}: line {line}: {what} is {token!r} (NaN or infinite)")
    if abs(value) > MAX_ABS_VALUE:
        raise MotionError(f"{source}: line {line}: {what} {token} is out of range (at most {MAX_ABS_VALUE:g} in size)")
    return value


def _numbers(tokens: list[str], count: int, source: str, line: int, what: str) -> list[float]:
    if len(tokens) != count:
        raise MotionError(f"{source}: line {line}: {what} needs {count} numbers, got {len(tokens)}")
    return [_number(t, source, line, what) for t in tokens]


def _order(token: str, source: str, line: int, what: str) -> str:
    order = token.upper()
    if len(order) != 3 or sorted(order) != ["X", "Y", "Z"]:
        raise MotionError(f"{source}: line {line}: {what} order {token!r} is not a permutation of XYZ")
    return order


# ----------------------------------------------------------------------------- ASF

def parse_asf(lines: list[str], source: str = "<string>") -> AsfSkeleton:
    """ASF lines -> ``AsfSkeleton`` (see the module docstring); MotionError naming ``source`` and line."""
    sections: dict[str, int] = {}
    length_unit, angle_unit, name = 1.0, "deg", ""
    root_order: list[str] | None = None
    root_axis, root_position, root_orientation = "XYZ", np.zeros(3), np.zeros(3)
    raw_bones: list[dict] = []
    hierarchy: list[tuple[int, list[str]]] = []
    section, bone, in_hierarchy_block, hierarchy_ended = None, None, False, False
    for number, text in enumerate(lines, 1):
        tokens = text.split()
        if not tokens or tokens[0].startswith("#"):
            continue
        key = tokens[0].lower()
        if key.startswith(":"):
            if bone is not None:
                raise MotionError(f"{source}: line {number}: section {tokens[0]} inside the bone begun on line "
                                  f"{bone['line']} (no 'end')")
            section = key
            if section in sections and section != ":documentation":
                raise MotionError(f"{source}: line {number}: section {tokens[0]} given twice "
                                  f"(first on line {sections[section]})")
            sections.setdefault(section, number)
            if section == ":name":
                name = " ".join(tokens[1:])
            elif section == ":units" and len(tokens) > 1:
                raise MotionError(f"{source}: line {number}: ':units' takes its values on the lines below")
            continue
        if section is None:
            raise MotionError(f"{source}: line {number}: not an ASF file: {text.strip()[:40]!r} before any "
                              f"':section'")
        if section == ":units":
            if len(tokens) != 2:
                raise MotionError(f"{source}: line {number}: a unit line is 'mass|length|angle VALUE'")
            if key == "length":
                length_unit = _number(tokens[1], source, number, "length unit")
                if length_unit <= 0:
                    raise MotionError(f"{source}: line {number}: length unit {tokens[1]} must be positive")
            elif key == "angle":
                angle_unit = tokens[1].lower()[:3]
                if angle_unit not in ("deg", "rad"):
                    raise MotionError(f"{source}: line {number}: angle unit {tokens[1]!r} is not deg or rad")
        elif section == ":root":
            if key == "order":
                root_order = [t.upper() for t in tokens[1:]]
                bad = [t for t in root_order if t.lower() not in _DOFS[:6]]
                if bad or len(set(root_order)) != len(root_order) or not root_order:
                    raise MotionError(f"{source}: line {number}: root order {' '.join(tokens[1:])!r}: each of "
                                      f"TX TY TZ RX RY RZ at most once")
            elif key == "axis":
                if len(tokens) != 2:
                    raise MotionError(f"{source}: line {number}: root axis needs one order like XYZ")
                root_axis = _order(tokens[1], source, number, "root axis")
            elif key == "position":
                root_position = np.array(_numbers(tokens[1:], 3, source, number, "root position"))
            elif key == "orientation":
                root_orientation = np.array(_numbers(tokens[1:], 3, source, number, "root orientation"))
        elif section == ":bonedata":
            if key == "begin":
                if bone is not None:
                    raise MotionError(f"{source}: line {number}: 'begin' inside the bone begun on line {bone['line']}")
                if len(raw_bones) >= MAX_BONES:
                    raise MotionError(f"{source}: line {number}: more than {MAX_BONES} bones")
                bone = {"line": number, "dof": [], "axis": None}
            elif bone is None:
                raise MotionError(f"{source}: line {number}: {tokens[0]!r} outside a begin/end bone block")
            elif key == "end":
                for needed in ("name", "direction", "length", "axis"):
                    if needed not in bone or bone[needed] is None:
                        raise MotionError(f"{source}: line {number}: the bone begun on line {bone['line']} "
                                          f"has no '{needed}'")
                raw_bones.append(bone)
                bone = None
            elif key == "name":
                if len(tokens) != 2:
                    raise MotionError(f"{source}: line {number}: a bone name is one word")
                bone["name"] = tokens[1]
            elif key == "direction":
                direction = np.array(_numbers(tokens[1:], 3, source, number, "direction"))
                norm = np.linalg.norm(direction)
                bone["direction"] = direction / norm if norm > 0 else direction
            elif key == "length":
                bone["length"] = _numbers(tokens[1:], 1, source, number, "length")[0]
                if bone["length"] < 0:
                    raise MotionError(f"{source}: line {number}: bone length {tokens[1]} is negative")
            elif key == "axis":
                if len(tokens) != 5:
                    raise MotionError(f"{source}: line {number}: 'axis' is three angles and an order, e.g. "
                                      f"'axis 0 0 20 XYZ'")
                bone["axis"] = np.array(_numbers(tokens[1:4], 3, source, number, "axis"))
                bone["axis_order"] = _order(tokens[4], source, number, "axis")
            elif key == "dof":
                dof = [t.lower() for t in tokens[1:]]
                bad = [t for t in dof if t not in _DOFS]
                if bad or len(set(dof)) != len(dof):
                    raise MotionError(f"{source}: line {number}: dof {' '.join(tokens[1:])!r}: each of "
                                      f"{' '.join(_DOFS)} at most once")
                bone["dof"] = dof
            # id, limits, bodymass, cofmass and unknown keys are not needed for the motion
        elif section == ":hierarchy":
            if key == "begin":
                in_hierarchy_block = True
            elif key == "end":
                in_hierarchy_block, hierarchy_ended = False, True
            elif not in_hierarchy_block:
                raise MotionError(f"{source}: line {number}: hierarchy line outside begin/end")
            else:
                hierarchy.append((number, tokens))
    if bone is not None:
        raise MotionError(f"{source}: line {bone['line']}: the bone begun here has no 'end' (file truncated?)")
    for needed in (":root", ":bonedata", ":hierarchy"):
        if needed not in sections:
            raise MotionError(f"{source}: not a complete ASF file: no {needed} section")
    if not hierarchy_ended:
        raise MotionError(f"{source}: line {sections[':hierarchy']}: the :hierarchy has no 'end' (file truncated?)")
    if root_order is None:
        raise MotionError(f"{source}: line {sections[':root']}: the :root has no 'order' line")

    scale = 1.0 if angle_unit == "rad" else np.pi / 180.0
    skeleton = AsfSkeleton(source, name, length_unit, angle_unit, root_order, root_position)
    root_axis_angles = root_orientation * scale
    skeleton.bones["root"] = AsfBone("root", np.zeros(3), 0.0, root_axis_angles, root_axis, [], sections[":root"])
    by_name: dict[str, AsfBone] = {}
    for raw in raw_bones:
        if raw["name"] in by_name or raw["name"] == "root":
            raise MotionError(f"{source}: line {raw['line']}: bone {raw['name']!r} defined twice")
        by_name[raw["name"]] = AsfBone(raw["name"], raw["direction"], raw["length"], raw["axis"] * scale,
                                       raw["axis_order"], raw["dof"], raw["line"])
    children: dict[str, list[str]] = {}
    for number, tokens in hierarchy:
        parent, kids = tokens[0], tokens[1:]
        if parent != "root" and parent not in by_name:
            raise MotionError(f"{source}: line {number}: unknown bone {parent!r} in the hierarchy")
        for kid in kids:
            if kid not in by_name:
                raise MotionError(f"{source}: line {number}: unknown bone {kid!r} in the hierarchy")
            if kid in skeleton.parents:
                raise MotionError(f"{source}: line {number}: bone {kid!r} has two parents")
            skeleton.parents[kid] = parent
            children.setdefault(parent, []).append(kid)
    queue = ["root"]
    while queue:  # breadth-first from the root: parents come before children, cycles never reached
        for kid in children.get(queue.pop(0), []):
            skeleton.bones[kid] = by_name[kid]
            queue.append(kid)
    unreached = [b for b in by_name if b not in skeleton.bones]
    if unreached:
        raise MotionError(f"{source}: line {by_name[unreached[0]].line}: bone {unreached[0]!r} is not connected "
                          f"to the root in the :hierarchy")
    return skeleton


def read_asf(path: str | Path) -> AsfSkeleton:
    """Read an ASF skeleton file; MotionError naming the file (and line) for anything malformed."""
    source, lines = _read_lines(path, "ASF")
    return parse_asf(lines, source)


# ----------------------------------------------------------------------------- AMC

def parse_amc(lines: list[str], skeleton: AsfSkeleton, source: str = "<string>") -> AmcMotion:
    """AMC lines -> ``AmcMotion`` for ``skeleton``; MotionError naming ``source`` and the line."""
    degrees = skeleton.angle_unit == "deg"
    moving = [b for b in skeleton.bones if skeleton.dof(b)]
    rows: dict[str, list[list[float]]] = {b: [] for b in moving}
    frame_line, seen, frame_count, last_frame = 0, set(), 0, None

    def close_frame() -> None:
        missing = [b for b in moving if b not in seen]
        if missing:
            raise MotionError(f"{source}: line {frame_line}: frame {last_frame} lacks bone(s) {', '.join(missing[:5])}")

    for number, text in enumerate(lines, 1):
        tokens = text.split()
        if not tokens or tokens[0].startswith("#"):
            continue
        if tokens[0].startswith(":"):
            if frame_count:
                raise MotionError(f"{source}: line {number}: header {tokens[0]} after the first frame")
            if tokens[0].upper() == ":DEGREES":
                degrees = True
            elif tokens[0].upper() == ":RADIANS":
                degrees = False
            continue
        if len(tokens) == 1 and tokens[0].isdigit():
            if frame_count:
                close_frame()
            frame_count += 1
            last_frame, frame_line, seen = tokens[0], number, set()
            continue
        if not frame_count:
            raise MotionError(f"{source}: line {number}: {text.strip()[:40]!r} before the first frame number")
        bone = tokens[0]
        if bone not in rows:
            known = "it has no dof" if bone in skeleton.bones else "not in the skeleton"
            raise MotionError(f"{source}: line {number}: unknown bone {bone!r} ({known}, {skeleton.source})")
        if bone in seen:
            raise MotionError(f"{source}: line {number}: bone {bone!r} twice in frame {last_frame}")
        dof = skeleton.dof(bone)
        rows[bone].append(_numbers(tokens[1:], len(dof), source, number, f"{bone} ({' '.join(dof)})"))
        seen.add(bone)
    if not frame_count:
        raise MotionError(f"{source}: no frames (an AMC file holds numbered frames of 'bone values' lines)")
    close_frame()
    factor = np.pi / 180.0 if degrees else 1.0
    values = {}
    for bone, data in rows.items():
        array = np.array(data, dtype=np.float64).reshape(frame_count, -1)
        rotational = [d.lower().startswith("r") for d in skeleton.dof(bone)]
        array[:, rotational] *= factor
        values[bone] = array
    return AmcMotion(source, frame_count, values)


def read_amc(path: str | Path, skeleton: AsfSkeleton) -> AmcMotion:
    """Read an AMC motion file for ``skeleton``; MotionError naming the file and line."""
    source, lines = _read_lines(path, "AMC")
    return parse_amc(lines, skeleton, source)


# ----------------------------------------------------------------------------- kinematics

def _axis_matrix(axis: int, radians: np.ndarray) -> np.ndarray:
    cos, sin = np.cos(radians), np.sin(radians)
    i, j = [(1, 2), (2, 0), (0, 1)][axis]
    out = np.zeros(radians.shape + (3, 3))
    out[..., axis, axis] = 1.0
    out[..., i, i] = cos
    out[..., j, j] = cos
    out[..., i, j] = -sin
    out[..., j, i] = sin
    return out


def _euler(axes: list[int], angles: np.ndarray) -> np.ndarray:
    """(T, k) angles about ``axes`` (first applied first) -> (T, 3, 3): R_k @ ... @ R_1."""
    rotation = np.broadcast_to(np.eye(3), angles.shape[:-1] + (3, 3)).copy()
    for axis, column in zip(axes, np.moveaxis(angles, -1, 0)):
        rotation = _axis_matrix(axis, column) @ rotation
    return rotation


def forward_kinematics(skeleton: AsfSkeleton, motion: AmcMotion) -> dict[str, np.ndarray]:
    """Start position (T, 3), file units and axes, of every bone (the root's: its AMC position)."""
    count = motion.frame_count
    world: dict[str, np.ndarray] = {}
    ends: dict[str, np.ndarray] = {}
    starts: dict[str, np.ndarray] = {}
    for name, bone in skeleton.bones.items():
        dof = [d.lower() for d in skeleton.dof(name)]
        values = motion.values.get(name, np.zeros((count, 0)))
        rot = [i for i, d in enumerate(dof) if d.startswith("r")]
        local = _euler([_AXES[dof[i][1].upper()] for i in rot], values[:, rot])
        c = _euler([_AXES[a] for a in bone.axis_order], bone.axis[None])[0]
        local = c @ local @ c.T
        if name == "root":
            start = np.repeat(skeleton.root_position[None], count, axis=0)
            for i, d in enumerate(dof):
                if d.startswith("t"):
                    start[:, _AXES[d[1].upper()]] = values[:, i]
            world[name], starts[name], ends[name] = local, start, start
            continue
        parent = skeleton.parents[name]
        world[name] = world[parent] @ local
        starts[name] = ends[parent]
        ends[name] = starts[name] + bone.length * np.einsum("tij,j->ti", world[name], bone.direction)
    return starts


def _leg_length(skeleton: AsfSkeleton, resolved: dict[str, str]) -> float:
    """Pelvis -> ankle along the skeleton (mean of both legs), file units."""
    legs = []
    for ankle in ("left_ankle", "right_ankle"):
        bone, total = skeleton.parents.get(resolved[ankle]), 0.0
        while bone is not None and bone != "root" and bone != resolved["pelvis"]:
            total += skeleton.bones[bone].length
            bone = skeleton.parents.get(bone)
        legs.append(total)
    return float(np.mean(legs))


def metres_per_unit(skeleton: AsfSkeleton, resolved: dict[str, str]) -> float:
    """Inches / ``:units length``, checked against the leg length (else inferred like BVH)."""
    from .bvh import PLAUSIBLE_LEG_METRES, _infer_scale
    leg = _leg_length(skeleton, resolved)
    scale = INCH / skeleton.length_unit
    low, high = PLAUSIBLE_LEG_METRES
    if low <= leg * scale <= high:
        return scale
    return _infer_scale(leg, skeleton.source)


def asf_amc_to_motion(skeleton: AsfSkeleton, motion: AmcMotion,
                      bone_map: "BoneMap | dict | str | Path | None" = None,
                      fps: float = DEFAULT_FPS) -> Motion:
    """A parsed ASF + AMC as an ``engine.Motion``: (T, 22, 3) metres, Y up, at ``fps`` (default 120,
    the CMU and HDM05 capture rate; AMC files do not store it). ``bone_map`` defaults to
    ``ACCLAIM_BONE_MAP`` (CMU/HDM05 bone names)."""
    from .bvh import _to_y_up
    source = motion.source
    if not (isinstance(fps, (int, float)) and np.isfinite(fps) and 0 < fps <= 10000):
        raise MotionError(f"{source}: fps {fps!r} must be a number in (0, 10000]")
    try:
        bone_map = acclaim_bone_map() if bone_map is None else load_bone_map(bone_map)
        resolved = bone_map.resolve(skeleton.names)
    except MotionError as error:
        raise MotionError(f"{skeleton.source}: {error}") from None
    scale = metres_per_unit(skeleton, resolved)
    starts = forward_kinematics(skeleton, motion)
    joints = np.full((motion.frame_count, NUM_JOINTS, 3), np.nan)
    for joint, bone in resolved.items():
        joints[:, JOINT_NAMES.index(joint)] = starts[bone] * scale
    # The rest pose (every AMC value 0): the ASF's bone directions, standing, in the file's axes
    # (only the pelvis, head and ankles are read from it: always mapped, never filled).
    rest_starts = forward_kinematics(skeleton, AmcMotion(source, 1, {b: np.zeros((1, v.shape[1]))
                                                                     for b, v in motion.values.items()}))
    rest = np.full((1, NUM_JOINTS, 3), np.nan)
    for joint, bone in resolved.items():
        rest[:, JOINT_NAMES.index(joint)] = rest_starts[bone] * scale

    def spine(below: int, above: int) -> np.ndarray:
        top, bottom = resolved[JOINT_NAMES[above]], resolved[JOINT_NAMES[below]]
        chain = [top]
        while chain[-1] not in (bottom, "root"):
            chain.append(skeleton.parents[chain[-1]])
        if chain[-1] != bottom:
            chain = [top, bottom]
        return np.stack([starts[b] * scale for b in chain[::-1]], axis=1)

    try:
        joints = fill_missing_joints(joints, spine_polyline=spine)
        return Motion(_to_y_up(joints.astype(np.float32), rest[0]), float(fps))
    except MotionError as error:
        raise MotionError(f"{source}: {error}") from None


def read_asf_amc(asf: str | Path, amc: str | Path, bone_map: "BoneMap | dict | str | Path | None" = None,
                 fps: float = DEFAULT_FPS) -> Motion:
    """Read an ASF skeleton and an AMC motion into an ``engine.Motion`` (see ``asf_amc_to_motion``)."""
    skeleton = read_asf(asf)
    return asf_amc_to_motion(skeleton, read_amc(amc, skeleton), bone_map, fps)


def find_asf(amc: str | Path) -> Path:
    """The ASF for an AMC file when none is given: the .asf beside it whose name is the longest
    prefix of the AMC's (HDM_bd.asf for HDM_bd_walk_001_120.amc, 02.asf for 02_01.amc), else the
    only .asf there; MotionError when there is none or several."""
    amc = Path(amc)
    try:
        candidates = sorted(p for p in amc.parent.glob("*") if p.suffix.lower() == ".asf" and p.is_file())
    except OSError:
        candidates = []
    prefixed = [p for p in candidates if amc.stem.lower().startswith(p.stem.lower())]
    if prefixed:
        return max(prefixed, key=lambda p: len(p.stem))
    if len(candidates) == 1:
        return candidates[0]
    found = "none" if not candidates else f"{len(candidates)}: {', '.join(p.name for p in candidates[:5])}"
    raise MotionError(f"{amc}: an AMC file needs its ASF skeleton (--asf FILE.asf); .asf files beside it: {found}")
