"""apply_motion / read_motion of a 10 s clip on Blender's human metarig and on a 65-bone
Mixamo-like rig (bpy, CPU), and key writing: our foreach_set path vs a per-key keyframe_insert loop.

The clip is the HumanML3D tennis serve 012314 played forwards then backwards, cut to 10 s at
20 fps (201 frames); the scene runs at 24 fps, so every keyed channel gets 241 keys.

Key writing: the keys apply_motion wrote on the metarig (every F-Curve's frames and values) are
written again onto a fresh metarig, once with ``anim_compat.new_fcurve`` + ``write_keys``
(``keyframe_points.add`` + ``foreach_set``) and once the way a naive script does it: per key, set
the pose-bone channel and call ``pose_bone.keyframe_insert(prop, index=, frame=, group=)`` (new keys
LINEAR in both), all 22413 keys each, best of 3 / 5 in the same run. Also timed on the first
``INSERT_FRAMES`` frames of every channel ("subset"), where the curves are short.

Sparse keys (``sparse_*``): a real 10 s walk (Bandai dataset-1 'walk proud 002', 30 fps BVH, first
300 frames) keyed on a fresh metarig in a 30 fps scene, Every frame vs Sparse (default tolerances
1 degree / 5 mm): key counts, apply_motion time, and the largest deviation of Sparse from Every frame
over all 300 frames from the evaluated pose: a bone's local rotation (degrees), the root's location
(mm) and, for information, the bones' world head positions (mm; local errors add up along chains).
"""
import time
from pathlib import Path

import numpy as np

from engine import Motion

CLIP = Path(__file__).resolve().parents[2] / "shared" / "data" / "humanml3d" / "new_joints" / "012314.npy"
WALK = (Path(__file__).resolve().parents[2] / "shared" / "data" / "bandai" / "dataset-1" / "data"
        / "dataset-1_walk_proud_002.bvh")
REPEATS = 5
INSERT_FRAMES = 48          # frames per channel for the keyframe_insert loop (2 s at 24 fps)

MIXAMO = {"pelvis": "Hips", "left_hip": "LeftUpLeg", "right_hip": "RightUpLeg", "spine1": "Spine",
          "left_knee": "LeftLeg", "right_knee": "RightLeg", "spine2": "Spine1", "left_ankle": "LeftFoot",
          "right_ankle": "RightFoot", "spine3": "Spine2", "left_foot": "LeftToeBase",
          "right_foot": "RightToeBase", "neck": "Neck", "left_collar": "LeftShoulder",
          "right_collar": "RightShoulder", "head": "Head", "left_shoulder": "LeftArm",
          "right_shoulder": "RightArm", "left_elbow": "LeftForeArm", "right_elbow": "RightForeArm",
          "left_wrist": "LeftHand", "right_wrist": "RightHand"}


def best_of(function, repeats: int = REPEATS) -> float:
    """Fastest of `repeats` calls, in seconds."""
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        function()
        times.append(time.perf_counter() - started)
    return min(times)


def mixamo_rig(bpy, retarget):
    """A Mixamo-like rig: the 22 body bones, 4 bones per finger (40), HeadTop_End and two eyes
    (65 bones, 'mixamorig:' names), built in code."""
    from mathutils import Vector
    rig = retarget.create_smpl_armature("MixamoRig", bone_names={j: "mixamorig:" + n for j, n in MIXAMO.items()})
    bpy.ops.object.mode_set(mode='EDIT')
    bones = rig.data.edit_bones
    head = bones["mixamorig:Head"]
    for name, offset in (("HeadTop_End", (0, 0, 0.18)), ("LeftEye", (0.03, -0.08, 0.06)),
                         ("RightEye", (-0.03, -0.08, 0.06))):
        bone = bones.new("mixamorig:" + name)
        bone.head = head.head + Vector(offset)
        bone.tail = bone.head + Vector((0, 0, 0.03))
        bone.parent = head
    for side in ("Left", "Right"):
        hand = bones[f"mixamorig:{side}Hand"]
        along = (hand.tail - hand.head).normalized()
        for f, finger in enumerate(("Thumb", "Index", "Middle", "Ring", "Pinky")):
            parent, start = hand, hand.tail + Vector((0, -0.03 + 0.015 * f, 0))
            for k in range(1, 5):
                bone = bones.new(f"mixamorig:{side}Hand{finger}{k}")
                bone.head, bone.tail, bone.parent = start, start + along * 0.025, parent
                parent, start = bone, start + along * 0.025
    bpy.ops.object.mode_set(mode='OBJECT')
    return rig


