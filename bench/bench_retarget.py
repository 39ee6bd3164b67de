"""apply_motion / read_motion of a 10 s clip on Blender's human metarig (bpy, CPU).

The clip is the HumanML3D tennis serve 012314 played forwards then backwards, cut to 10 s at
20 fps (201 frames); the scene runs at 24 fps, so every keyed channel gets 241 keys.
"""
import time
from pathlib import Path

import numpy as np

from engine import Motion

CLIP = Path(__file__).resolve().parents[2] / "shared" / "data" / "humanml3d" / "new_joints" / "012314.npy"
REPEATS = 5


def best_of(function, repeats: int = REPEATS) -> float:
    """Fastest of `repeats` calls, in seconds."""
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        function()
        times.append(time.perf_counter() - started)
    return min(times)


def run() -> dict:
    import bpy

    from motiongpt_addon import anim_compat, retarget

    serve = Motion(np.load(CLIP), fps=20)
    motion = Motion.concatenate([serve, serve[::-1][1:]])[:201]
    bpy.ops.wm.read_homefile(use_empty=True)
    import addon_utils  # on sys.path once bpy is imported
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
    return {
        "bpy": bpy.app.version_string,
        "clip_s": motion.duration,
        "bones_keyed": len({fc.group.name for fc in curves}),
        "fcurves": len(curves),
        "keys": keys,
        "apply_motion_ms": apply_s * 1000,
        "apply_motion_no_feet_ms": apply_raw_s * 1000,
        "read_motion_241_frames_ms": read_s * 1000,
    }
