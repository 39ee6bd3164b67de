"""CMU motion-prediction exponential-map text files -> ``engine.Motion`` (SMPL 22 joints, metres, Y up).

The files are the CMU Graphics Lab mocap subset prepared for motion prediction by Li, Zhang, Lee
and Lee ("Convolutional Sequence to Sequence Model for Human Dynamics", CVPR 2018; GitHub
chaneyddtt/Convolutional-Sequence-to-Sequence-Model-for-Human-Dynamics, ``data/cmu_mocap``). One
frame per line, 117 comma-separated numbers. numpy + scipy only, like ``engine.formats.asf``.

Facts taken from the upstream code (``src/forward_kinematics_cmu.py``: ``_some_variables``,
``fkl``; ``src/data_utils_cmu.py``: ``expmap2rotmat``, ``readCSVasFloat``) and checked on the data:

* Layout: columns 0-2 are the root position, then 38 joints x 3 exponential-map numbers (joint j
  in columns 3 + 3j .. 5 + 3j; joint 0, the root, in 3-5). The 38 joints are the CMU Acclaim
  skeleton's bone starts plus end sites (``SKELETON`` below, names after the CMU ASF bones). As in
  the cgspeed CMU BVH (``assets/bone_maps/cmu.json``) the thorax bone has length 0 (lowerneck and
  both clavicles start where the thorax does) and so do the wrist bones.
* Bone offsets: the upstream table times 70, a display scale only; the unscaled table is in CMU
  ASF units (``length 0.45``: inches * 0.45, 1 unit = 0.056444 m, ``engine.formats.bvh.UNIT_SCALES['cmu']``).
  The root position is in the same unscaled units: the pelvis sits ~17 units (0.96 m) up and the
  feet then touch y ~ 0, which they would not if either were scaled by 70. In metres: pelvis
  0.97 m up, hip to ankle 0.84 m (an adult of ~1.7 m); the head joint is 0.41 m above the pelvis
  and the top of the head ~1.45 m up, short by the missing thorax (0.12 m), exactly as the
  project's reading of the cgspeed CMU BVH of the same take.
* Root: the position is ABSOLUTE (no velocities: walking takes run e.g. z = -30 -> +29 units with
  a constant height ~17), columns (x, y, z) = (left, up, forward), the AMC root TX TY TZ. Upstream
  ``fkl`` reads them reversed, as (z, y, x); that swaps the travel onto the sideways axis (walkers
  would go sideways to their facing) and is not followed here. The root rotation is ABSOLUTE too
  (upstream's ``revert_coordinate_space``, which would chain it, is only used to display network
  samples, and even there its chaining is commented out).
* Rotations: upstream composes row vectors, ``xyz = offset . R_parent + xyz_parent`` and
  ``R = R_own . R_parent`` with ``R = Rodrigues(r)``; for column vectors that is
  ``W = W_parent @ Rodrigues(r).T`` and ``p = p_parent + W_parent @ offset``.
* Axes: the skeleton's rest pose has left = +X, up = +Y, forward = +Z (the toes point +Z), already
  the engine's convention, so no axis change is needed.
* Frame 0 of every file is not motion: the same rest pose in all 96 files (root rotation 0, the
  root position copied from frame 1, angles jumping ~1.3 rad to frame 1). A first row with zero
  root rotation and the next row's root position is dropped.

Frame rate (``CMU_PREDICTION_FPS``): not stored anywhere. MEASURED as 120 fps, CMU's
capture rate, two ways:

* Cadence. The stride period (the first autocorrelation peak of the fore-aft distance between the
  ankles, along the body's heading) is a median 130.5 frames over the 6 ``walking`` takes and 134
  over the 58 ``walking_extra`` takes. A stride is two steps, so a normal walking cadence of
  1.8-2.0 steps/s puts the rate at 117-134 fps; the 6 ``running`` takes (median stride 87 frames)
  at a running cadence of 2.6-3.0 steps/s give 113-130 fps. At 120 fps walking is 1.84 steps/s at
  a median 1.2 m/s, running 2.76 steps/s at 3.3 m/s; 60 or 30 fps would make it a 0.6 or 0.3 m/s
  shuffle at ~0.9 steps/s.
* Identity. ``train/walking/walking_1.txt`` is CMU trial 02_01 (subject 2, walk): read here it
  matches the project's reading of the cgspeed BVH ``shared/data/cmu/02_01.bvh`` (Frame Time
  1/120) frame for frame, 343 frames each once their rest / T-pose first frame is dropped, every
  joint within 1.3 cm. So the files hold every captured frame (upstream's ``load_data`` halves
  the rate itself by keeping every second row).

SMPL joints come from ``engine.formats.asf.ACCLAIM_BONE_MAP`` (a joint sits at the start of its bone, as
for the ASF/AMC reader); spine2 and the collars are filled in by ``fill_missing_joints`` along the
skeleton's own spine. Every malformed file is one ``MotionError`` naming the file and the line.
"""
from __future__ import annotations

