"""The one place that knows how Actions differ between Blender 4.2 and 5.0.

4.2/4.3: F-Curves live on ``Action.fcurves``. 4.4+: slotted actions; F-Curves live in a
channelbag of a keyframe strip, per slot (``Action.fcurves`` on 4.4/4.5 only shows the first
slot; 5.0 removed it). Everything here takes a "channels" handle: the channelbag on 4.4+, the
Action itself on 4.2/4.3.
"""
from __future__ import annotations

import bpy
import numpy as np

HAS_SLOTS = hasattr(bpy.types, "ActionSlot")
_INTERPOLATION = {"CONSTANT": 0, "LINEAR": 1, "BEZIER": 2}


def new_action(obj: bpy.types.Object, name: str):
    """A new Action assigned to ``obj`` (with an object slot on 4.4+); returns (action, channels)."""
    anim = obj.animation_data or obj.animation_data_create()
    action = bpy.data.actions.new(name)
    if HAS_SLOTS:
        slot = action.slots.new(id_type='OBJECT', name=obj.name)
        channels = action.layers.new("Layer").strips.new(type='KEYFRAME').channelbag(slot, ensure=True)
        anim.action = action                      # the action first, then its slot
        anim.action_slot = slot
        return action, channels
    anim.action = action
    return action, action


def new_fcurve(channels, data_path: str, index: int, group: str) -> bpy.types.FCurve:
    """An F-Curve for ``data_path[index]`` in channel group ``group`` (created when missing)."""
    if isinstance(channels, bpy.types.Action):
        return channels.fcurves.new(data_path, index=index, action_group=group)
    fcurve = channels.fcurves.new(data_path, index=index)
    fcurve.group = channels.groups.get(group) or channels.groups.new(group)
    return fcurve


def write_keys(fcurve: bpy.types.FCurve, frames: np.ndarray, values: np.ndarray,
               interpolation: str = "LINEAR") -> None:
    """Append keys (frames (N,), values (N,)) in one go: ``keyframe_points.add`` + ``foreach_set``."""
    points = fcurve.keyframe_points
    start = len(points)
    count = len(frames)
    points.add(count)
    coords = np.empty((len(points), 2), dtype=np.float32)
    modes = np.empty(len(points), dtype=np.int32)
    if start:                                     # keep the existing keys (foreach_set sets all)
        points.foreach_get("co", coords.ravel())
        points.foreach_get("interpolation", modes)
    coords[start:, 0] = frames
    coords[start:, 1] = values
    points.foreach_set("co", coords.ravel())
    modes[start:] = _INTERPOLATION[interpolation]
    points.foreach_set("interpolation", modes)
    fcurve.update()                               # sorts the keys and computes the handles


_HANDLE_TYPES = {"FREE": 0, "AUTO": 1, "VECTOR": 2, "ALIGNED": 3, "AUTO_CLAMPED": 4}


def write_bezier_keys(fcurve: bpy.types.FCurve, frames: np.ndarray, values: np.ndarray,
                      left: np.ndarray, right: np.ndarray, handle_type: str = "ALIGNED") -> None:
    """Replace ``fcurve``'s keys by Bezier keys (frames (K,) increasing, values (K,)) with explicit
    handles left / right (K, 2) as (frame, value) pairs, all of type ``handle_type`` (ALIGNED keeps
    the curve smooth while an animator edits it); one ``add`` + ``foreach_set`` per attribute."""
    points = fcurve.keyframe_points
    if len(points):
        points.clear()
    count = len(frames)
    points.add(count)
    coords = np.empty((count, 2), dtype=np.float32)
    coords[:, 0] = frames
    coords[:, 1] = values
    points.foreach_set("co", coords.ravel())
    points.foreach_set("handle_left", np.asarray(left, dtype=np.float32).ravel())
    points.foreach_set("handle_right", np.asarray(right, dtype=np.float32).ravel())
    kinds = np.full(count, _HANDLE_TYPES[handle_type], dtype=np.int32)
    points.foreach_set("handle_left_type", kinds)
    points.foreach_set("handle_right_type", kinds)
    points.foreach_set("interpolation", np.full(count, _INTERPOLATION["BEZIER"], dtype=np.int32))
    fcurve.update()                               # sorted already; ALIGNED handles stay as written


def action_fcurves(action: bpy.types.Action) -> list:
    """Every F-Curve of ``action`` (all layers, strips and slots on 4.4+)."""
    if not HAS_SLOTS:
        return list(action.fcurves)
    curves = []
    for layer in action.layers:
        for strip in layer.strips:
            for bag in getattr(strip, "channelbags", ()):
                curves.extend(bag.fcurves)
    return curves


def fcurves_of(obj: bpy.types.Object) -> list:
    """The F-Curves that animate ``obj`` through its active action (and slot on 4.4+)."""
    anim = obj.animation_data
    action = anim.action if anim else None
    if action is None:
        return []
    if not HAS_SLOTS:
        return list(action.fcurves)
    if anim.action_slot is None:
        return []
    for layer in action.layers:
        for strip in layer.strips:
            channels = strip.channelbag(anim.action_slot)
            if channels:
                return list(channels.fcurves)
    return []


def push_to_nla(obj: bpy.types.Object, mute: bool = True):
    """Move ``obj``'s active action onto a new NLA track (muted by default so the next action
    plays alone); returns the track, or None when there was no action."""
    anim = obj.animation_data
    if anim is None or anim.action is None:
        return None
    action = anim.action
    slot = anim.action_slot if HAS_SLOTS else None
    track = anim.nla_tracks.new()
    track.name = action.name
    strip = track.strips.new(action.name, int(action.frame_range[0]), action)
    if HAS_SLOTS and slot is not None and strip.action_slot != slot:
        strip.action_slot = slot
    track.mute = mute
    anim.action = None
    return track


def active_state(obj: bpy.types.Object) -> tuple:
    """What ``restore_state`` needs to undo ``push_to_nla`` + ``new_action`` on failure."""
    anim = obj.animation_data
    if anim is None:
        return (False, None, None)
    return (True, anim.action, anim.action_slot if HAS_SLOTS else None)


def restore_state(obj: bpy.types.Object, state: tuple, track=None, action=None) -> None:
    """Put back the action (and slot) of ``state``, drop ``track`` and the new ``action``."""
    had_anim, old_action, old_slot = state
    anim = obj.animation_data
    if anim is not None:
        if track is not None:
            anim.nla_tracks.remove(track)
        anim.action = old_action
        if HAS_SLOTS and old_action is not None and old_slot is not None:
            anim.action_slot = old_slot
    if action is not None and action.name in bpy.data.actions:
        bpy.data.actions.remove(action)
    if not had_anim and anim is not None and not anim.nla_tracks:
        obj.animation_data_clear()
