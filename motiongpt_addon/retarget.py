"""SMPL 22-joint motion onto any armature as keyframes, and back (the thin bpy side).

``apply_motion`` turns an ``engine.Motion`` into a new Action on an armature; ``read_motion``
evaluates an armature over a frame range back into an ``engine.Motion``. The geometry lives in
``skeleton_fit`` (pure numpy); this module only reads the rig and writes keys.

Keys written (``apply_motion``): for every mapped bone and every unmapped ancestor of one (e.g.
the metarig's spine.005 between neck and head) one rotation channel set per scene frame, in the
bone's rotation mode; for the pelvis bone also ``location``. Bones that play no joint and are no
ancestor of one (twist, finger, face bones) get no keys.

Rigify generated rigs (``rigify``; recognised with the bone map left to detection or set to the
``rigify`` preset): the motion is read from the DEF- bones, fitted on the ORG- skeleton and keyed
on the FK controls, torso (location: the root motion), hips, chest, neck and head, with the limbs
switched to FK by one key of ``IK_FK`` at the first frame (``fit_pose``, ``check_switched``). The
metarig itself is an ordinary rig (preset ``metarig``).

Locks are respected: a locked channel (``pose_bone.lock_rotation`` / ``lock_location``) gets no
keys and keeps its current value. Euler bones drop just the locked axes; a quaternion or
axis-angle bone with any rotation lock (``lock_rotation``, or ``lock_rotation_w`` when
``lock_rotations_4d``) gets no rotation keys at all, as its components cannot be honoured one by
one. The fit does not know about locks: children are posed as if the locked bone had followed.

Library data (``check_editable``): an object linked from a library (``obj.library``) or a system
library override is refused (Blender would drop the keys on reload), and so is adding keys to a
linked action; a library override, or a local object whose armature *data* is linked (the pose
and its keys live on the object), gets its own action as usual.

Degenerate rigs (``check_rig``): an object scale of 0 on an axis, mapped bones that all start at
one point or legs of zero length are refused before anything is read or keyed, and so is a pose
that collapses (every joint at one point) or has non-finite positions in ``read_motion``.

Spaces (``rig_space``, ``skeleton_fit.RigSpace``): both directions use one conversion between the
rig and engine metres / Y up: the object's world matrix (parents, rotation, non-uniform scale),
world +Z up whatever the armature data's up axis (a Y-up FBX rig turned 90 degrees about X stands
upright), the rig's facing about the vertical, the scene's unit scale times the rig's own unit
(metres, centimetres, ... guessed from its leg length). The engine origin is the object's origin;
apply_motion puts the lowest point of the planted feet on the rig's ground.

Bone kinds: bones named DEF-/ORG-/MCH- (Rigify deform, original and mechanism bones) and bones
with an active constraint are never keyed (``keyable_bone``); a map left with nothing to key is
an error.
"""
from __future__ import annotations

import dataclasses
import math

import bpy
import numpy as np

from engine.formats.bone_maps import BoneMap, detect_bone_map, load_bone_map
from engine.errors import MotionError
from engine.motion import JOINT_NAMES, MODEL_FPS, NUM_JOINTS, Motion, fill_missing_joints

from . import anim_compat, key_reduction, rigify
from .skeleton_fit import (AIM_CANDIDATES, LEGS, ControlRig, PoseTrack, RigSkeleton, RigSpace, control_pose,
                           engine_to_blender, fit_joints, local_pose, rotation_channels)
from . import skeleton_fit

KEY_MODES = ("EVERY_FRAME", "SPARSE")
ROTATION_TOLERANCE = math.radians(1.0)   # Sparse keys: radians of a bone's rotation
LOCATION_TOLERANCE = 0.005               # Sparse keys: metres of the root's location
MIN_EXTENT = 1e-6           # metres / rig units: a scale or a spread below this is treated as zero