import lzma
import re
import tarfile
import zlib
from pathlib import Path
from typing import Iterator

import numpy as np
from scipy.spatial.transform import Rotation

from .asf import MAX_ABS_VALUE, acclaim_bone_map
from .bvh import UNIT_SCALES
from ..errors import MotionError
from ..files import read_input_bytes
from ..motion import JOINT_NAMES, NUM_JOINTS, Motion, fill_missing_joints

CMU_PREDICTION_FPS = 120.0
COLUMNS = 117
MIN_FRAMES = 2                 # motion frames left after the rest frame is dropped
MAX_FILE_BYTES = 1 << 28
METRES_PER_UNIT = UNIT_SCALES["cmu"]   # CMU ASF 'length 0.45': 1 unit = 1/0.45 inch

# (joint, parent, offset from the parent in ASF units; left +X, up +Y, forward +Z). A joint is the
# start of the CMU Acclaim bone it is named after; '*_end' are end sites. Joint j's rotation is in
# columns 3 + 3j .. 5 + 3j.
SKELETON: tuple[tuple[str, str | None, tuple[float, float, float]], ...] = (
    ("root", None, (0.0, 0.0, 0.0)),
    ("lhipjoint", "root", (0.0, 0.0, 0.0)),
    ("lfemur", "lhipjoint", (1.65674, -1.80282, 0.62477)),
    ("ltibia", "lfemur", (2.5972, -7.13576, 0.0)),
    ("lfoot", "ltibia", (2.49236, -6.8477, 0.0)),
    ("ltoes", "lfoot", (0.19704, -0.54136, 2.14581)),
    ("ltoes_end", "ltoes", (0.0, 0.0, 1.11249)),
    ("rhipjoint", "root", (0.0, 0.0, 0.0)),
    ("rfemur", "rhipjoint", (-1.6107, -1.80282, 0.62476)),
    ("rtibia", "rfemur", (-2.59502, -7.12977, 0.0)),
    ("rfoot", "rtibia", (-2.4678, -6.78024, 0.0)),
    ("rtoes", "rfoot", (-0.23024, -0.63258, 2.13368)),
    ("rtoes_end", "rtoes", (0.0, 0.0, 1.11569)),
    ("lowerback", "root", (0.0, 0.0, 0.0)),
    ("upperback", "lowerback", (0.01961, 2.0545, -0.14112)),
    ("thorax", "upperback", (0.01021, 2.06436, -0.05921)),
    ("lowerneck", "thorax", (0.0, 0.0, 0.0)),
    ("upperneck", "lowerneck", (0.00713, 1.56711, 0.14968)),
    ("head", "upperneck", (0.03429, 1.56041, -0.10006)),
    ("head_end", "head", (0.01305, 1.6256, -0.05265)),
    ("lclavicle", "thorax", (0.0, 0.0, 0.0)),
    ("lhumerus", "lclavicle", (3.54205, 0.90436, -0.17364)),
    ("lradius", "lhumerus", (4.86513, 0.0, 0.0)),
    ("lwrist", "lradius", (3.35554, 0.0, 0.0)),
    ("lhand", "lwrist", (0.0, 0.0, 0.0)),
    ("lfingers", "lhand", (0.66117, 0.0, 0.0)),
    ("lfingers_end", "lfingers", (0.53306, 0.0, 0.0)),
    ("lthumb", "lwrist", (0.0, 0.0, 0.0)),
    ("lthumb_end", "lthumb", (0.5412, 0.0, 0.5412)),
    ("rclavicle", "thorax", (0.0, 0.0, 0.0)),
    ("rhumerus", "rclavicle", (-3.49802, 0.75994, -0.32616)),
    ("rradius", "rhumerus", (-5.02649, 0.0, 0.0)),
    ("rwrist", "rradius", (-3.36431, 0.0, 0.0)),
    ("rhand", "rwrist", (0.0, 0.0, 0.0)),
    ("rfingers", "rhand", (-0.73041, 0.0, 0.0)),
    ("rfingers_end", "rfingers", (-0.58887, 0.0, 0.0)),
    ("rthumb", "rwrist", (0.0, 0.0, 0.0)),
    ("rthumb_end", "rthumb", (-0.59786, 0.0, 0.59786)),
)
NAMES: tuple[str, ...] = tuple(name for name, _, _ in SKELETON)
PARENTS: tuple[int, ...] = tuple(-1 if parent is None else NAMES.index(parent) for _, parent, _ in SKELETON)
OFFSETS = np.array([offset for _, _, offset in SKELETON], dtype=np.float64)
assert 3 + 3 * len(SKELETON) == COLUMNS

