"""Issue 19: the rig x operator matrix, the cells no other test fills.

Rigs: the ones of test_rig_units.py (BVH imports at Blender's default scale: CMU in its ~5.6 cm
units, Bandai in cm; the metarig; a Y-up cm armature at scale 0.01 under a turned parent empty;
a non-uniformly scaled SMPL rig), a Mixamo-named BVH (Y-up, centimetres, written here from the
engine's synthetic Mixamo skeleton) imported at default scale, and a Rigify generated rig
(test_rigify.py's file). Generate / Continue / In-between are tested on all but the Mixamo BVH by
test_rig_units.py::test_operators_on_every_rig and test_rigify.py::test_operators_key_the_controls;
here: Batch (two lines, NLA layout) and Describe on every rig, and Generate / Continue /
In-between on the Mixamo BVH.

All measured on the evaluated deforming bones in the world after ``scene.frame_set`` (DEF bones
on the Rigify rig). The operators run the tiny random model (``addon`` fixture): its motion is no
human motion, so its feet are where the model puts them. Ground is therefore measured as the
fitting defines it: the engine motion each operator fitted (recorded at ``retarget.fit_pose``)
says which frames a foot is planted (``foot_contacts``); the median lowest point of the planted
foot over those frames must be on the rig's ground (within ``GROUND_CM``). Upright: pelvis -> head
within 20 degrees of world up on average. Keys: only unlocked channels of non-mechanism,
unconstrained bones. In-between keeps the selected keys exactly.
"""
from __future__ import annotations

import math

import bpy
import numpy as np
import pytest

from motiongpt_addon import anim_compat, retarget
from motiongpt_addon import operators
from motiongpt_addon.skeleton_fit import foot_contacts, posed_foot_points
from tests.addon import test_rigify
from tests.addon.test_rig_units import expected_ground, keys_at, make_rig, measure, select_keys, upright_world
from tests.addon.test_rigify import rig, rigify_file  # noqa: F401  (fixtures: the generated Rigify rig, fresh per test)
from tests.engine.test_bvh import END_SITES, SKELETON

RIGS = ("cmu", "bandai", "mixamo", "metarig", "yup", "stretched", "rigify")
GROUND_CM = 1.0
UPRIGHT_DEG = 20.0
MATRIX: dict[tuple[str, str], str] = {}          # (rig, operator) -> "upright x deg, foot y cm", printed at the end


# ----------------------------------------------------------------------------- a Mixamo-named BVH

def mixamo_bvh_text(frames: int = 40) -> str:
    """The engine's synthetic Mixamo skeleton (tests/engine/test_bvh.py: Z up, metres, facing -Y)
    as a Mixamo character's BVH: Y up, centimetres, facing +Z, names 'mixamorig:*'; a 2 s walk
    forward at 20 fps with swinging legs."""
    def yup_cm(offset):
        x, y, z = offset
        return (100.0 * x, 100.0 * z, -100.0 * y)
    children: dict = {}
    for joint in SKELETON:
        children.setdefault(joint[1], []).append(joint[0])
    offsets = {name: yup_cm(offset) for name, _, offset, _ in SKELETON}

    def block(name, depth):
        pad = "  " * depth
        channels = ("6 Xposition Yposition Zposition Zrotation Xrotation Yrotation" if depth == 0
                    else "3 Zrotation Xrotation Yrotation")
        lines = [f"{pad}{'ROOT' if depth == 0 else 'JOINT'} mixamorig:{name}", f"{pad}{{",
                 f"{pad}  OFFSET {' '.join(f'{v:.4f}' for v in offsets[name])}", f"{pad}  CHANNELS {channels}"]
        for child in children.get(name, []):
            lines += block(child, depth + 1)
        if name in END_SITES:
            lines += [f"{pad}  End Site", f"{pad}  {{", f"{pad}    OFFSET "
                      f"{' '.join(f'{v:.4f}' for v in yup_cm(END_SITES[name]))}", f"{pad}  }}"]
        return lines + [f"{pad}}}"]
    names = [name for name, *_ in SKELETON]
    rows = []
    for t in range(frames):
        swing = 25.0 * math.sin(2 * math.pi * t / 20)
        values = {name: [0.0, 0.0, 0.0] for name in names}               # Z, X, Y rotation
        values["LeftUpLeg"][1], values["RightUpLeg"][1] = swing, -swing
        root = [*offsets["Hips"][:2], offsets["Hips"][2] + 4.0 * t]      # 80 cm/s along +Z (forward)
        rows.append(" ".join(f"{v:.4f}" for v in root + [c for name in names for c in values[name]]))
    lines = ["HIERARCHY"] + block("Hips", 0) + ["MOTION", f"Frames: {frames}", "Frame Time: 0.05"] + rows
    return "\n".join(lines) + "\n"


