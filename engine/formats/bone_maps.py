"""Bone maps: which bone or BVH joint of a rig plays each of SMPL's 22 joints.

A bone map is a JSON file (``assets/bone_maps/<id>.json``, format in that folder's README.md)::

    {"name": "Mixamo", "description": "...", "prefixes": ["mixamorig:", ""],
     "joints": {"pelvis": "Hips", "left_hip": "LeftUpLeg", ...},
     "bvh": {"scale_to_metres": 0.01, "first_frame_is_tpose": false}}

``joints`` maps an SMPL joint name (``engine.motion.JOINT_NAMES``) to a source bone name; the SMPL
joint sits at the head (origin) of that bone. spine1, spine2, spine3 and the collars may be left
out (``engine.motion.FILLABLE_JOINTS``: ``fill_missing_joints`` places them); every other joint
is required.

Pure Python + json: no numpy, no bpy, so the Blender side can use it too.
"""
from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

from ..errors import MotionError
from ..motion import FILLABLE_JOINTS, JOINT_NAMES

REQUIRED_JOINTS: tuple[str, ...] = tuple(j for j in JOINT_NAMES if j not in FILLABLE_JOINTS)
BVH_HINTS: dict[str, type | tuple[type, ...]] = {"scale_to_metres": (int, float), "first_frame_is_tpose": bool}
TOP_LEVEL_KEYS = ("name", "description", "prefixes", "joints", "bvh")
SCALE_RANGE = (1e-6, 1e3)      # metres per file unit a map's bvh.scale_to_metres may give
MAX_FILE_BYTES = 1 << 20       # a bone-map JSON file larger than this is refused unread
# Presets in the order auto-detection prefers them when two fit equally well.
PRESET_ORDER = ("bandai", "cmu", "mixamo", "smpl", "smplx", "cc_base", "metarig", "rigify")

_SEPARATORS = re.compile(r"[\s_.:\-|]+")


def assets_dir() -> Path:
    """The assets folder: $MOTIONGPT_ASSETS if set, otherwise <repo>/assets next to engine/."""
    override = os.environ.get("MOTIONGPT_ASSETS")
    if override:
        return Path(override)
    return Path(__file__).resolve().parents[2] / "assets"


def presets_dir() -> Path:
    """Folder of the bundled bone-map JSON files."""
    return assets_dir() / "bone_maps"


def normalize_name(name: str) -> str:
    """Case- and separator-insensitive key of a bone name: 'mixamorig:Left_Arm' -> 'mixamorigleftarm'."""
    return _SEPARATORS.sub("", name).lower()


def _strip_namespace(name: str) -> str:
    """'mixamorig7:Hips' -> 'Hips', 'Armature|Hips' -> 'Hips' (text after the last ':' or '|')."""
    return re.split(r"[:|]", name)[-1]