# Member names in the archive: <top>/<split>/<folder>/<label>_<n>.txt
_MEMBER = re.compile(r"(?:^|/)(train|test)/([A-Za-z_]+)/([A-Za-z_]+)_(\d+)\.txt$")
FOLDER_LABELS = {"walking_extra": "walking"}


# ----------------------------------------------------------------------------- reading text

def _decode(raw: bytes, source: str) -> str:
    if b"\0" in raw:
        line = raw[:raw.index(b"\0")].count(b"\n") + 1
        raise MotionError(f"{source}: line {line}: NUL byte; "
                          f"not an exponential-map text file (binary?)")
    try:
        return raw.decode("utf-8").lstrip("\ufeff")
    except UnicodeDecodeError as error:
        line = raw[:error.start].count(b"\n") + 1
        raise MotionError(f"{source}: line {line}: not UTF-8 text (byte {raw[error.start]:#04x}); "
                          f"not an exponential-map text file") from None


def _read_text(path: Path) -> tuple[str, str]:
    """(source, text) of a file; MotionError naming the file for anything unreadable."""
    return str(path), _decode(read_input_bytes(path, "exponential-map", MAX_FILE_BYTES), str(path))


def parse_expmap_rows(text: str, source: str = "<string>") -> tuple[np.ndarray, list[int]]:
    """Text -> ((T, 117) float64 rows, their 1-based line numbers). Blank lines are skipped; a line
    with another count of numbers, a non-number, NaN/inf or a value beyond ``MAX_ABS_VALUE`` is a
    MotionError naming ``source`` and the line."""
    tokens: list[str] = []
    line_numbers: list[int] = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        fields = line.split(",")
        if len(fields) != COLUMNS:
            raise MotionError(f"{source}: line {number}: {len(fields)} comma-separated values, expected "
                              f"{COLUMNS} (root position, then 38 joints x 3 exponential-map numbers)")
        tokens.extend(fields)
        line_numbers.append(number)
    if not line_numbers:
        raise MotionError(f"{source}: line 1: the file is empty (no frames)")
    try:
        rows = np.array(tokens, dtype=np.float64).reshape(-1, COLUMNS)
    except ValueError:
        rows = None
    if rows is None or not (np.isfinite(rows) & (np.abs(rows) <= MAX_ABS_VALUE)).all():
        _raise_first_bad(tokens, line_numbers, source)
    return rows, line_numbers