def build_rig(kind: str, request, tmp_path):
    if kind == "rigify":
        return request.getfixturevalue("rig")                        # test_rigify.py's, imported above
    bpy.ops.wm.read_homefile(use_empty=True)
    scene = bpy.context.scene
    scene.render.fps, scene.render.fps_base = 20, 1.0
    scene.frame_set(1)
    if kind == "mixamo":
        path = tmp_path / "mixamo_walk.bvh"
        path.write_text(mixamo_bvh_text(), encoding="utf-8")
        bpy.ops.import_anim.bvh(filepath=str(path), global_scale=1.0)
        return bpy.context.view_layer.objects.active
    return make_rig(kind)


# ----------------------------------------------------------------------------- measures

class Fits:
    """Records every engine motion the operators fit onto the rig (``retarget.fit_pose``)."""

    def __init__(self, monkeypatch):
        self.joints: list[np.ndarray] = []
        original = retarget.fit_pose

        def recording(armature_obj, joints, fps, *args, **kwargs):
            self.joints.append(np.asarray(joints, dtype=np.float64).copy())
            return original(armature_obj, joints, fps, *args, **kwargs)
        monkeypatch.setattr(retarget, "fit_pose", recording)

    def contacts(self) -> np.ndarray:
        """(T, 2) planted feet of the last fitted motion (20 fps: one row per scene frame here)."""
        return foot_contacts(self.joints[-1], 20.0)


def rig_measure(kind: str, rig, frames) -> dict[str, np.ndarray]:
    return test_rigify.measure(rig, frames) if kind == "rigify" else measure(rig, frames)


def rig_ground(kind: str, rig) -> tuple[float, float]:
    """(the floor's world height, centimetres per world unit)."""
    if kind == "rigify":
        return test_rigify.def_ground(rig), 100.0
    skeleton = retarget.rig_skeleton(rig, retarget.resolve_bone_map(rig))
    return expected_ground(kind, rig), retarget.rig_space(rig, skeleton).metres_per_unit * 100.0


def foot_cm(m, contacts: np.ndarray, ground: float, cm: float) -> float:
    """Median lowest point of the planted feet above the ground (cm); with no planted frame (the
    fitting then puts the clip's lowest foot point on the ground) the lowest point of all."""
    low = m["low"][contacts] if contacts.any() else m["low"].min(keepdims=True)
    return float(np.median(low) - ground) * cm


def check(kind, operator, m, contacts, ground, cm, placed=None) -> None:
    """Upright and on the ground. ``placed`` (Continue / In-between): (F, 2) the feet's lowest
    points as the fitting placed the model's motion (``predicted_feet``) and (F,) which frames are
    outside the seam blends; there the evaluated feet must be where they were placed."""
    upright = float(upright_world(m).mean())
    foot = foot_cm(m, contacts, ground, cm)
    text = f"upright {upright:4.1f} deg, planted foot {foot:+5.2f} cm"
    if placed is not None:
        predicted, clear = placed
        off = float(np.median(np.abs(m["low"] - predicted)[clear])) * cm
        text += f", evaluated feet {off:.2f} cm from the placed motion's"
        assert off <= GROUND_CM, (kind, operator, off)
    MATRIX[kind, operator] = text
    print(f"{kind} {operator}: {text}")
    assert upright <= UPRIGHT_DEG, (kind, operator, upright)
    if placed is None:
        assert abs(foot) <= GROUND_CM, (kind, operator, foot)


def predicted_feet(kind, rig, joints: np.ndarray, ground: float, cm: float, clean_feet: bool) -> np.ndarray:
    """(T, 2) world height of each foot's lowest point as ``fit_pose`` places the engine motion
    ``joints`` on the rig; asserts the fitting put the planted feet (median) on the rig's ground."""
    fitted = retarget.fit_pose(rig, joints, 20.0, clean_feet=clean_feet)
    points, sides = posed_foot_points(fitted.rig, fitted.fitted.root, fitted.fitted.deltas)
    heights = fitted.space.to_world(points)[..., 2]
    low = np.stack([heights[:, sides == side].min(-1) for side in range(2)], -1)
    contacts = foot_contacts(joints, 20.0)
    floor = np.median(low[contacts]) if contacts.any() else low.min()
    assert abs(floor - ground) * cm <= GROUND_CM
    return low


def check_action_keys(kind: str, rig, fcurves) -> None:
    """Keys only on unlocked channels of non-mechanism, unconstrained bones (the Rigify rig: also
    its FK switches, ``test_rigify.check_keys``, for the active action)."""
    for fcurve in fcurves:
        if '"]["' in fcurve.data_path:                                  # a custom property: Rigify's IK_FK
            continue
        bone = rig.pose.bones[fcurve.data_path.split('"')[1]]
        prop = fcurve.data_path.rsplit(".", 1)[-1]
        assert retarget.keyable_bone(bone), fcurve.data_path
        assert retarget.keyable_channels(bone, prop, fcurve.array_index + 1)[fcurve.array_index], fcurve.data_path


