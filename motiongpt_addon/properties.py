"""The panel's settings (saved with the scene) and the running job's status (runtime only).

``Scene.motiongpt``: what the operators fall back to when a property is not given.
``WindowManager.motiongpt_status``: what the status line shows while a job runs.
"""
from __future__ import annotations

import bpy
from bpy.props import (BoolProperty, EnumProperty, FloatProperty, IntProperty, PointerProperty,
                       StringProperty)


def _is_armature(_self, obj) -> bool:
    return obj.type == 'ARMATURE'


def _preset_items(_self, _context):
    from engine.bone_maps import list_presets
    items = [(name, name.replace("_", " ").title(), f"The '{name}' bone-map preset")
             for name in list_presets()]
    _preset_items.cache = items or [('NONE', "None", "No presets found")]   # keep the strings alive
    return _preset_items.cache


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


class MotionGPTStatus(bpy.types.PropertyGroup):
    """The running job, for the status line (not saved)."""

    running: BoolProperty(default=False)
    task: StringProperty(default="")
    message: StringProperty(default="")
    progress: FloatProperty(default=0.0, min=0.0, max=1.0, subtype='FACTOR')


classes = (MotionGPTSettings, MotionGPTStatus)


def register_properties() -> None:
    bpy.types.Scene.motiongpt = PointerProperty(type=MotionGPTSettings)
    bpy.types.WindowManager.motiongpt_status = PointerProperty(type=MotionGPTStatus)


def unregister_properties() -> None:
    del bpy.types.WindowManager.motiongpt_status
    del bpy.types.Scene.motiongpt