@dataclass
class BoneMap:
    """SMPL joint name -> source bone name, with optional name prefixes and BVH hints."""

    name: str
    joints: dict[str, str]
    description: str = ""
    prefixes: list[str] = field(default_factory=lambda: [""])
    bvh: dict = field(default_factory=dict)
    source: str = "<dict>"  # preset id or file path, for messages

    @classmethod
    def from_dict(cls, data: object, source: str = "<dict>") -> "BoneMap":
        """Validate a parsed bone-map JSON object; MotionError naming ``source`` when it is wrong."""
        def fail(problem: str) -> MotionError:
            return MotionError(f"bone map {source}: {problem}")

        if not isinstance(data, dict):
            raise fail(f"must be a JSON object, got {type(data).__name__}")
        unknown = sorted(set(data) - set(TOP_LEVEL_KEYS))
        if unknown:
            raise fail(f"unknown keys {unknown}; allowed keys are {list(TOP_LEVEL_KEYS)}")
        name = data.get("name", Path(source).stem)
        description = data.get("description", "")
        for key, value in (("name", name), ("description", description)):
            if not isinstance(value, str):
                raise fail(f"'{key}' must be a string, got {type(value).__name__}")
        prefixes = data.get("prefixes", [""])
        if not isinstance(prefixes, list) or not all(isinstance(p, str) for p in prefixes):
            raise fail(f"'prefixes' must be a list of strings, got {prefixes!r}")
        joints = data.get("joints")
        if not isinstance(joints, dict):
            raise fail(f"'joints' must be an object of SMPL joint name -> bone name, got {type(joints).__name__}")
        unknown_joints = sorted(set(joints) - set(JOINT_NAMES))
        if unknown_joints:
            raise fail(f"unknown SMPL joint names {unknown_joints}; valid names are {list(JOINT_NAMES)}")
        for joint, bone in joints.items():
            if not isinstance(bone, str) or not bone:
                raise fail(f"joint '{joint}' must map to a non-empty bone name string, got {bone!r}")
        missing = [j for j in REQUIRED_JOINTS if j not in joints]
        if missing:
            raise fail(f"required SMPL joints not mapped: {', '.join(missing)}")
        shared = _shared_bones(joints)
        if shared:
            raise fail(f"{shared}; every SMPL joint needs a bone of its own")
        bvh = data.get("bvh", {})
        if not isinstance(bvh, dict):
            raise fail(f"'bvh' must be an object, got {type(bvh).__name__}")
        for key, value in bvh.items():
            if key not in BVH_HINTS:
                raise fail(f"unknown 'bvh' hint '{key}'; allowed hints are {list(BVH_HINTS)}")
            if not isinstance(value, BVH_HINTS[key]) or (key == "scale_to_metres" and (
                    isinstance(value, bool) or not SCALE_RANGE[0] <= value <= SCALE_RANGE[1])):
                expected = (f"a number from {SCALE_RANGE[0]:g} to {SCALE_RANGE[1]:g}" if key == "scale_to_metres"
                            else "true or false")
                raise fail(f"'bvh.{key}' has a wrong value {value!r}; expected {expected}")
        ordered = {j: joints[j] for j in JOINT_NAMES if j in joints}
        return cls(name=name, joints=ordered, description=description, prefixes=list(prefixes) or [""],
                   bvh=dict(bvh), source=source)

    def to_dict(self) -> dict:
        """The JSON object of this map (the file format)."""
        data = {"name": self.name, "description": self.description, "prefixes": list(self.prefixes),
                "joints": dict(self.joints)}
        if self.bvh:
            data["bvh"] = dict(self.bvh)
        return data

    def match(self, bone_names: Iterable[str]) -> tuple[dict[str, str], list[str], int]:
        """Match this map against a rig's bone names without raising.

        Returns (smpl joint -> actual bone name for every joint found, SMPL joints of the map whose
        bone was not found, how many were found by their exact name). A bone matches when it is
        prefix + name exactly; else case- and separator-insensitively, also after stripping a
        namespace ('rig:Hips') from the rig's names.
        """
        bone_names = list(bone_names)
        exact = set(bone_names)
        loose: dict[str, str] = {}
        for bone in bone_names:  # whole names first, so they win over namespace-stripped ones
            loose.setdefault(normalize_name(bone), bone)
        for bone in bone_names:
            loose.setdefault(normalize_name(_strip_namespace(bone)), bone)
        found: dict[str, str] = {}
        missing: list[str] = []
        exact_count = 0
        for joint, bone in self.joints.items():
            candidates = [prefix + bone for prefix in self.prefixes]
            hit = next((c for c in candidates if c in exact), None)
            if hit is not None:
                exact_count += 1
            else:
                hit = next((loose[normalize_name(c)] for c in candidates if normalize_name(c) in loose), None)
            if hit is None:
                missing.append(joint)
            else:
                found[joint] = hit
        return found, missing, exact_count

    def resolve(self, bone_names: Iterable[str]) -> dict[str, str]:
        """SMPL joint -> the rig's actual bone name, for every mapped joint the rig has.

        Fillable joints (``FILLABLE_JOINTS``) the rig lacks are left out; a missing required joint
        raises MotionError listing every SMPL joint that could not be mapped.
        """
        found, missing, _ = self.match(bone_names)
        missing_required = [j for j in missing if j in REQUIRED_JOINTS]
        if missing_required:
            wanted = ", ".join(f"{j} ({self.joints[j]!r})" for j in missing_required)
            raise MotionError(f"bone map {self.source}: these SMPL joints could not be mapped, "
                              f"their bones are not in the rig: {wanted}")
        shared = _shared_bones(found)
        if shared:
            raise MotionError(f"bone map {self.source}: in this rig {shared}; every SMPL joint needs a bone "
                              f"of its own")
        return found


def _shared_bones(joints: dict[str, str]) -> str:
    """'joints a, b map to the same bone 'X'' for the first bone that several joints use; '' if none."""
    users: dict[str, list[str]] = {}
    for joint, bone in joints.items():
        users.setdefault(bone, []).append(joint)
    bone, shared = next(((b, j) for b, j in users.items() if len(j) > 1), (None, []))
    return f"joints {', '.join(shared)} map to the same bone {bone!r}" if shared else ""


