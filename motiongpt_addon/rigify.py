"""Rigify generated rigs: recognised, keyed on their FK controls, read from their deform bones.

Pure Python (no bpy): ``retarget`` reads the rig and asks here which bones play what.

A rig Rigify generated from the human metarig (armature data with a ``rig_id`` property, or
the ``torso`` control beside ORG-/DEF- spine bones) is driven by constraints: its DEF- deform
bones follow ORG- bones, which follow the controls the animator keys. So the motion is

- **read** from the DEF- bones (``READ_MAP``, the bundled preset ``rigify``: DEF-spine,
  DEF-thigh.L, ...; what the mesh follows);
- **fitted** on the ORG- bones (``FIT_MAP``: the metarig's own skeleton, rest pose and hierarchy;
  ORG-foot's children include the heel, so the rig's floor is its heel);
- **keyed** on the controls (``CONTROLS``): each FK control takes the armature-space rotation of
  the SMPL joint whose ORG bone it drives, written relative to the rotation its real Blender parent
  has then (the FK arm hangs off MCH-upper_arm_parent, which follows ORG-shoulder, which copies
  ``shoulder``; the lower spine hangs upside down from the pivot: torso > spine_fk.001 >
  spine_fk > ORG-spine). ``torso`` carries the root motion (its location); ``hips``, ``chest`` and
  ``torso`` rotations are keyed at rest so the FK spine alone bends the body. ``root`` (the
  ground / master control) is never keyed.
- **switched** (``SWITCHES``): the limbs to FK (``IK_FK`` = 1 on upper_arm_parent / thigh_parent),
  their FK parents following the collar and pelvis (``FK_limb_follow`` = 0), neck and head
  following the chest (``neck_follow`` / ``head_follow`` = 1 on torso): one key each at the
  action's first frame, so the switch is part of the action and shows in the Dope Sheet.

DEF-/ORG-/MCH- bones are never keyed.
"""
from __future__ import annotations

PRESET = "rigify"

SIDES = (".L", ".R")

# SMPL joint -> the ORG bone the fit poses (the metarig's skeleton inside the generated rig)
FIT_MAP: dict[str, str] = {
    "pelvis": "ORG-spine", "spine1": "ORG-spine.001", "spine2": "ORG-spine.002", "spine3": "ORG-spine.003",
    "neck": "ORG-spine.004", "head": "ORG-spine.006",
    **{f"{side}_{joint}": f"ORG-{bone}{suffix}" for side, suffix in (("left", ".L"), ("right", ".R"))
       for joint, bone in (("hip", "thigh"), ("knee", "shin"), ("ankle", "foot"), ("foot", "toe"),
                           ("collar", "shoulder"), ("shoulder", "upper_arm"), ("elbow", "forearm"),
                           ("wrist", "hand"))},
}

# control -> (SMPL joint whose rotation it takes or None for rest, SMPL joint whose rotation its
# Blender parent carries or None when the parent is torso / the rig at rest)
CONTROLS: dict[str, tuple[str | None, str | None]] = {
    "torso": (None, None), "hips": (None, None), "chest": (None, None),
    "spine_fk.001": ("spine1", None), "spine_fk": ("pelvis", "spine1"),
    "spine_fk.002": ("spine2", None), "spine_fk.003": ("spine3", "spine2"),
    "neck": ("neck", "spine3"), "head": ("head", "neck"),
}
for _side, _suffix in (("left", ".L"), ("right", ".R")):
    CONTROLS.update({
        f"thigh_fk{_suffix}": (f"{_side}_hip", "pelvis"),
        f"shin_fk{_suffix}": (f"{_side}_knee", f"{_side}_hip"),
        f"foot_fk{_suffix}": (f"{_side}_ankle", f"{_side}_knee"),
        f"toe_fk{_suffix}": (f"{_side}_foot", f"{_side}_ankle"),
        f"shoulder{_suffix}": (f"{_side}_collar", "spine3"),
        f"upper_arm_fk{_suffix}": (f"{_side}_shoulder", f"{_side}_collar"),
        f"forearm_fk{_suffix}": (f"{_side}_elbow", f"{_side}_shoulder"),
        f"hand_fk{_suffix}": (f"{_side}_wrist", f"{_side}_elbow"),
    })
del _side, _suffix

ROOT_CONTROL = "torso"
# the controls from the root control down to the pelvis joint, in order: with torso at rest
# rotation, the pelvis sits at spine_fk.001's head + its turn of (spine_fk's head - that) + spine_fk's
# turn of (pelvis - spine_fk's head)
ROOT_PATH: tuple[str, ...] = ("spine_fk.001", "spine_fk")

# (pose bone, custom property, value) keyed once at the first frame
SWITCHES: tuple[tuple[str, str, float], ...] = tuple(
    [(f"{limb}_parent{suffix}", prop, value) for limb in ("upper_arm", "thigh") for suffix in SIDES
     for prop, value in (("IK_FK", 1.0), ("FK_limb_follow", 0.0))]
    + [(ROOT_CONTROL, "neck_follow", 1.0), (ROOT_CONTROL, "head_follow", 1.0)])

MARKER_BONES = ("torso", "ORG-spine", "DEF-spine")


def is_generated_rig(bone_names, data_keys=()) -> bool:
    """True for an armature Rigify generated: its data has a ``rig_id`` property (Rigify's own
    mark) or its bones include torso, ORG-spine and DEF-spine, and every control and ORG bone
    this module keys or fits is there (a rig from another metarig type is not one we can drive)."""
    names = set(bone_names)
    marked = "rig_id" in set(data_keys) or all(name in names for name in MARKER_BONES)
    return marked and not missing_bones(names)


def missing_bones(bone_names) -> list[str]:
    """The controls, switch holders and ORG bones this module needs that ``bone_names`` lacks."""
    names = set(bone_names)
    needed = list(CONTROLS) + list(FIT_MAP.values()) + [bone for bone, _, _ in SWITCHES]
    return [name for name in dict.fromkeys(needed) if name not in names]


def wants_rigify(bone_map) -> bool:
    """True when ``bone_map`` (as the add-on passes it) asks for the rigify handling: None
    (auto-detect) or the preset id 'rigify' / a BoneMap loaded from it."""
    if bone_map is None:
        return True
    if isinstance(bone_map, str):
        return bone_map == PRESET
    return getattr(bone_map, "source", None) == PRESET