# Bone names of the SMPL armature ``create_smpl_armature`` builds: the SMPL FBX/BVH names, so the
# "smpl" bone-map preset finds them.
SMPL_BONE_NAMES: dict[str, str] = {
    "pelvis": "Pelvis", "left_hip": "L_Hip", "right_hip": "R_Hip", "spine1": "Spine1",
    "left_knee": "L_Knee", "right_knee": "R_Knee", "spine2": "Spine2", "left_ankle": "L_Ankle",
    "right_ankle": "R_Ankle", "spine3": "Spine3", "left_foot": "L_Foot", "right_foot": "R_Foot",
    "neck": "Neck", "left_collar": "L_Collar", "right_collar": "R_Collar", "head": "Head",
    "left_shoulder": "L_Shoulder", "right_shoulder": "R_Shoulder", "left_elbow": "L_Elbow",
    "right_elbow": "R_Elbow", "left_wrist": "L_Wrist", "right_wrist": "R_Wrist",
}


# ----------------------------------------------------------------------------- rig reading

def _check_armature(armature_obj) -> None:
    if not isinstance(armature_obj, bpy.types.Object) or armature_obj.type != 'ARMATURE':
        kind = getattr(armature_obj, "type", type(armature_obj).__name__)
        name = getattr(armature_obj, "name", repr(armature_obj))
        raise MotionError(f"'{name}' is not an armature (it is {kind}); select an armature object")
    if armature_obj.mode == 'EDIT':
        raise MotionError(f"armature '{armature_obj.name}' is in Edit Mode; leave it first")


def check_rig(armature_obj, bone_map=None) -> dict[str, str]:
    """Refuse an armature that cannot be read or keyed, with a MotionError naming it: not an
    armature, in Edit Mode, scale 0 on an axis, bones the bone map cannot place, mapped bones all
    at one point, or proportions no human has (``human_proportions_problem``: a thigh or shin of
    zero length, one leg a sliver of the other). Returns the SMPL joint -> bone map."""
    _check_armature(armature_obj)
    scale = np.concatenate([np.abs(np.array(armature_obj.scale)),
                            np.linalg.norm(np.array(armature_obj.matrix_world)[:3, :3], axis=0)])
    if not (scale > MIN_EXTENT).all():
        raise MotionError(f"armature '{armature_obj.name}' has scale 0 on an axis (its scale is "
                          f"{tuple(round(v, 6) for v in armature_obj.scale)}; or a parent's): give it a non-zero scale")
    joint_to_bone = resolve_bone_map(armature_obj, bone_map)
    rig = rig_skeleton(armature_obj, joint_to_bone)
    rest = rig.rest_joints[rig.mapped]
    if not np.ptp(rest, axis=0).max() > MIN_EXTENT or not rig.leg_length() > MIN_EXTENT:
        raise MotionError(f"armature '{armature_obj.name}' is degenerate: its mapped bones all start at one "
                          "point or its leg bones have zero length; fix its rest pose (Edit Mode)")
    problem = human_proportions_problem(rig.rest_joints, joint_to_bone)
    if problem:
        raise MotionError(f"armature '{armature_obj.name}' cannot be a human body: {problem}; fix its rest pose "
                          "(Edit Mode) or the bone map")
    return joint_to_bone


def human_proportions_problem(rest_joints: np.ndarray, joint_to_bone: dict[str, str]) -> str:
    """'' when the mapped rest joints (22, 3) can be a human, else what is wrong: a thigh or
    shin of zero length, or a leg under 2 % of the other one."""
    lengths = {}
    for hip, knee, ankle, _ in LEGS:
        for upper, lower in ((hip, knee), (knee, ankle)):
            length = float(np.linalg.norm(rest_joints[lower] - rest_joints[upper]))
            if not length > MIN_EXTENT:
                return (f"the bones '{joint_to_bone.get(JOINT_NAMES[upper])}' and "
                        f"'{joint_to_bone.get(JOINT_NAMES[lower])}' start at the same point (a leg of zero length)")
            lengths.setdefault(hip, 0.0)
            lengths[hip] += length
    short, long_ = sorted(lengths.values())
    if short < 0.02 * long_:
        return "one leg is under 2 % of the other's length"
    return ""


def is_local(id_data) -> bool:
    """True when changes to ``id_data`` are saved with this file: not linked from a library and
    not a system library override."""
    if id_data.library is not None:
        return False
    override = id_data.override_library
    return override is None or not getattr(override, "is_system_override", False)


