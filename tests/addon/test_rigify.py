"""Issue 19 item 2: a Rigify generated rig (the rig Blender users animate), driven on its controls.

The rig is generated headless once per module (Blender's human metarig, ``pose.rigify_generate``,
~4.5 s), saved, and opened fresh for each test. Everything is measured on the evaluated DEF-
deform bones in the world (what the mesh follows), never on the controls.

Motion: the Bandai walk (real mocap) through ``retarget.apply_motion`` (what Generate does with
the model's answer) and through Continue / In-between's own fitting (``_fitted_channels`` +
``write_between``); the operators themselves run the tiny random model of the ``addon`` fixture,
whose motion is no human motion, so there the checks are those that hold for any motion.
"""
from __future__ import annotations

import addon_utils
import bpy
import numpy as np
import pytest

from engine.formats.bone_maps import detect_bone_map
from engine.formats.bvh import read_bvh
from engine.motion import JOINT_NAMES
from motiongpt_addon import anim_compat, retarget, rigify, skeleton_fit
from motiongpt_addon.skeleton_fit import foot_contacts
from tests.addon.conftest import expect_error
from tests.addon.test_retarget_rigs import CLIPS, DATA
from tests.addon.test_rig_units import keys_at, planted_error, refit_between, select_keys, upright_world

MECHANISM = ("DEF-", "ORG-", "MCH-")


@pytest.fixture(scope="module")
def rigify_file(tmp_path_factory) -> str:
    """A .blend holding the human metarig and the rig Rigify generated from it (at 20 fps)."""
    bpy.ops.wm.read_homefile(use_empty=True)
    addon_utils.enable("rigify", default_set=True)
    bpy.ops.object.armature_human_metarig_add()
    bpy.ops.pose.rigify_generate()
    path = str(tmp_path_factory.mktemp("rigify") / "rigify.blend")
    bpy.ops.wm.save_as_mainfile(filepath=path)
    return path


@pytest.fixture()
def rig(rigify_file):
    """The generated rig, fresh from the file, active, scene at 20 fps on frame 1."""
    bpy.ops.wm.open_mainfile(filepath=rigify_file)
    scene = bpy.context.scene
    scene.render.fps, scene.render.fps_base = 20, 1.0
    scene.frame_set(1)
    obj = bpy.data.objects["rig"]
    bpy.context.view_layer.objects.active = obj
    return obj


@pytest.fixture(scope="module")
def long_walk():
    """6 s of the Bandai walk at 20 fps."""
    name, start = CLIPS["walk"]
    return read_bvh(DATA / name).resample(20.0)[start:start + 121]


def keyed_channels(obj) -> dict[str, set[str]]:
    """{bone: {property}} of the F-Curves of the object's action."""
    keyed: dict[str, set[str]] = {}
    for fcurve in anim_compat.fcurves_of(obj):
        bone = fcurve.data_path.split('"')[1]
        keyed.setdefault(bone, set()).add(fcurve.data_path.split("]", 1)[1].lstrip("."))
    return keyed


def check_keys(obj) -> int:
    """Keys only on unlocked channels of non-mechanism bones, the FK switch keyed; returns the
    number of bones with rotation / location keys."""
    keyed = keyed_channels(obj)
    assert not [b for b in keyed if b.startswith(MECHANISM)], keyed
    assert "root" not in keyed
    for fcurve in anim_compat.fcurves_of(obj):
        bone = obj.pose.bones[fcurve.data_path.split('"')[1]]
        prop = fcurve.data_path.rsplit(".", 1)[-1]
        if prop == "location":
            assert not bone.lock_location[fcurve.array_index], fcurve.data_path
        elif prop == "rotation_euler":
            assert not bone.lock_rotation[fcurve.array_index], fcurve.data_path
        elif prop.startswith("rotation"):
            assert not any(bone.lock_rotation), fcurve.data_path
    for bone, prop, value in rigify.SWITCHES:
        curves = [fc for fc in anim_compat.fcurves_of(obj) if fc.data_path == f'pose.bones["{bone}"]["{prop}"]']
        assert len(curves) == 1 and curves[0].evaluate(obj.animation_data.action.frame_range[0]) == value
    return len([b for b, props in keyed.items() if any(p in ("location",) or p.startswith("rotation") for p in props)])