def run() -> dict:
    import bpy
    import addon_utils  # on sys.path once bpy is imported

    from motiongpt_addon import anim_compat, retarget

    serve = Motion(np.load(CLIP), fps=20)
    motion = Motion.concatenate([serve, serve[::-1][1:]])[:201]
    bpy.ops.wm.read_homefile(use_empty=True)
    addon_utils.enable("rigify", default_set=True)
    bpy.ops.object.armature_human_metarig_add()
    rig = bpy.context.view_layer.objects.active
    scene = bpy.context.scene
    scene.render.fps, scene.render.fps_base = 24, 1.0

    apply_s = best_of(lambda: retarget.apply_motion(rig, motion, start_frame=1))
    apply_raw_s = best_of(lambda: retarget.apply_motion(rig, motion, start_frame=1, clean_feet=False))
    curves = anim_compat.fcurves_of(rig)
    keys = sum(len(fc.keyframe_points) for fc in curves)
    read_s = best_of(lambda: retarget.read_motion(rig, 1, 241), repeats=3)
    results = {
        "bpy": bpy.app.version_string,
        "clip_s": motion.duration,
        "bones_keyed": len({fc.group.name for fc in curves}),
        "fcurves": len(curves),
        "keys": keys,
        "apply_motion_ms": apply_s * 1000,
        "apply_motion_no_feet_ms": apply_raw_s * 1000,
        "read_motion_241_frames_ms": read_s * 1000,
    }
    results |= key_writing(bpy, anim_compat, curves)

    mixamo = mixamo_rig(bpy, retarget)
    mixamo_apply_s = best_of(lambda: retarget.apply_motion(mixamo, motion, start_frame=1))
    mixamo_curves = anim_compat.fcurves_of(mixamo)
    results |= {
        "rig60_bones": len(mixamo.data.bones),
        "rig60_bones_keyed": len({fc.group.name for fc in mixamo_curves}),
        "rig60_keys": sum(len(fc.keyframe_points) for fc in mixamo_curves),
        "rig60_apply_motion_10s_ms": mixamo_apply_s * 1000,
    }
    results |= sparse_keys(bpy, anim_compat, retarget)
    return results


def _pose(bpy, rig, frames, names):
    """(F, B, 4, 4) matrix_basis and (F, B, 3) world heads of bones ``names`` at ``frames``."""
    bones = [rig.pose.bones[n] for n in names]
    world = np.array(rig.matrix_world)
    basis = np.empty((len(frames), len(bones), 4, 4))
    heads = np.empty((len(frames), len(bones), 3))
    for i, frame in enumerate(frames):
        bpy.context.scene.frame_set(int(frame))
        for j, bone in enumerate(bones):
            basis[i, j] = np.array(bone.matrix_basis)
            heads[i, j] = world[:3, :3] @ np.array(bone.head) + world[:3, 3]
    return basis, heads


def sparse_keys(bpy, anim_compat, retarget) -> dict:
    """Every frame vs Sparse keys on a 10 s walk (see the module docstring)."""
    walk = Motion.from_bvh(WALK)
    walk = Motion(walk.joints[:300], walk.fps)
    bpy.ops.object.armature_human_metarig_add()
    rig = bpy.context.view_layer.objects.active
    scene = bpy.context.scene
    saved_fps = scene.render.fps, scene.render.fps_base
    scene.render.fps, scene.render.fps_base = 30, 1.0
    try:
        dense_s = best_of(lambda: retarget.apply_motion(rig, walk, start_frame=1), repeats=3)
        dense = rig.animation_data.action
        curves = anim_compat.action_fcurves(dense)
        names = sorted({fc.data_path.split('"')[1] for fc in curves})
        root = next(fc.data_path.split('"')[1] for fc in curves if fc.data_path.endswith(".location"))
        frames = np.arange(1, int(dense.frame_range[1]) + 1)
        dense_basis, dense_heads = _pose(bpy, rig, frames, names)
        sparse_s = best_of(lambda: retarget.apply_motion(rig, walk, start_frame=1, keys="SPARSE"), repeats=3)
        sparse = rig.animation_data.action
        sparse_basis, sparse_heads = _pose(bpy, rig, frames, names)
    finally:
        scene.render.fps, scene.render.fps_base = saved_fps
    space = retarget.rig_space(rig, retarget.rig_skeleton(rig, retarget.check_rig(rig)))
    unit_mm = space.metres_per_unit * 1000
    a, b = dense_basis[..., :3, :3], sparse_basis[..., :3, :3]
    a = a / np.linalg.norm(a, axis=-2, keepdims=True)
    b = b / np.linalg.norm(b, axis=-2, keepdims=True)
    rotation = np.degrees(np.arccos(np.clip((np.einsum("...ij,...ij->...", a, b) - 1) / 2, -1, 1))).max(axis=0)
    location = np.linalg.norm(dense_basis[..., :3, 3] - sparse_basis[..., :3, 3], axis=-1).max(axis=0)
    world = np.linalg.norm(dense_heads - sparse_heads, axis=-1).max(axis=0)
    dense_keys = retarget.key_counts(dense)[0]
    sparse_count = retarget.key_counts(sparse)[0]
    return {
        "sparse_clip_frames": len(frames),
        "sparse_every_frame_keys": dense_keys,
        "sparse_keys": sparse_count,
        "sparse_reduction": dense_keys / sparse_count,
        "sparse_max_rotation_deg": float(rotation.max()),
        "sparse_max_rotation_bone": names[int(rotation.argmax())],
        "sparse_root_location_mm": float(location[names.index(root)] * unit_mm),
        "sparse_max_world_head_mm": float(world.max() * unit_mm),
        "sparse_max_world_head_bone": names[int(world.argmax())],
        "sparse_apply_motion_every_frame_ms": dense_s * 1000,
        "sparse_apply_motion_sparse_ms": sparse_s * 1000,
    }