def check_editable(armature_obj, action=None) -> None:
    """MotionError when keys on ``armature_obj`` (or new keys in its ``action``, when given) would
    be lost on save: linked library data or a system override. Its armature data may be linked."""
    name = armature_obj.name
    if armature_obj.library is not None:
        raise MotionError(f"'{name}' is linked from the library '{_library_name(armature_obj)}': make it local "
                          "(Object > Relations > Make Local) or make a library override (Object > Library "
                          "Override) to animate it")
    if not is_local(armature_obj):
        raise MotionError(f"'{name}' is a system library override, which cannot be edited: make it editable "
                          "(Outliner: right-click > Library Override > Make Editable) to animate it")
    if action is not None and (action.library is not None or action.override_library is not None):
        where = f"linked from library '{_library_name(action)}'" if action.library else "a library override"
        raise MotionError(f"the action '{action.name}' of '{name}' is {where} and cannot get new keys: make "
                          "it local first (Action Editor: click the library icon beside its name)")


def _library_name(id_data) -> str:
    return bpy.path.basename(id_data.library.filepath) or id_data.library.name


def resolve_bone_map(armature_obj, bone_map=None) -> dict[str, str]:
    """SMPL joint name -> bone name of ``armature_obj``.

    ``bone_map``: None (detect a preset from the bone names), a preset id or JSON path, an
    ``engine.formats.bone_maps.BoneMap``, a bone-map dict in the JSON format, or a plain dict
    {smpl_joint: bone_name}. MotionError lists the SMPL joints that cannot be mapped.
    """
    names = [bone.name for bone in armature_obj.data.bones]
    try:
        if bone_map is None:
            resolved_map = detect_bone_map(names)
        elif isinstance(bone_map, dict) and "joints" not in bone_map:
            resolved_map = BoneMap.from_dict({"name": "custom", "joints": dict(bone_map)}, source="<custom dict>")
        else:
            resolved_map = load_bone_map(bone_map)
        return resolved_map.resolve(names)
    except MotionError as error:
        raise MotionError(f"armature '{armature_obj.name}': {error}") from None


def rig_skeleton(armature_obj, joint_to_bone: dict[str, str]) -> RigSkeleton:
    """Read the armature's rest pose (armature space) into a ``RigSkeleton``."""
    bones = list(armature_obj.data.bones)
    index = {bone.name: i for i, bone in enumerate(bones)}
    parents = np.array([index[b.parent.name] if b.parent else -1 for b in bones], dtype=int)
    rest = np.array([np.array(b.matrix_local) for b in bones], dtype=np.float64)
    tails = np.array([np.array(b.tail_local) for b in bones], dtype=np.float64).reshape(-1, 3)
    joint_bones = np.array([index.get(joint_to_bone.get(name, ""), -1) for name in JOINT_NAMES], dtype=int)
    return RigSkeleton(tuple(b.name for b in bones), parents, rest, joint_bones, tails)


def rig_space(armature_obj, rig: RigSkeleton) -> RigSpace:
    """The conversion between ``armature_obj``'s armature space and engine metres
    (``skeleton_fit.rig_space`` on its evaluated world matrix and the scene's unit scale)."""
    return skeleton_fit.rig_space(np.array(armature_obj.matrix_world), rig,
                                  bpy.context.scene.unit_settings.scale_length)


MECHANISM_PREFIXES = ("DEF-", "ORG-", "MCH-")


def keyable_bone(pose_bone) -> bool:
    """False for bones keys must not go on: Rigify's DEF-/ORG-/MCH- bones and bones with an
    enabled constraint of non-zero influence (they are driven; keys would be overridden)."""
    if pose_bone.name.startswith(MECHANISM_PREFIXES):
        return False
    return not any(c.enabled and c.influence > 0.0 for c in pose_bone.constraints)