def _raise_first_bad(tokens: list[str], line_numbers: list[int], source: str) -> None:
    for index, token in enumerate(tokens):
        line, column = line_numbers[index // COLUMNS], index % COLUMNS + 1
        try:
            value = float(token)
        except ValueError:
            raise MotionError(f"{source}: line {line}: value {column} {token.strip()[:40]!r} is not a "
                              f"number") from None
        if not np.isfinite(value):
            raise MotionError(f"{source}: line {line}: value {column} is {token.strip()!r} (NaN or infinite)")
        if abs(value) > MAX_ABS_VALUE:
            raise MotionError(f"{source}: line {line}: value {column} {token.strip()} is out of range "
                              f"(at most {MAX_ABS_VALUE:g} in size)")
    raise MotionError(f"{source}: unreadable numbers")  # not reached: the fast path failed for a reason


def drop_rest_frame(rows: np.ndarray, line_numbers: list[int]) -> tuple[np.ndarray, list[int]]:
    """Without the first row when it is the upstream rest frame (zero root rotation, the root
    position of the next row), as in every file of the dataset."""
    if len(rows) >= 2 and not rows[0, 3:6].any() and np.array_equal(rows[0, :3], rows[1, :3]):
        return rows[1:], line_numbers[1:]
    return rows, line_numbers


# ----------------------------------------------------------------------------- kinematics

def forward_kinematics(rows: np.ndarray) -> np.ndarray:
    """(T, 117) rows -> (T, 38, 3) positions of ``NAMES``, ASF units and axes (Y up)."""
    count = len(rows)
    # Rodrigues(r).T is the rotation by -r: the local rotation of a joint for column vectors.
    local = Rotation.from_rotvec(-rows[:, 3:].reshape(-1, 3)).as_matrix().reshape(count, len(NAMES), 3, 3)
    world = np.empty_like(local)
    positions = np.empty((count, len(NAMES), 3))
    for joint, parent in enumerate(PARENTS):
        if parent < 0:
            world[:, joint] = local[:, joint]
            positions[:, joint] = rows[:, :3] + OFFSETS[joint]
            continue
        world[:, joint] = world[:, parent] @ local[:, joint]
        positions[:, joint] = positions[:, parent] + world[:, parent] @ OFFSETS[joint]
    return positions


def rows_to_motion(rows: np.ndarray, fps: float = CMU_PREDICTION_FPS, source: str = "<string>") -> Motion:
    """(T, 117) rows (the rest frame already dropped) -> Motion: SMPL 22 joints, metres, Y up."""
    positions = forward_kinematics(rows) * METRES_PER_UNIT
    resolved = acclaim_bone_map().resolve(NAMES)
    joints = np.full((len(rows), NUM_JOINTS, 3), np.nan)
    for joint, bone in resolved.items():
        joints[:, JOINT_NAMES.index(joint)] = positions[:, NAMES.index(bone)]

    def spine(below: int, above: int) -> np.ndarray:
        bottom = NAMES.index(resolved[JOINT_NAMES[below]])
        chain = [NAMES.index(resolved[JOINT_NAMES[above]])]
        while chain[-1] != bottom and PARENTS[chain[-1]] >= 0:
            chain.append(PARENTS[chain[-1]])
        if chain[-1] != bottom:
            chain = [chain[0], bottom]
        return positions[:, chain[::-1]]

    try:
        return Motion(fill_missing_joints(joints, spine_polyline=spine).astype(np.float32), float(fps))
    except MotionError as error:
        raise MotionError(f"{source}: {error}") from None


def _check_fps(fps: object, source: str) -> float:
    if isinstance(fps, bool) or not isinstance(fps, (int, float, np.integer, np.floating)) \
            or not np.isfinite(fps) or not 0 < fps <= 10000:
        raise MotionError(f"{source}: fps {fps!r} must be a number in (0, 10000]")
    return float(fps)


def parse_expmap(text: str, source: str = "<string>", fps: float = CMU_PREDICTION_FPS) -> Motion:
    """Exponential-map text (one frame a line, 117 numbers) -> ``engine.Motion`` at ``fps``."""
    fps = _check_fps(fps, source)
    if not isinstance(text, str):
        raise MotionError(f"{source}: exponential-map text must be a str, got {type(text).__name__}")
    rows, lines = drop_rest_frame(*parse_expmap_rows(text, source))
    if len(rows) < MIN_FRAMES:
        raise MotionError(f"{source}: line {lines[-1]}: only {len(rows)} motion frame(s) (at least "
                          f"{MIN_FRAMES} are needed; the rest-pose first row does not count)")
    return rows_to_motion(rows, fps, source)


def read_expmap(path_or_text: "str | Path | bytes", source: str | None = None,
                fps: float = CMU_PREDICTION_FPS) -> Motion:
    """A CMU motion-prediction file (a path) or its text (bytes, or a str that is blank or holds a
    comma or a line break) -> ``engine.Motion``: (T, 22, 3) float32 metres, Y up, facing +Z, at
    ``fps`` (default ``CMU_PREDICTION_FPS``, measured). ``source`` names the input in error messages (default: the
    path, or '<string>'). Every problem is a MotionError naming the file and, where there is one,
    the line."""
    if isinstance(path_or_text, (bytes, bytearray)):
        name = source or "<bytes>"
        return parse_expmap(_decode(bytes(path_or_text), name), name, fps)
    is_text = isinstance(path_or_text, str) and (not path_or_text.strip() or "," in path_or_text
                                                 or "\n" in path_or_text)
    if is_text:
        return parse_expmap(path_or_text, source or "<string>", fps)
    if not isinstance(path_or_text, (str, Path)):
        raise MotionError(f"{source or '<input>'}: expected a path, text or bytes, got "
                          f"{type(path_or_text).__name__}")
    path_source, text = _read_text(Path(path_or_text))
    return parse_expmap(text, source or path_source, fps)


# ----------------------------------------------------------------------------- the archive

def take_name(member: str) -> tuple[str, str, str] | None:
    """(name, label, split) for an archive member like 'x/train/walking_extra/walking_7.txt'
    ('cmupred_train_walking_7', 'walking', 'train'); None for anything else."""
    match = _MEMBER.search(member)
    if match is None:
        return None
    split, folder, _stem, number = match.groups()
    label = FOLDER_LABELS.get(folder, folder)
    return f"cmupred_{split}_{label}_{number}", label, split


def iter_prediction_takes(archive_path: str | Path, fps: float = CMU_PREDICTION_FPS
                          ) -> Iterator[tuple[str, str, str, Motion]]:
    """(name, label, split, motion) for every take in ``cmu-prediction-subset.tar.xz``, read in one
    sequential pass, in archive order. ``label`` is the folder name (walking_extra -> walking);
    name is ``cmupred_<split>_<label>_<n>``. MotionError for a missing or broken archive, a bad
    member (naming archive:member and line) or two members with one name."""
    archive = Path(archive_path)
    if not archive.is_file():
        raise MotionError(f"{archive}: CMU motion-prediction archive not found")
    seen: dict[str, str] = {}
    try:
        with tarfile.open(archive, "r:*") as tar:
            for member in tar:
                if not member.isfile():
                    continue
                named = take_name(member.name)
                if named is None:
                    continue
                name, label, split = named
                source = f"{archive.name}:{member.name}"
                if name in seen:
                    raise MotionError(f"{source}: take name {name!r} already used by {seen[name]}")
                seen[name] = member.name
                if member.size > MAX_FILE_BYTES:
                    raise MotionError(f"{source}: {member.size} bytes (at most {MAX_FILE_BYTES})")
                handle = tar.extractfile(member)
                text = _decode(handle.read(), source)
                yield name, label, split, parse_expmap(text, source, fps)
    except (tarfile.TarError, lzma.LZMAError, zlib.error, EOFError, OSError) as error:
        raise MotionError(f"{archive}: cannot read the archive: {error}") from None
