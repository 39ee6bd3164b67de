"""anim_compat on the running bpy (4.5 in .venv, 5.0 in .venv-bpy5): actions, F-Curves, keys, NLA."""
from __future__ import annotations

import bpy
import numpy as np

from motiongpt_addon import anim_compat, retarget


def test_keys_written_with_foreach_set_land_exactly(scene):
    rig = retarget.create_smpl_armature()
    action, channels = anim_compat.new_action(rig, "written")
    assert rig.animation_data.action == action
    if anim_compat.HAS_SLOTS:                                   # 4.4+: a slot for this object
        assert rig.animation_data.action_slot is not None
        assert not hasattr(bpy.types.Action, "fcurves") or bpy.app.version < (5, 0, 0)
    pose_bone = rig.pose.bones["L_Elbow"]
    data_path = pose_bone.path_from_id("rotation_quaternion")
    frames = np.arange(5, 105, dtype=np.float64)
    angle = np.linspace(0.0, 2.0, len(frames))
    values = np.stack([np.cos(angle / 2), np.sin(angle / 2), 0 * angle, 0 * angle], -1)
    for index in range(4):
        fcurve = anim_compat.new_fcurve(channels, data_path, index, pose_bone.name)
        anim_compat.write_keys(fcurve, frames[::-1], values[::-1, index])   # unsorted on purpose
    curves = anim_compat.fcurves_of(rig)
    assert [fc.array_index for fc in curves] == [0, 1, 2, 3]
    assert all(fc.group.name == "L_Elbow" for fc in curves)
    keys = np.empty(2 * len(frames), dtype=np.float32)
    curves[1].keyframe_points.foreach_get("co", keys)
    np.testing.assert_allclose(keys[0::2], frames)              # sorted by fcurve.update()
    for frame in (5, 37, 104):
        bpy.context.scene.frame_set(frame)
        np.testing.assert_allclose(np.array(pose_bone.rotation_quaternion), values[frame - 5], atol=1e-6)
    assert curves[0].keyframe_points[3].interpolation == 'LINEAR'


def test_write_keys_appends_to_existing_keys(scene):
    rig = retarget.create_smpl_armature()
    _, channels = anim_compat.new_action(rig, "append")
    fcurve = anim_compat.new_fcurve(channels, rig.pose.bones["Pelvis"].path_from_id("location"), 2, "Pelvis")
    anim_compat.write_keys(fcurve, np.array([1.0, 2.0]), np.array([0.5, 0.6]))
    anim_compat.write_keys(fcurve, np.array([3.0]), np.array([0.7]), interpolation="CONSTANT")
    keys = np.array([tuple(k.co) for k in fcurve.keyframe_points])
    np.testing.assert_allclose(keys, [(1, 0.5), (2, 0.6), (3, 0.7)], atol=1e-6)
    assert [k.interpolation for k in fcurve.keyframe_points] == ['LINEAR', 'LINEAR', 'CONSTANT']


def test_push_to_nla_and_restore(scene):
    rig = retarget.create_smpl_armature()
    assert anim_compat.push_to_nla(rig) is None                 # nothing to push
    first, _ = anim_compat.new_action(rig, "first")
    rig.pose.bones["Head"].keyframe_insert("rotation_quaternion", frame=3)
    state = anim_compat.active_state(rig)
    track = anim_compat.push_to_nla(rig)
    assert rig.animation_data.action is None and track.mute
    assert track.strips[0].action == first and track.strips[0].frame_start == 3
    if anim_compat.HAS_SLOTS:
        assert track.strips[0].action_slot == first.slots[0]
    second, _ = anim_compat.new_action(rig, "second")
    anim_compat.restore_state(rig, state, track, second)
    assert rig.animation_data.action == first and len(rig.animation_data.nla_tracks) == 0
    assert "second" not in bpy.data.actions
    if anim_compat.HAS_SLOTS:
        assert rig.animation_data.action_slot == first.slots[0]