def keyable_channels(pose_bone, prop: str, count: int) -> tuple[bool, ...]:
    """Per channel of ``prop`` (a rotation property or "location"): may it get keys."""
    if not keyable_bone(pose_bone):
        return (False,) * count
    locked = tuple(pose_bone.lock_location) if prop == "location" else _locked_rotation(pose_bone, prop)
    return tuple(not (i < len(locked) and locked[i]) for i in range(count))


# ----------------------------------------------------------------------------- which bones get the keys

def is_rigify(armature_obj, bone_map=None) -> bool:
    """True when ``armature_obj`` is a Rigify generated rig to be keyed on its controls: the bone
    map is left to detection (None) or is the ``rigify`` preset, and the rig has Rigify's
    controls (``rigify.is_generated_rig``)."""
    if not rigify.wants_rigify(bone_map):
        return False
    return rigify.is_generated_rig([b.name for b in armature_obj.data.bones], armature_obj.data.keys())


@dataclasses.dataclass
class FittedPose:
    """A motion fitted onto an armature, ready to key: ``track`` (local rotations per bone of
    ``track.bones``, indices into ``bone_names``, and the root bone's location), ``space`` the
    rig-space conversion used, ``switches`` [(pose bone, custom property, value)] to key once at
    the first frame (Rigify's IK/FK switches), ``fitted`` the armature-space pose, ``rig`` the
    skeleton it was fitted on."""

    track: PoseTrack
    bone_names: tuple[str, ...]
    space: RigSpace
    switches: tuple = ()
    fitted: skeleton_fit.FittedJoints | None = None
    rig: RigSkeleton | None = None


def fit_pose(armature_obj, joints: np.ndarray, fps: float, bone_map=None, clean_feet: bool = True,
             in_place: bool = False) -> FittedPose:
    """Fit ``joints`` (T, 22, 3, engine metres at ``fps``) onto ``armature_obj``: the bones of
    ``bone_map`` and their ancestors, or, on a Rigify generated rig (``is_rigify``), its controls.
    MotionError when the rig cannot be read or nothing can be keyed (``check_rig``,
    ``check_keyable``)."""
    joint_to_bone = check_rig(armature_obj, bone_map)
    if is_rigify(armature_obj, bone_map):
        rig = rig_skeleton(armature_obj, check_rig(armature_obj, rigify.FIT_MAP))
        controls = rigify_controls(rig)
        check_keyable(armature_obj, [rig.bone_names[b] for b in controls.bones])
        space = rig_space(armature_obj, rig)
        fitted = fit_joints(joints, fps, rig, clean_feet=clean_feet, in_place=in_place, space=space)
        track = control_pose(fitted, rig, controls, fps)
        return FittedPose(track, rig.bone_names, space, rigify.SWITCHES, fitted, rig)
    rig = rig_skeleton(armature_obj, joint_to_bone)
    check_keyable(armature_obj, [rig.bone_names[b] for b in rig.driven_bones()])
    space = rig_space(armature_obj, rig)
    fitted = fit_joints(joints, fps, rig, clean_feet=clean_feet, in_place=in_place, space=space)
    track = local_pose(fitted.deltas, fitted.root, rig, fps)
    return FittedPose(track, rig.bone_names, space, (), fitted, rig)


def rigify_controls(rig: RigSkeleton) -> ControlRig:
    """``rigify.CONTROLS`` as a ``ControlRig`` on ``rig`` (a generated rig's full skeleton)."""
    index = {name: i for i, name in enumerate(rig.bone_names)}
    missing = [name for name in rigify.CONTROLS if name not in index]
    if missing:
        raise MotionError(f"this Rigify rig lacks the controls {', '.join(missing)}; regenerate it from the "
                          "human metarig or choose a bone map")
    joint = {name: i for i, name in enumerate(JOINT_NAMES)}
    names = list(rigify.CONTROLS)
    return ControlRig(
        bones=np.array([index[n] for n in names], dtype=int),
        joints=np.array([joint.get(rigify.CONTROLS[n][0], -1) for n in names], dtype=int),
        parent_joints=np.array([joint.get(rigify.CONTROLS[n][1], -1) for n in names], dtype=int),
        root_bone=index[rigify.ROOT_CONTROL],
        root_path=np.array([index[n] for n in rigify.ROOT_PATH], dtype=int))