def list_presets() -> list[str]:
    """Ids of the bundled bone maps (file stems in assets/bone_maps), in detection order."""
    folder = presets_dir()
    ids = sorted(p.stem for p in folder.glob("*.json")) if folder.is_dir() else []
    return [i for i in PRESET_ORDER if i in ids] + [i for i in ids if i not in PRESET_ORDER]


def load_bone_map(name_or_path: "str | Path | dict | BoneMap") -> BoneMap:
    """A preset id ('mixamo'), a path to a bone-map JSON file, a dict in that format, or a BoneMap."""
    if isinstance(name_or_path, BoneMap):
        return name_or_path
    if isinstance(name_or_path, dict):
        return BoneMap.from_dict(name_or_path)
    if not isinstance(name_or_path, (str, Path)):
        raise MotionError(f"a bone map is a preset id, a JSON path or a dict, got {type(name_or_path).__name__}")
    text = str(name_or_path)
    looks_like_path = isinstance(name_or_path, Path) or text.endswith(".json") or "/" in text or os.sep in text
    if looks_like_path:
        path = Path(text)
        source = str(path)
    else:
        path = presets_dir() / f"{text}.json"
        source = text
        if not path.is_file():
            raise MotionError(f"unknown bone map preset '{text}'; presets are {list_presets()} "
                              f"(or give a path to a .json file)")
    return BoneMap.from_dict(_read_json(path), source=source)


def _read_json(path: Path) -> object:
    """The JSON value in a bone-map file; MotionError naming the file for anything unreadable.

    Larger than ``MAX_FILE_BYTES`` or nested deeper than Python can parse is refused (a bone map
    is a small, flat object).
    """
    try:
        if path.is_dir():
            raise MotionError(f"bone map file {path} is a folder, not a JSON file")
        if not path.is_file():
            raise MotionError(f"bone map file {path} does not exist")
        if path.stat().st_size > MAX_FILE_BYTES:
            raise MotionError(f"bone map file {path} is {path.stat().st_size} bytes; a bone map is a small "
                              f"JSON object (at most {MAX_FILE_BYTES} bytes)")
        text = path.read_bytes().decode("utf-8-sig")
    except OSError as error:
        raise MotionError(f"bone map file {path} cannot be read: {error.strerror or error}") from None
    except UnicodeDecodeError as error:
        raise MotionError(f"bone map file {path} is not UTF-8 text (byte {error.start}: "
                          f"{error.object[error.start:error.start + 1]!r})") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise MotionError(f"bone map file {path} is not valid JSON: {error}") from None
    except RecursionError:
        raise MotionError(f"bone map file {path} is nested too deeply to be a bone map "
                          f"(a flat JSON object is expected)") from None


def save_bone_map(bone_map: BoneMap, path: str | Path) -> None:
    """Write ``bone_map`` as JSON (the assets/bone_maps format) to ``path``, atomically (``engine.files``)."""
    from ..files import write_text
    write_text(path, json.dumps(bone_map.to_dict(), indent=2) + "\n", encoding="utf-8", what="bone map")


def detect_bone_map(bone_names: Iterable[str]) -> BoneMap:
    """The bundled preset that fits a rig's bone (or BVH joint) names.

    Every preset is matched (with its prefixes, case- and separator-insensitively); a preset fits
    when it finds every required joint. Among fitting presets the best has the fewest of its own
    names missing, then the most joints found, then the most exact-name hits, then comes first in
    ``PRESET_ORDER``. Extra bones (fingers, face, twist bones) are ignored. When nothing fits,
    MotionError lists the SMPL joints the closest preset could not map.
    """
    bone_names = list(bone_names)
    scored = []
    for rank, preset in enumerate(list_presets()):
        bone_map = load_bone_map(preset)
        found, missing, exact_count = bone_map.match(bone_names)
        missing_required = [j for j in missing if j in REQUIRED_JOINTS]
        score = (len(missing_required), len(missing), -len(found), -exact_count, rank)
        scored.append((score, bone_map, missing_required))
    if not scored:
        raise MotionError(f"no bone map presets found in {presets_dir()}")
    score, best, missing_required = min(scored, key=lambda item: item[0])
    if missing_required:
        raise MotionError(
            f"unknown skeleton ({len(bone_names)} bones): no bone map preset fits. The closest, "
            f"'{best.source}' ({best.name}), could not map these SMPL joints: {', '.join(missing_required)}. "
            f"Pass a bone map JSON (see assets/bone_maps/README.md)")
    return best