# ----------------------------------------------------------------------------- the matrix

@pytest.mark.parametrize("kind", RIGS)
def test_batch_and_describe(addon, kind, request, tmp_path, monkeypatch):
    """Batch two lines (2 s each, NLA strips end to end), evaluated through the NLA with no active
    action; then Describe that range."""
    rig = build_rig(kind, request, tmp_path)
    scene = bpy.context.scene
    ground, cm = rig_ground(kind, rig)
    fits = Fits(monkeypatch)
    settings = scene.motiongpt
    settings.auto_duration, settings.seconds = False, 2.0
    bpy.data.texts.new("prompts").from_string("a person walks\na person jumps\n")
    assert bpy.ops.motiongpt.batch(text_name="prompts") == {'FINISHED'}
    strips = list(rig.animation_data.nla_tracks["MotionGPT Batch"].strips)
    assert [(s.frame_start, s.frame_end) for s in strips] == [(1, 40), (41, 80)]
    assert len(fits.joints) == 2
    kept = rig.animation_data.action                                    # a BVH import's own clip stays active
    rig.animation_data.action = None
    for number, strip in enumerate(strips):
        check_action_keys(kind, rig, anim_compat.action_fcurves(strip.action))
        m = rig_measure(kind, rig, range(int(strip.frame_start), int(strip.frame_end) + 1))
        contacts = foot_contacts(fits.joints[number], 20.0)
        check(kind, f"batch {number + 1}", m, contacts[:len(m["low"])], ground, cm)
    scene.frame_start, scene.frame_end = 1, 80
    assert bpy.ops.motiongpt.describe() == {'FINISHED'}
    caption = settings.last_caption
    MATRIX[kind, "describe"] = f"{len(caption)} characters"
    print(f"{kind} describe: '{caption}'")
    assert caption.strip()
    rig.animation_data.action = kept


@pytest.mark.parametrize("kind", ("mixamo", "stretched", "rigify"))
def test_generate_continue_inbetween(addon, kind, request, tmp_path, monkeypatch):
    """The cells test_rig_units.py fills for the other rigs, on the Mixamo-named BVH import; and
    on the non-uniformly scaled and the Rigify rig, Continue / In-between's ground measured as
    placement (the tiny model's continuation sinks 8-17 cm under its own first frame and plants
    its two feet up to 8.5 cm apart, so its feet cannot all be on any floor): the fitting puts
    the planted feet's median on the rig's ground, the evaluated bones follow the placed motion
    outside the seam blends (``LOCATION_FADE_SECONDS`` from each seam, where the root fades
    from the existing motion's height into the new one's)."""
    rig = build_rig(kind, request, tmp_path)
    scene = bpy.context.scene
    ground, cm = rig_ground(kind, rig)
    fade = int(round(operators.LOCATION_FADE_SECONDS * 20))
    if kind == "mixamo":
        assert 0.9 < cm < 1.1                                           # read as centimetres
    fits = Fits(monkeypatch)
    assert bpy.ops.motiongpt.generate(prompt="a person walks", seconds=2.0, seed=3) == {'FINISHED'}
    check_action_keys(kind, rig, anim_compat.fcurves_of(rig))
    check(kind, "generate", rig_measure(kind, rig, range(1, 41)), fits.contacts()[:40], ground, cm)

    assert bpy.ops.motiongpt.continue_motion(seconds=1.0) == {'FINISHED'}
    assert tuple(rig.animation_data.action.frame_range) == (1.0, 60.0)
    check_action_keys(kind, rig, anim_compat.fcurves_of(rig))
    joints = fits.joints[-1]
    clear = np.arange(21) > fade
    placed = predicted_feet(kind, rig, joints, ground, cm, clean_feet=True)[:21], clear
    check(kind, "continue", rig_measure(kind, rig, range(40, 61)), foot_contacts(joints, 20.0)[:21], ground, cm,
          placed)

    select_keys(rig, (10, 40))
    kept = keys_at(rig, 10), keys_at(rig, 40)
    assert bpy.ops.motiongpt.inbetween() == {'FINISHED'}
    assert (keys_at(rig, 10), keys_at(rig, 40)) == kept
    check_action_keys(kind, rig, anim_compat.fcurves_of(rig))
    joints = fits.joints[-1]
    rows = np.arange(31)
    clear = (rows > fade) & (rows < 30 - fade)
    placed = predicted_feet(kind, rig, joints, ground, cm, clean_feet=False)[:31], clear
    check(kind, "in-between", rig_measure(kind, rig, range(10, 41)), foot_contacts(joints, 20.0)[:31], ground,
          cm, placed)
    scene.frame_set(1)


def test_print_the_matrix():
    """Runs last in the module: the measured matrix, for the note and the README."""
    for (kind, operator), text in sorted(MATRIX.items()):
        print(f"MATRIX {kind:10s} {operator:11s} {text}")