def check_can_key(armature_obj, bone_map=None) -> None:
    """MotionError when keys cannot go anywhere on ``armature_obj`` with ``bone_map``
    (``check_rig``, then ``check_keyable`` on the bones ``fit_pose`` would key)."""
    joint_to_bone = check_rig(armature_obj, bone_map)
    if is_rigify(armature_obj, bone_map):
        rig = rig_skeleton(armature_obj, check_rig(armature_obj, rigify.FIT_MAP))
        check_keyable(armature_obj, [rig.bone_names[b] for b in rigify_controls(rig).bones])
        return
    rig = rig_skeleton(armature_obj, joint_to_bone)
    check_keyable(armature_obj, [rig.bone_names[b] for b in rig.driven_bones()])


def check_switched(armature_obj, bone_map=None, frame: int | None = None) -> None:
    """MotionError when ``armature_obj`` is a Rigify rig whose limbs are not in FK (or neck/head
    not following) at ``frame`` (default: the current one): Continue and In-between key the FK
    controls into the existing action, which moves nothing while the limbs are in IK."""
    if not is_rigify(armature_obj, bone_map):
        return
    scene = bpy.context.scene
    current = (scene.frame_current, scene.frame_subframe)
    try:
        if frame is not None:
            scene.frame_set(int(frame))
        wrong = [f"{bone}[\"{prop}\"]" for bone, prop, value in rigify.SWITCHES
                 if abs(float(armature_obj.pose.bones[bone].get(prop, value)) - value) > 1e-3]
    finally:
        scene.frame_set(current[0], subframe=current[1])
    if wrong:
        where = f" at frame {frame}" if frame is not None else ""
        raise MotionError(f"the Rigify rig '{armature_obj.name}' is not in FK{where} ({', '.join(wrong[:3])}"
                          f"{', ...' if len(wrong) > 3 else ''}): MotionGPT keys the FK controls; Generate a motion "
                          "first (it keys the FK switch) or set IK_FK to 1 on the arm and leg parents")


def _key_switches(channels, armature_obj, switches, frame: float) -> None:
    """One key per Rigify switch (custom property) at ``frame``."""
    for bone, prop, value in switches:
        pose_bone = armature_obj.pose.bones[bone]
        if prop not in pose_bone.keys():
            continue
        fcurve = anim_compat.new_fcurve(channels, pose_bone.path_from_id(f'["{prop}"]'), 0, pose_bone.name)
        anim_compat.write_keys(fcurve, np.array([float(frame)]), np.array([float(value)]), interpolation="CONSTANT")


def check_keyable(armature_obj, bone_names) -> None:
    """MotionError when none of ``bone_names`` may get a single key (all locked, mechanism or
    constraint-driven bones)."""
    for name in bone_names:
        pose_bone = armature_obj.pose.bones[name]
        if any(keyable_channels(pose_bone, "location", 3)) or any(
                keyable_channels(pose_bone, _rotation_prop(pose_bone), 4)):
            return
    raise MotionError(f"armature '{armature_obj.name}': every mapped bone is locked, a DEF-/ORG-/MCH- bone or "
                      "driven by a constraint, so nothing can be keyed: unlock them or map the control bones")


def _rotation_prop(pose_bone) -> str:
    mode = pose_bone.rotation_mode
    return {"QUATERNION": "rotation_quaternion", "AXIS_ANGLE": "rotation_axis_angle"}.get(mode, "rotation_euler")


def scene_fps(scene) -> float:
    """Effective frame rate fps / fps_base, with fps_base rounded (it is a float32: 1.001 is
    stored as 1.0010000467)."""
    return scene.render.fps / round(scene.render.fps_base, 6)


# ----------------------------------------------------------------------------- apply