def measure(obj, frames) -> dict[str, np.ndarray]:
    """World positions of the evaluated deforming skeleton: DEF-spine and DEF-spine.006 heads
    (F, 3), and per foot the lowest point (F, 2) of DEF-foot, DEF-toe (heads and tails) and the
    heel (ORG-heel.02, which rides on the foot: the sole's back edge, no DEF bone marks it)."""
    matrix = np.array(obj.matrix_world)
    feet = [[f"DEF-foot{s}", f"DEF-toe{s}", f"ORG-heel.02{s}"] for s in (".L", ".R")]
    pelvis, head, low = [], [], []
    scene = bpy.context.scene
    bones = obj.pose.bones

    def world(point):
        return matrix[:3, :3] @ np.array(point) + matrix[:3, 3]
    for frame in frames:
        scene.frame_set(frame)
        pelvis.append(world(bones["DEF-spine"].head))
        head.append(world(bones["DEF-spine.006"].head))
        low.append([min(min(world(bones[n].head)[2], world(bones[n].tail)[2]) for n in names) for names in feet])
    return {"pelvis": np.array(pelvis), "head": np.array(head), "low": np.array(low)}


def def_ground(obj) -> float:
    """The rig's floor in the world: the lowest rest point of its feet (the metarig's heel bones
    sit on it; the DEF foot and toe bones end 1.7 cm above it, at the toe's tip)."""
    matrix = np.array(obj.matrix_world)
    bones = [obj.data.bones[f"ORG-{n}{s}"] for n in ("foot", "toe", "heel.02") for s in (".L", ".R")]
    points = [b.head_local for b in bones] + [b.tail_local for b in bones]
    return float(min((matrix[:3, :3] @ np.array(p) + matrix[:3, 3])[2] for p in points))


# ----------------------------------------------------------------------------- plain numpy

def test_two_mapped_bones_at_one_head_point_do_not_crash():
    """A map whose joints share a head (Rigify's hips / chest / spine_fk.001 controls) fits to
    finite unit rotations in every rotation mode."""
    rest = retarget.smpl_rest_joints()
    rest[3] = rest[0]                                 # spine1 at the pelvis
    rest[6] = rest[0]                                 # and spine2 too
    targets = np.tile(retarget.smpl_rest_joints(), (4, 1, 1)) + np.linspace(0, 0.1, 4)[:, None, None]
    deltas = skeleton_fit.solve_deltas(targets, rest, np.array([0.0, 0.0, 1.0]))
    assert np.isfinite(deltas).all()
    np.testing.assert_allclose(np.linalg.norm(deltas, axis=-1), 1.0, atol=1e-9)
    for mode in ("QUATERNION", "XYZ", "AXIS_ANGLE"):
        _, values = skeleton_fit.rotation_channels(np.zeros((3, 4)), mode)
        assert np.isfinite(values).all()


def test_detection_is_pure_logic():
    controls = list(rigify.CONTROLS) + list(rigify.FIT_MAP.values()) + [b for b, _, _ in rigify.SWITCHES]
    assert rigify.is_generated_rig(controls + ["DEF-spine"], ())
    assert rigify.is_generated_rig(controls, ("rig_id",))
    assert not rigify.is_generated_rig(controls, ())                     # no mark
    assert not rigify.is_generated_rig(["spine", "thigh.L", "torso"], ("rig_id",))  # controls missing
    assert rigify.wants_rigify(None) and rigify.wants_rigify("rigify")
    assert not rigify.wants_rigify("metarig") and not rigify.wants_rigify({"pelvis": "hips"})


# ----------------------------------------------------------------------------- the generated rig

