"""The panel's settings (saved with the scene) and the running job's status (runtime only).

``Scene.motiongpt``: what the operators fall back to when a property is not given, and the rows
of the prompt timeline (``timeline_rows``).
``WindowManager.motiongpt_status``: what the status line shows while a job runs.
"""
from __future__ import annotations

import bpy
from bpy.props import (BoolProperty, CollectionProperty, EnumProperty, FloatProperty, IntProperty,
                       PointerProperty, StringProperty)

# The body parts of a timeline row: engine.timeline.PARTS in upper case.
BODY_PARTS = (('WHOLE', "Whole", "The whole body and the root"),
              ('UPPER', "Upper Body", "Arms, neck and head, on top of the whole-body motion under it"),
              ('LOWER', "Lower Body", "Root, legs and lower spine, under the whole-body motion's upper body"))


def _is_armature(_self, obj) -> bool:
    return obj.type == 'ARMATURE'


def _preset_items(_self, _context):
    from engine.formats.bone_maps import list_presets
    items = [(name, name.replace("_", " ").title(), f"The '{name}' bone-map preset")
             for name in list_presets()]
    _preset_items.cache = items or [('NONE', "None", "No presets found")]   # keep the strings alive
    return _preset_items.cache


class MotionGPTTimelineRow(bpy.types.PropertyGroup):
    """One row of the prompt timeline: what happens, from which frame, how long, on which part."""

    prompt: StringProperty(name="Prompt", default="", description="What the character does, e.g. 'a person waves'")
    start: IntProperty(name="Start", default=1, description="First frame of the row (the earliest row's start is "
                       "where the motion begins)")
    length: IntProperty(name="Length", default=0, min=0, description="Length in frames; 0 lets the model choose "
                        "(a body-part layer then lasts to the end of the whole-body row under it)")
    part: EnumProperty(name="Body Part", items=BODY_PARTS, default='WHOLE')


class MotionGPTSettings(bpy.types.PropertyGroup):
    """Per-scene settings of the MotionGPT panel."""

    target: PointerProperty(name="Armature", type=bpy.types.Object, poll=_is_armature,
                            description="The armature to animate (empty: the active object)")
    prompt: StringProperty(name="Prompt", description="What the character does, e.g. "
                           "'a person walks forward and waves'", default="")
    auto_duration: BoolProperty(name="Auto Length", default=True,
                                description="Let the model choose how long the motion is")
    seconds: FloatProperty(name="Seconds", default=4.0, min=0.2, soft_max=10.0, max=60.0, unit='TIME_ABSOLUTE',
                           description="Length of the generated motion")
    seed: IntProperty(name="Seed", default=0, min=0,
                      description="Random seed; variants use seed, seed+1, ... (after 2147483647 comes 0)")
    variants: IntProperty(name="Variants", default=1, min=1, max=16,
                          description="How many different motions to generate (one Action each)")
    bone_map_mode: EnumProperty(
        name="Bone Map", default='AUTO',
        items=(('AUTO', "Auto", "Detect the bone naming from the armature"),
               ('PRESET', "Preset", "A bundled bone-map preset"),
               ('FILE', "File", "A bone-map JSON file")))
    bone_map_preset: EnumProperty(name="Preset", items=_preset_items)
    bone_map_file: StringProperty(name="Bone Map File", subtype='FILE_PATH')
    in_place: BoolProperty(name="In Place", default=False, description="Drop the horizontal root motion")
    keys: EnumProperty(
        name="Keys", default='EVERY_FRAME',
        items=(('EVERY_FRAME', "Every Frame", "One key per frame on every channel (exact)"),
               ('SPARSE', "Sparse", "The fewest Bezier keys that keep every bone within the tolerances, "
                "easier to edit (Generate, Batch and Timeline; In-between and Continue key every frame)")))
    key_rotation_tolerance: FloatProperty(name="Rotation Tolerance", default=1.0, min=0.01, max=45.0,
                                          soft_max=5.0, precision=2,
                                          description="Sparse keys: how far (degrees) a bone's rotation may "
                                          "differ from the every-frame motion")
    key_location_tolerance: FloatProperty(name="Location Tolerance", default=5.0, min=0.01, max=1000.0,
                                          soft_max=50.0, precision=1,
                                          description="Sparse keys: how far (millimetres) the root's location may "
                                          "differ from the every-frame motion")
    inbetween_prompt: StringProperty(name="Steer", default="",
                                     description="Optional words that steer the in-between, e.g. 'jumps'")
    continue_seconds: FloatProperty(name="Continue By", default=2.0, min=0.2, max=30.0, unit='TIME_ABSOLUTE')
    batch_source: EnumProperty(
        name="Prompts From", default='TEXT',
        items=(('TEXT', "Text", "A Text datablock, one prompt per line"),
               ('FILE', "File", "A .txt file, one prompt per line")))
    batch_text: PointerProperty(name="Text", type=bpy.types.Text)
    batch_file: StringProperty(name="File", subtype='FILE_PATH')
    batch_layout: EnumProperty(
        name="Layout", default='NLA',
        items=(('NLA', "NLA Strips", "One strip per clip, end to end on one NLA track of the armature"),
               ('ACTIONS', "Actions", "Separate Actions with a fake user, not assigned")))
    last_caption: StringProperty(name="Caption", default="")
    timeline_rows: CollectionProperty(type=MotionGPTTimelineRow, name="Timeline")
    timeline_index: IntProperty(name="Active Row", default=0, min=0)


class MotionGPTStatus(bpy.types.PropertyGroup):
    """The running job, for the status line (not saved)."""

    running: BoolProperty(default=False)
    task: StringProperty(default="")
    message: StringProperty(default="")
    progress: FloatProperty(default=0.0, min=0.0, max=1.0, subtype='FACTOR')


classes = (MotionGPTTimelineRow, MotionGPTSettings, MotionGPTStatus)


def register_properties() -> None:
    bpy.types.Scene.motiongpt = PointerProperty(type=MotionGPTSettings)
    bpy.types.WindowManager.motiongpt_status = PointerProperty(type=MotionGPTStatus)


def unregister_properties() -> None:
    del bpy.types.WindowManager.motiongpt_status
    del bpy.types.Scene.motiongpt