def apply_motion(armature_obj, motion: Motion, bone_map=None, start_frame: int | None = None,
                 action_name: str | None = None, in_place: bool = False,
                 clean_feet: bool = True, properties: dict | None = None, keys: str = "EVERY_FRAME",
                 rotation_tolerance: float = ROTATION_TOLERANCE,
                 location_tolerance: float = LOCATION_TOLERANCE) -> bpy.types.Action:
    """Key ``motion`` onto ``armature_obj`` as a new Action and assign it; returns the Action.

    motion: ``engine.Motion`` (T, 22, 3) metres, Y up, any fps; resampled to the scene's fps (local
    rotations by Slerp) with keys from ``start_frame`` (default: the current frame). The previous
    action goes onto a new, muted NLA track. ``in_place`` drops the horizontal root motion;
    ``clean_feet`` holds planted feet still. ``properties`` are set on the Action (ID properties:
    strings, or ints within 32 bits) before it is returned. ``keys``: 'EVERY_FRAME' (one LINEAR key
    per frame and channel) or 'SPARSE' (per property of a bone, the fewest Bezier keys with ALIGNED
    handles that keep its rotation within ``rotation_tolerance`` radians and the root's location
    within ``location_tolerance`` metres of every frame; see ``key_reduction``). Raises MotionError
    (or the error of a property that cannot be stored), leaving the scene unchanged.
    """
    _check_armature(armature_obj)
    if not isinstance(motion, Motion):
        raise MotionError(f"apply_motion needs an engine.Motion, got {type(motion).__name__}")
    if motion.num_frames < 1:
        raise MotionError("the motion is empty (zero frames)")
    if not np.isfinite(motion.joints).all():
        bad = int(np.argwhere(~np.isfinite(motion.joints))[0][0])
        raise MotionError(f"the motion has NaN or infinite joint positions (first at frame {bad})")
    if keys not in KEY_MODES:
        raise MotionError(f"keys must be one of {', '.join(KEY_MODES)}, not {keys!r}")
    if keys == "SPARSE" and not (rotation_tolerance > 0 and location_tolerance > 0):
        raise MotionError("Sparse keys need tolerances above zero")
    check_editable(armature_obj)
    fitted = fit_pose(armature_obj, motion.joints, motion.fps, bone_map, clean_feet=clean_feet, in_place=in_place)

    scene = bpy.context.scene
    fps = scene_fps(scene)
    space, track = fitted.space, fitted.track
    sparse = keys == "SPARSE"
    # a pose bone's location is in armature units (rotated); world = armature x the object's scale
    location_units = location_tolerance / (space.metres_per_unit
                                           * max(float(np.linalg.norm(space.matrix[:3, :3], axis=0).max()),
                                                 MIN_EXTENT))
    track = track.resample(fps)
    start = scene.frame_current if start_frame is None else int(start_frame)
    frames = start + np.arange(track.rotations.shape[0], dtype=np.float64)

    state = anim_compat.active_state(armature_obj)
    nla_track = action = None
    try:
        nla_track = anim_compat.push_to_nla(armature_obj)
        action, channels = anim_compat.new_action(armature_obj, action_name or "MotionGPT")
        _key_switches(channels, armature_obj, fitted.switches, frames[0])
        for column, bone in enumerate(track.bones):
            pose_bone = armature_obj.pose.bones[fitted.bone_names[bone]]
            prop, values = rotation_channels(track.rotations[:, column], pose_bone.rotation_mode)
            _key_property(channels, pose_bone, prop, frames, values, keyable_channels(pose_bone, prop, 4),
                          rotation_tolerance if sparse else None)
            if bone == track.root_bone:
                _key_property(channels, pose_bone, "location", frames, track.root_location,
                              keyable_channels(pose_bone, "location", 3), location_units if sparse else None)
        for key, value in (properties or {}).items():
            action[key] = value
    except Exception:
        anim_compat.restore_state(armature_obj, state, nla_track, action)
        raise
    for bone, prop, value in fitted.switches:       # as keyed, also before the next frame change
        if prop in armature_obj.pose.bones[bone].keys():
            armature_obj.pose.bones[bone][prop] = value
    return action


def _locked_rotation(pose_bone, prop: str) -> tuple[bool, ...]:
    """Which channels of rotation property ``prop`` the bone's locks forbid keying."""
    locks = tuple(pose_bone.lock_rotation)
    if prop == "rotation_euler":
        return locks
    locked = any(locks) or (pose_bone.lock_rotations_4d and pose_bone.lock_rotation_w)
    return (locked,) * 4