def test_generated_rig_is_recognised(rig):
    names = [b.name for b in rig.data.bones]
    assert not rigify.missing_bones(names), rigify.missing_bones(names)
    assert retarget.is_rigify(rig)
    assert detect_bone_map(names).source == "rigify"                   # read from the DEF bones
    assert set(retarget.resolve_bone_map(rig).values()) <= {n for n in names if n.startswith("DEF-")}
    assert not retarget.is_rigify(bpy.data.objects["metarig"])
    assert not retarget.is_rigify(rig, "metarig")
    # every control stands where the ORG bone it drives stands
    for control, (joint, _) in rigify.CONTROLS.items():
        if joint and not control.startswith("spine_fk"):            # the lower spine hangs reversed
            org = rig.data.bones[rigify.FIT_MAP[joint]]
            np.testing.assert_allclose(rig.data.bones[control].head_local, org.head_local, atol=1e-5)


def test_walk_on_the_controls_moves_the_deform_bones(rig, long_walk):
    """apply_motion (Generate's keys) on a real walk, measured on the evaluated DEF bones."""
    motion = long_walk
    action = retarget.apply_motion(rig, motion, start_frame=1)
    frames = range(1, motion.num_frames + 1)
    m = measure(rig, frames)
    contacts = foot_contacts(motion.joints.astype(np.float64), motion.fps)
    upright = upright_world(m)
    foot_cm = planted_error(m, contacts, def_ground(rig)) * 100.0
    travel = float(np.linalg.norm(m["pelvis"][-1, :2] - m["pelvis"][0, :2]))
    keyed = check_keys(rig)
    # the DEF elbows and wrists against the fitted (ORG skeleton) joints
    fitted = retarget.fit_pose(rig, motion.joints, motion.fps)
    joints = fitted.fitted.joints(fitted.rig)                          # armature space, 20 fps
    names = {j: retarget.resolve_bone_map(rig)[JOINT_NAMES[j]] for j in range(22)}
    errors = {}
    scene = bpy.context.scene
    for row, frame in enumerate(frames):
        scene.frame_set(frame)
        for j, bone in names.items():
            errors.setdefault(j, []).append(np.linalg.norm(np.array(rig.pose.bones[bone].head) - joints[row, j]))
    arm_cm = max(max(errors[j]) for j in (18, 19, 20, 21)) * 100.0
    all_cm = max(max(e) for e in errors.values()) * 100.0
    print(f"rigify walk: upright mean {upright.mean():.1f} max {upright.max():.1f} deg, planted foot "
          f"{foot_cm:.2f} cm off the ground, DEF-spine travels {travel:.2f} m, {keyed} bones keyed "
          f"({len(anim_compat.fcurves_of(rig))} F-Curves), elbow/wrist max error {arm_cm * 10:.4f} mm, "
          f"any joint max {all_cm * 10:.4f} mm")
    assert upright.max() <= 20.0
    assert foot_cm <= 1.0
    assert travel > 0.5
    assert arm_cm <= 3.0
    assert action.name == rig.animation_data.action.name


def test_continue_and_inbetween_read_the_deform_bones_and_stay_on_the_floor(rig, long_walk):
    """Continue and In-between's own path (read_motion from the DEF bones, ``_fitted_channels``,
    ``write_between``) fed the walk as read back from the rig (a model that answers exactly)."""
    from motiongpt_addon import operators
    clip = long_walk[:100]
    retarget.apply_motion(rig, clip, start_frame=1)
    truth = retarget.read_motion(rig, 1, 100)
    reference = measure(rig, range(1, 101))
    ground = def_ground(rig)
    contacts = foot_contacts(clip.joints.astype(np.float64), clip.fps)
    # read_motion follows the DEF bones: the read walk travels as the rig does
    assert np.linalg.norm(truth.joints[-1, 0, [0, 2]] - truth.joints[0, 0, [0, 2]]) > 0.5
    results = {}
    retarget.apply_motion(rig, clip[:60], start_frame=1)
    retarget.check_switched(rig, None, 60)
    channels = operators._fitted_channels(rig, truth.joints[59:].astype(np.float64), 1.0, None, 41, clean_feet=True)
    assert not [c for c in channels if c[2].startswith(MECHANISM)]
    operators.write_between(rig, channels, 60, 100, 'START')
    results["continue"] = (60, measure(rig, range(60, 101)))
    refit_between(rig, operators, clip, truth, 20, 50)
    results["in-between"] = (20, measure(rig, range(20, 51)))
    for name, (first, m) in results.items():
        rows = slice(first - 1, first - 1 + len(m["low"]))
        foot_cm = planted_error(m, contacts[rows], ground) * 100.0
        path_cm = np.linalg.norm(m["pelvis"] - reference["pelvis"][rows], axis=-1).max() * 100.0
        print(f"rigify {name} (real walk): upright {upright_world(m).mean():.1f} deg (max "
              f"{upright_world(m).max():.1f}), planted foot {foot_cm:.2f} cm off the ground, pelvis "
              f"{path_cm:.2f} cm from the applied walk's")
        assert upright_world(m).max() <= 20.0
        assert foot_cm <= 1.0
        assert path_cm <= 6.0
        check_keys(rig)


