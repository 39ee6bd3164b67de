"""Sparse keys (issue 19 item 5): key_reduction (plain numpy) and apply_motion(keys='SPARSE') on a
real 10 s walk (Bandai dataset-1 'walk proud 002', 30 fps BVH read by engine.formats.bvh) on the Rigify
metarig, measured from the evaluated pose against Every frame.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from tests.addon import conftest  # noqa: F401  (bpy, sys.path)
import addon_utils  # noqa: E402
import bpy  # noqa: E402

from engine.motion import Motion  # noqa: E402
from motiongpt_addon import anim_compat, key_reduction, retarget  # noqa: E402

WALK = (Path(__file__).resolve().parents[3] / "shared" / "data" / "bandai" / "dataset-1" / "data"
        / "dataset-1_walk_proud_002.bvh")
ONE_DEGREE = math.radians(1.0)


# ----------------------------------------------------------------------------- the reducer (numpy only)

def test_reduce_sine_within_tolerance_with_few_keys():
    frames = np.arange(1.0, 301.0)
    values = 0.3 * np.sin(frames / 15.0) + 0.05 * np.cos(frames / 4.0)
    keys = key_reduction.reduce_keys(frames, values, 1e-3)
    approx = key_reduction.evaluate(keys, frames)
    assert np.abs(approx - values).max() <= 1e-3 + 1e-9
    assert keys.frames[0] == 1 and keys.frames[-1] == 300
    assert keys.count < 300 / 4
    # handles at 1/3 and 2/3 of each segment: the Bezier is the cubic Hermite
    gaps = np.diff(keys.frames)
    assert np.allclose(keys.right[:-1, 0] - keys.frames[:-1], gaps / 3)
    assert np.allclose(keys.frames[1:] - keys.left[1:, 0], gaps / 3)


def test_reduce_stays_within_tolerance_on_noise():
    rng = np.random.default_rng(0)
    frames = np.arange(50.0)
    values = rng.normal(size=50)
    keys = key_reduction.reduce_keys(frames, values, 1e-6)
    assert np.abs(key_reduction.evaluate(keys, frames) - values).max() <= 1e-6
    # no smoothness to exploit: about every other frame (a key's two tangents can pass one sample)
    assert 25 <= keys.count <= 50
    plain = key_reduction.reduce_keys(frames, values, 1e-6, refine=False)
    assert plain.count == 50                   # slopes of the samples alone: every frame is a key


def test_reduce_edge_cases():
    one = key_reduction.reduce_keys(np.array([5.0]), np.array([2.0]), 0.1)
    assert one.count == 1 and one.values[0] == 2.0
    line = key_reduction.reduce_keys(np.arange(10.0), np.arange(10.0) * 2, 1e-6)
    assert line.count == 2 and np.allclose(key_reduction.evaluate(line, np.arange(10.0)), np.arange(10.0) * 2)
    with pytest.raises(ValueError):
        key_reduction.reduce_keys(np.array([0.0, 0.0]), np.array([1.0, 2.0]), 0.1)


def _smooth_quaternions(count: int) -> np.ndarray:
    t = np.arange(count) / 30.0
    axis = np.stack([np.sin(t), np.cos(0.7 * t), 0.5 + 0.2 * np.sin(3 * t)], axis=1)
    axis /= np.linalg.norm(axis, axis=1, keepdims=True)
    angle = 0.8 * np.sin(2.1 * t) + 0.3
    return np.concatenate([np.cos(angle / 2)[:, None], np.sin(angle / 2)[:, None] * axis], axis=1)


@pytest.mark.parametrize("kind", ["quaternion", "axis_angle", "euler"])
def test_reduce_rotation_within_one_degree(kind):
    quats = _smooth_quaternions(300)
    if kind == "quaternion":
        values = quats
    elif kind == "axis_angle":
        half = np.arccos(np.clip(quats[:, 0], -1, 1))
        values = np.concatenate([2 * half[:, None], quats[:, 1:] / np.sin(half)[:, None]], axis=1)
    else:
        values = np.stack([np.sin(np.arange(300) / 20.0 + k) for k in range(3)], axis=1)
    frames = np.arange(300.0)
    keys = key_reduction.reduce_keys(frames, values, ONE_DEGREE, kind)
    error = key_reduction.channel_error(kind, values, key_reduction.evaluate(keys, frames))
    assert error.max() <= ONE_DEGREE + 1e-9
    assert keys.count < 300 / 5


def test_quaternion_angle_is_accurate_for_small_angles():
    a = np.array([1.0, 0, 0, 0])
    b = np.array([math.cos(1e-4), math.sin(1e-4), 0, 0])
    assert key_reduction.quaternion_angle(a, -2 * b) == pytest.approx(2e-4, rel=1e-6)


# ----------------------------------------------------------------------------- Blender

@pytest.fixture(scope="module")
def walk() -> Motion:
    """10 s of a real walk at 30 fps (300 frames)."""
    motion = Motion.from_bvh(WALK)
    return Motion(motion.joints[:300], motion.fps)


def _fps30(scene):
    scene.render.fps, scene.render.fps_base = 30, 1.0


def test_write_bezier_keys_evaluates_the_hermite(scene):
    obj = bpy.data.objects.new("Empty", None)
    scene.collection.objects.link(obj)
    _action, channels = anim_compat.new_action(obj, "A")
    fcurve = anim_compat.new_fcurve(channels, "location", 0, "Object")
    frames = np.arange(1.0, 61.0)
    values = np.sin(frames / 7.0)
    keys = key_reduction.reduce_keys(frames, values, 1e-3)
    anim_compat.write_bezier_keys(fcurve, keys.frames, keys.values, keys.left, keys.right)
    assert len(fcurve.keyframe_points) == keys.count
    point = fcurve.keyframe_points[1]
    assert point.interpolation == 'BEZIER' and point.handle_left_type == 'ALIGNED'
    evaluated = np.array([fcurve.evaluate(f) for f in frames])
    assert np.abs(evaluated - values).max() <= 1e-3 + 1e-5
    assert sum(len(c.keyframe_points) for c in anim_compat.action_fcurves(_action)) == keys.count


def _pose_samples(obj, frames, names) -> tuple[np.ndarray, np.ndarray]:
    """(F, B, 4, 4) matrix_basis and (F, B, 3) world heads of bones ``names`` at ``frames``."""
    bones = [obj.pose.bones[n] for n in names]
    world = np.array(obj.matrix_world)
    basis = np.empty((len(frames), len(bones), 4, 4))
    heads = np.empty((len(frames), len(bones), 3))
    for i, frame in enumerate(frames):
        bpy.context.scene.frame_set(int(frame))
        for j, bone in enumerate(bones):
            basis[i, j] = np.array(bone.matrix_basis)
            heads[i, j] = world[:3, :3] @ np.array(bone.head) + world[:3, 3]
    return basis, heads


def _rotation_degrees(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    ra = a[..., :3, :3] / np.linalg.norm(a[..., :3, :3], axis=-2, keepdims=True)
    rb = b[..., :3, :3] / np.linalg.norm(b[..., :3, :3], axis=-2, keepdims=True)
    cos = (np.einsum("...ij,...ij->...", ra, rb) - 1.0) / 2.0
    return np.degrees(np.arccos(np.clip(cos, -1.0, 1.0)))


def sparse_vs_every_frame(rig, motion: Motion) -> dict:
    """Key ``motion`` on ``rig`` both ways; counts and the largest deviations of Sparse from Every
    frame at every frame, from the evaluated pose (also used by bench/bench_retarget.py)."""
    dense = retarget.apply_motion(rig, motion, start_frame=1)
    names = sorted({fc.data_path.split('"')[1] for fc in anim_compat.action_fcurves(dense)})
    root = next(fc.data_path.split('"')[1] for fc in anim_compat.action_fcurves(dense)
                if fc.data_path.endswith(".location"))
    frames = np.arange(1, int(dense.frame_range[1]) + 1)
    dense_basis, dense_heads = _pose_samples(rig, frames, names)
    dense_curves = {(fc.data_path, fc.array_index): np.array([fc.evaluate(f) for f in frames])
                    for fc in anim_compat.action_fcurves(dense)}
    sparse = retarget.apply_motion(rig, motion, start_frame=1, keys="SPARSE")
    sparse_basis, sparse_heads = _pose_samples(rig, frames, names)
    curve_error = {}                  # largest |sparse - dense| of one channel, per property
    for fc in anim_compat.action_fcurves(sparse):
        prop = fc.data_path.rsplit(".", 1)[1]
        error = np.abs(np.array([fc.evaluate(f) for f in frames]) - dense_curves[fc.data_path, fc.array_index]).max()
        curve_error[prop] = max(curve_error.get(prop, 0.0), float(error))
    space = retarget.rig_space(rig, retarget.rig_skeleton(rig, retarget.check_rig(rig)))
    units_mm = space.metres_per_unit * float(np.linalg.norm(space.matrix[:3, :3], axis=0).max()) * 1000
    rotation = _rotation_degrees(dense_basis, sparse_basis).max(axis=0)
    location_mm = np.linalg.norm(dense_basis[..., :3, 3] - sparse_basis[..., :3, 3], axis=-1).max(axis=0) * units_mm
    world_mm = np.linalg.norm(dense_heads - sparse_heads, axis=-1).max(axis=0) * space.metres_per_unit * 1000
    return {"every_frame_keys": retarget.key_counts(dense)[0], "sparse_keys": retarget.key_counts(sparse)[0],
            "sparse_counts": retarget.key_counts(sparse), "frames": len(frames),
            "rotation_deg": dict(zip(names, rotation)), "root": root,
            "root_location_mm": float(location_mm[names.index(root)]),
            "world_head_mm": dict(zip(names, world_mm)), "curve_error": curve_error, "units_mm": units_mm,
            "dense_action": dense, "sparse_action": sparse}


@pytest.mark.parametrize("kind", ["metarig", "yup"])
def test_sparse_walk(scene, walk, kind):
    """The metarig (QUATERNION and YXZ bones, metres) and a Mixamo-like FBX import (XYZ bones, data
    in cm, object scale 0.01 under a moved, turned parent: the 5 mm become 0.5 data units)."""
    if kind == "metarig":
        addon_utils.enable("rigify", default_set=True)
        bpy.ops.object.armature_human_metarig_add()
        rig = bpy.context.view_layer.objects.active
    else:
        from tests.addon.test_rig_units import y_up_rig
        rig = y_up_rig()
    _fps30(bpy.context.scene)
    result = sparse_vs_every_frame(rig, walk)
    assert result["frames"] == 300
    dense, sparse = result["every_frame_keys"], result["sparse_keys"]
    print(f"\nwalk 10 s on {kind}: every frame {dense} keys, sparse {sparse} keys ({dense / sparse:.1f}x); "
          f"max rotation {max(result['rotation_deg'].values()):.3f} deg, root location "
          f"{result['root_location_mm']:.3f} mm, world heads {max(result['world_head_mm'].values()):.2f} mm")
    assert sparse * 3 <= dense
    assert result["sparse_counts"][1] == dense            # what Every frame would have written
    # measured, 4.5 and 5.0 alike: metarig 27900 -> 3239 keys, 0.998 deg, root 4.93 mm (world heads
    # up to 24.3 mm: per-bone errors add up along chains); yup 20700 -> 2910 keys, 0.990 deg, 4.79 mm
    assert max(result["rotation_deg"].values()) <= 1.0 + 0.02
    assert result["root_location_mm"] <= 5.0 + 0.05
    # the reducer's curve is what Blender evaluates (euler / location channels compared directly)
    errors = result["curve_error"]
    assert errors.get("rotation_euler", 0.0) <= ONE_DEGREE + 1e-5
    assert errors["location"] * result["units_mm"] <= 5.0 + 0.05
    points = anim_compat.action_fcurves(result["sparse_action"])[0].keyframe_points
    assert points[0].interpolation == 'BEZIER' and points[0].handle_right_type == 'ALIGNED'


def test_every_frame_stays_the_default(metarig, tennis):
    action = retarget.apply_motion(metarig, tennis, start_frame=1)
    keys, every_frame = retarget.key_counts(action)
    assert keys == every_frame
    assert anim_compat.action_fcurves(action)[0].keyframe_points[0].interpolation == 'LINEAR'


def test_bad_keys_mode_is_refused(metarig, tennis):
    from engine.errors import MotionError
    with pytest.raises(MotionError, match="keys must be one of"):
        retarget.apply_motion(metarig, tennis, keys="SOME")


# ----------------------------------------------------------------------------- the operators

def test_generate_with_sparse_keys_reports_the_counts(rig, capfd):
    from tests.addon.conftest import ADDON  # noqa: F401  (the add-on is enabled by the rig fixture)
    from motiongpt_addon import operators
    settings = bpy.context.scene.motiongpt
    assert settings.keys == 'EVERY_FRAME'                 # the default
    assert operators.key_options(settings) == {"keys": "EVERY_FRAME"}
    settings.keys, settings.key_rotation_tolerance, settings.key_location_tolerance = 'SPARSE', 2.0, 10.0
    assert operators.key_options(settings) == {"keys": "SPARSE", "rotation_tolerance": pytest.approx(math.radians(2)),
                                               "location_tolerance": pytest.approx(0.01)}
    assert bpy.ops.motiongpt.generate(prompt="a person walks forward", seconds=3.0, seed=1) == {'FINISHED'}
    action = rig.animation_data.action
    keys, every_frame = retarget.key_counts(action)
    assert keys < every_frame
    assert tuple(action.frame_range) == (1.0, 60.0)
    assert anim_compat.action_fcurves(action)[0].keyframe_points[0].interpolation == 'BEZIER'
    out = capfd.readouterr()
    assert f"{keys:,} keys (sparse; every frame: {every_frame:,})" in out.out + out.err
    settings.keys = 'EVERY_FRAME'
    assert bpy.ops.motiongpt.generate(prompt="a person walks forward", seconds=3.0, seed=1) == {'FINISHED'}
    keys, every_frame = retarget.key_counts(rig.animation_data.action)
    assert keys == every_frame and "sparse" not in capfd.readouterr().out


def test_batch_with_sparse_keys(rig, capfd):
    bpy.data.texts.new("prompts").from_string("a person walks\na person jumps\n")
    settings = bpy.context.scene.motiongpt
    settings.auto_duration, settings.seconds, settings.keys = False, 2.0, 'SPARSE'
    assert bpy.ops.motiongpt.batch(text_name="prompts") == {'FINISHED'}
    strips = list(rig.animation_data.nla_tracks["MotionGPT Batch"].strips)
    assert [(s.frame_start, s.frame_end) for s in strips] == [(1, 40), (41, 80)]   # first and last frames kept
    counts = [retarget.key_counts(s.action) for s in strips]
    assert all(keys < every_frame for keys, every_frame in counts)
    total = sum(c[0] for c in counts), sum(c[1] for c in counts)
    out = capfd.readouterr()
    assert f"{total[0]:,} keys (sparse; every frame: {total[1]:,})" in out.out + out.err


class _Layout:
    """Records the properties a panel draws (a stand-in for UILayout headless)."""

    def __init__(self, drawn):
        self.drawn, self.enabled = drawn, True

    def prop(self, data, name, **_kwargs):
        self.drawn.append(name)

    def __getattr__(self, _name):
        return lambda *args, **kwargs: _Layout(self.drawn)


def test_panel_shows_keys_and_the_tolerances_in_sparse_mode(addon, scene):
    from motiongpt_addon import ui
    panel = type("Panel", (), {})()
    for keys, expected in (('EVERY_FRAME', False), ('SPARSE', True)):
        scene.motiongpt.keys = keys
        panel.layout = _Layout(drawn := [])
        ui.VIEW3D_PT_motiongpt.draw(panel, bpy.context)
        assert "keys" in drawn and "in_place" in drawn
        assert ("key_rotation_tolerance" in drawn and "key_location_tolerance" in drawn) == expected
    assert scene.motiongpt.bl_rna.properties["key_rotation_tolerance"].default == 1.0
    assert scene.motiongpt.bl_rna.properties["key_location_tolerance"].default == 5.0