_REDUCTION_KIND = {"rotation_quaternion": "quaternion", "rotation_axis_angle": "axis_angle",
                   "rotation_euler": "euler", "location": "location"}


def _key_property(channels, pose_bone, prop: str, frames: np.ndarray, values: np.ndarray,
                  keyable: tuple[bool, ...], tolerance: float | None = None) -> None:
    """Key the channels of ``prop``: every frame (LINEAR) when ``tolerance`` is None, else the
    property's channels reduced together to sparse Bezier keys within ``tolerance``."""
    if not any(keyable[:values.shape[1]]):
        return
    data_path = pose_bone.path_from_id(prop)
    reduced = None
    if tolerance is not None:
        reduced = key_reduction.reduce_keys(frames, values, tolerance, _REDUCTION_KIND[prop])
    for index in range(values.shape[1]):
        if not keyable[index]:
            continue
        fcurve = anim_compat.new_fcurve(channels, data_path, index, pose_bone.name)
        if reduced is None:
            anim_compat.write_keys(fcurve, frames, values[:, index])
        else:
            anim_compat.write_bezier_keys(fcurve, reduced.frames, reduced.values[:, index],
                                          reduced.left[:, index], reduced.right[:, index])


def key_counts(action) -> tuple[int, int]:
    """(keys, keys had every frame been keyed) of ``action``: the second counts one key per frame
    from each F-Curve's first key to its last."""
    keys = every_frame = 0
    for fcurve in anim_compat.action_fcurves(action):
        points = fcurve.keyframe_points
        if not len(points):
            continue
        keys += len(points)
        every_frame += int(round(points[-1].co[0] - points[0].co[0])) + 1
    return keys, every_frame


# ----------------------------------------------------------------------------- read

def read_motion(armature_obj, frame_start: int, frame_end: int, bone_map=None) -> Motion:
    """The armature's evaluated motion over scene frames ``frame_start..frame_end`` (inclusive),
    as 22 joint positions (the mapped bones' heads) at 20 fps.

    Evaluates with ``scene.frame_set`` per frame (constraints, drivers, NLA); positions go through
    ``rig_space`` (the same conversion apply_motion uses): engine metres, Y up, the object's
    origin at (0, 0, 0). Joints the rig lacks (spine1/2/3, collars) are interpolated. The scene's
    current frame is restored.
    """
    frame_start, frame_end = int(frame_start), int(frame_end)
    if frame_end < frame_start:
        raise MotionError(f"empty frame range {frame_start}..{frame_end}")
    joint_to_bone = check_rig(armature_obj, bone_map)
    space = rig_space(armature_obj, rig_skeleton(armature_obj, joint_to_bone))
    pose_bones = armature_obj.pose.bones
    names = [pb.name for pb in pose_bones]
    columns = np.array([names.index(joint_to_bone[n]) if n in joint_to_bone else -1 for n in JOINT_NAMES])

    scene = bpy.context.scene
    current = (scene.frame_current, scene.frame_subframe)
    heads = np.empty((frame_end - frame_start + 1, len(pose_bones) * 3), dtype=np.float32)
    try:
        for row, frame in enumerate(range(frame_start, frame_end + 1)):
            scene.frame_set(frame)
            pose_bones.foreach_get("head", heads[row])
    finally:
        scene.frame_set(current[0], subframe=current[1])
    heads = heads.reshape(len(heads), -1, 3).astype(np.float64)

    joints = np.full((len(heads), NUM_JOINTS, 3), np.nan)
    joints[:, columns >= 0] = heads[:, columns[columns >= 0]]
    joints = fill_missing_joints(space.to_engine(joints))
    _check_pose(armature_obj, joints, frame_start)
    return Motion(joints.astype(np.float32), scene_fps(scene)).resample(MODEL_FPS)