def test_operators_key_the_controls(addon, rig):
    """Generate, Continue 1 s and In-between with the add-on's operators (tiny random model)."""
    scene = bpy.context.scene
    ground = def_ground(rig)
    assert bpy.ops.motiongpt.generate(prompt="a person walks", seconds=2.0, seed=3) == {'FINISHED'}
    keyed = check_keys(rig)
    for limb in ("upper_arm_parent.L", "thigh_parent.R"):
        assert rig.pose.bones[limb]["IK_FK"] == 1.0
    generated = measure(rig, range(1, 41))
    assert bpy.ops.motiongpt.continue_motion(seconds=1.0) == {'FINISHED'}
    assert tuple(rig.animation_data.action.frame_range) == (1.0, 60.0)
    check_keys(rig)
    continued = measure(rig, range(40, 61))
    select_keys(rig, (10, 40))
    kept = keys_at(rig, 10), keys_at(rig, 40)
    assert bpy.ops.motiongpt.inbetween() == {'FINISHED'}
    assert (keys_at(rig, 10), keys_at(rig, 40)) == kept
    check_keys(rig)
    filled = measure(rig, range(10, 41))
    for name, m in (("generate", generated), ("continue", continued), ("in-between", filled)):
        sink_cm = (ground - m["low"].min()) * 100.0
        median_cm = (np.median(m["low"].min(-1)) - ground) * 100.0
        print(f"rigify operators {name}: {keyed} bones keyed, upright {upright_world(m).mean():.1f} deg, lowest "
              f"foot {sink_cm:+.1f} cm under the ground, median lowest foot {median_cm:+.1f} cm")
        assert upright_world(m).mean() <= 20.0
        assert sink_cm <= 25.0
        if name == "generate":
            assert abs(median_cm) <= 1.0
    scene.frame_set(1)


def test_continue_on_a_rig_left_in_ik_says_what_to_do(addon, rig):
    for frame in (1, 20):
        rig.pose.bones["torso"].keyframe_insert("location", frame=frame)
    expect_error(lambda: bpy.ops.motiongpt.continue_motion(seconds=1.0), "is not in FK", "IK_FK")


def test_a_map_naming_controls_that_share_a_head_does_not_crash(rig, long_walk):
    """The old workaround: a bone map of FK controls with hips / chest / spine_fk.001 (one head
    point) keys finite rotations instead of failing with a scipy error."""
    controls = {"pelvis": "hips", "spine1": "spine_fk.001", "spine2": "chest", "spine3": "spine_fk.003",
                "neck": "neck", "head": "head"}
    for side, suffix in (("left", ".L"), ("right", ".R")):
        controls.update({f"{side}_hip": f"thigh_fk{suffix}", f"{side}_knee": f"shin_fk{suffix}",
                         f"{side}_ankle": f"foot_fk{suffix}", f"{side}_foot": f"toe_fk{suffix}",
                         f"{side}_collar": f"shoulder{suffix}", f"{side}_shoulder": f"upper_arm_fk{suffix}",
                         f"{side}_elbow": f"forearm_fk{suffix}", f"{side}_wrist": f"hand_fk{suffix}"})
    assert not retarget.is_rigify(rig, controls)
    retarget.apply_motion(rig, long_walk[:40], controls, start_frame=1)
    for fcurve in anim_compat.fcurves_of(rig):
        assert all(np.isfinite(p.co[1]) for p in fcurve.keyframe_points), fcurve.data_path