def key_writing(bpy, anim_compat, curves) -> dict:
    """Our key writing vs a keyframe_insert loop on the same keys (see the module docstring)."""
    channels = []
    for fc in curves:
        co = np.empty(2 * len(fc.keyframe_points), dtype=np.float32)
        fc.keyframe_points.foreach_get("co", co)
        channels.append((fc.data_path, fc.array_index, fc.group.name, co[0::2].copy(), co[1::2].copy()))
    bpy.ops.object.armature_human_metarig_add()
    target = bpy.context.view_layer.objects.active
    edit = bpy.context.preferences.edit
    saved_interpolation = edit.keyframe_new_interpolation_type
    edit.keyframe_new_interpolation_type = 'LINEAR'

    def clear():
        if target.animation_data and target.animation_data.action:
            action = target.animation_data.action
            target.animation_data_clear()
            bpy.data.actions.remove(action)

    def ours(count=None):
        clear()
        _, bag = anim_compat.new_action(target, "ours")
        for data_path, index, group, frames, values in channels:
            anim_compat.write_keys(anim_compat.new_fcurve(bag, data_path, index, group),
                                   frames[:count], values[:count])

    def insert_loop(count):
        clear()
        for data_path, index, group, frames, values in channels:
            bone_name, prop = data_path.split('"')[1], data_path.rsplit(".", 1)[1]
            pose_bone = target.pose.bones[bone_name]
            vector = getattr(pose_bone, prop)
            for frame, value in zip(frames[:count], values[:count]):
                vector[index] = value
                pose_bone.keyframe_insert(prop, index=index, frame=float(frame), group=group)

    try:
        full_keys = sum(len(c[3]) for c in channels)
        subset_keys = sum(min(len(c[3]), INSERT_FRAMES) for c in channels)
        ours_full = best_of(ours)
        ours_subset = best_of(lambda: ours(INSERT_FRAMES))
        insert_subset = best_of(lambda: insert_loop(INSERT_FRAMES), repeats=3)
        insert_full = best_of(lambda: insert_loop(None), repeats=3)
        written = sum(len(fc.keyframe_points) for fc in anim_compat.fcurves_of(target))
        if written != full_keys:
            raise RuntimeError(f"keyframe_insert loop wrote {written} keys, expected {full_keys}")
        clear()
    finally:
        edit.keyframe_new_interpolation_type = saved_interpolation
    return {
        "keywrite_keys": full_keys,
        "keywrite_ours_ms": ours_full * 1000,
        "keywrite_ours_us_per_key": ours_full / full_keys * 1e6,
        "keyframe_insert_loop_ms": insert_full * 1000,
        "keyframe_insert_us_per_key": insert_full / full_keys * 1e6,
        "keywrite_speedup": insert_full / ours_full,
        "keywrite_subset_keys": subset_keys,
        "keywrite_subset_ours_ms": ours_subset * 1000,
        "keywrite_subset_keyframe_insert_ms": insert_subset * 1000,
        "keywrite_subset_speedup": insert_subset / ours_subset,
    }