def _check_pose(armature_obj, joints: np.ndarray, frame_start: int) -> None:
    """MotionError naming the first frame whose joints are not finite or all at one point."""
    finite = np.isfinite(joints).all(axis=(1, 2))
    if not finite.all():
        frame = frame_start + int(np.argmin(finite))
        raise MotionError(f"armature '{armature_obj.name}' has NaN or infinite bone positions at frame {frame} "
                          "(a driver, constraint or key with a bad value?)")
    extent = np.ptp(joints, axis=1).max(axis=-1)
    if not (extent > MIN_EXTENT).all():
        frame = frame_start + int(np.argmin(extent > MIN_EXTENT))
        raise MotionError(f"armature '{armature_obj.name}' is degenerate at frame {frame}: its bones collapse to "
                          "one point (a bone or the object scaled to 0?)")


# ----------------------------------------------------------------------------- a default rig

def smpl_rest_joints() -> np.ndarray:
    """(22, 3) a T-pose on HumanML3D's target skeleton (engine coordinates, metres, feet near y=0).

    Bone lengths are ``TARGET_BONE_LENGTHS``; the hips hang below and behind the pelvis and the
    collars sit above the chest as in HumanML3D clips (directions measured on clip 012314, where
    they are rigid in every frame); limbs straight, arms out to the sides.
    """
    from engine.motion import PARENTS, RAW_OFFSETS, TARGET_BONE_LENGTHS

    directions = RAW_OFFSETS.copy()
    directions[[1, 2]] = [[0.060, -0.084, -0.025], [-0.060, -0.084, -0.025]]
    directions[[13, 14]] = [[0.072, 0.1196, -0.0151], [-0.072, 0.1196, -0.0151]]
    directions[[16, 18, 20]] = [1.0, 0.0, 0.0]       # arms out to the sides
    directions[[17, 19, 21]] = [-1.0, 0.0, 0.0]
    directions[[10, 11]] = [0.0, -0.4, 1.0]           # toes forward and a little down
    directions /= np.maximum(np.linalg.norm(directions, axis=-1, keepdims=True), 1e-12)
    joints = np.zeros((NUM_JOINTS, 3))
    for joint in range(1, NUM_JOINTS):
        joints[joint] = joints[PARENTS[joint]] + directions[joint] * TARGET_BONE_LENGTHS[joint]
    joints[:, 1] -= joints[:, 1].min() - 0.02
    return joints


def create_smpl_armature(name: str = "SMPL", rest_joints: np.ndarray | None = None,
                         bone_names: dict[str, str] | None = None, rotation_mode: str = "QUATERNION",
                         collection=None) -> bpy.types.Object:
    """A 22-bone armature whose bone heads are SMPL joints, linked to ``collection`` (default: the
    scene's) and left active in Object Mode.

    rest_joints (22, 3) engine coordinates in metres (default ``smpl_rest_joints()``);
    bone_names {smpl_joint: bone_name} (default ``SMPL_BONE_NAMES``). Each bone points at its aim
    joint; leaf bones (head, wrists, toes) continue their parent's direction.
    """
    from engine.motion import PARENTS

    joints = engine_to_blender(smpl_rest_joints() if rest_joints is None else rest_joints)
    names = bone_names or SMPL_BONE_NAMES
    data = bpy.data.armatures.new(name)
    obj = bpy.data.objects.new(name, data)
    (collection or bpy.context.scene.collection).objects.link(obj)
    bpy.context.view_layer.objects.active = obj
    bpy.ops.object.mode_set(mode='EDIT')
    try:
        edit_bones = {}
        for joint, joint_name in enumerate(JOINT_NAMES):
            bone = data.edit_bones.new(names[joint_name])
            bone.head = joints[joint]
            aim = next(iter(AIM_CANDIDATES.get(joint, ())), -1)
            if aim >= 0:
                bone.tail = joints[aim]
            else:
                parent = joints[joint] - joints[PARENTS[joint]]
                bone.tail = joints[joint] + parent / np.linalg.norm(parent) * 0.08
            if PARENTS[joint] >= 0:
                bone.parent = edit_bones[PARENTS[joint]]
            edit_bones[joint] = bone
    finally:
        bpy.ops.object.mode_set(mode='OBJECT')
    for pose_bone in obj.pose.bones:
        pose_bone.rotation_mode = rotation_mode
    return obj
