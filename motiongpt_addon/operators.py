"""The MotionGPT operators: Generate, Fill In-between, Describe, Continue, Batch, Cancel, and the
prompt timeline's (add, remove, move a row; Generate Timeline).

Every operator first checks its input on the main thread (a clear ``report({'ERROR'})`` and the
scene unchanged when something is wrong), then turns the work into a ``Job``: a list of steps,
each one request to the engine worker (``client.py``) plus a function that applies the result
to the scene on the main thread. A compound prompt ("walks forward and waves") is planned by the
engine as a timeline; its plan ("walks forward (6.2 s) | + upper body: waves (6.2 s)") is stored
on the Action (``motiongpt_plan``) and shown in the job's outcome.

How a job runs:
- From the UI (``invoke``: the panel's buttons, menus) the job runs in the background of Blender:
  ``drive_jobs`` is a ``bpy.app.timers`` function that polls the worker and applies results; the
  operator stays modal only to catch Esc and to report the outcome (and owns the undo step).
- ``execute`` (scripts, ``blender -b``, the bpy module) runs the job to completion before it
  returns, so ``bpy.ops.motiongpt.generate(prompt="...")`` is scriptable. The hidden option
  ``asynchronous=True`` starts the job as the UI does and returns at once (tests then call
  ``drive_jobs()`` themselves, since timers never fire headless).

Only one job runs at a time. Cancel (the panel's button, Esc, ``bpy.ops.motiongpt.cancel()``)
ends a job at its next poll (0.1 s); steps already applied stay (a batch keeps its clips).

Faults: any exception of an operator becomes one ``report({'ERROR'})`` and CANCELLED
(``reporting.reports_errors``); any failure of a step (the worker, a disk fault writing its input
or reading its result, a bug) ends the job FAILED with one message, and the next request starts
afresh. Library data that could not keep new keys, a degenerate rig (scale 0, bones at one point)
and bad text are refused before the model runs. Seeds wrap at 2**31 (``variant_seed``) so that
seed + variant fits the Action's 32-bit ID property.
"""
from __future__ import annotations

import dataclasses
import math
import os
import time
import unicodedata
from dataclasses import dataclass
from typing import Callable

import bpy
import numpy as np
from bpy.props import BoolProperty, EnumProperty, FloatProperty, IntProperty, StringProperty

from engine.errors import MotionError
from engine.motion import MODEL_FPS, Motion
from engine.timeline import Segment, check_segments

from . import anim_compat, client, preferences, retarget
from .reporting import error_message, reports_errors
from .skeleton_fit import max_joint_travel, rotation_channels

POLL_SECONDS = 0.1
MAX_SECONDS = 60.0              # longest generated or continued clip
MAX_GAPS = 16                   # in-between gaps filled by one call
MAX_GAP_SECONDS = 10.0          # longest in-between gap (the model was trained on clips up to 9.8 s)
LOCATION_FADE_SECONDS = 0.5     # Continue / In-between: a root-location seam offset fades out over this
STILL_METRES = 0.01            # Describe: a rig whose joints all move less than this over the range is still
CONTEXT_SECONDS = 2.0           # existing motion shown to the model around a gap / before a continuation
MAX_BATCH_PROMPTS = 500
MAX_PROMPT_CHARS = 500
ACTION_NAME_CHARS = 48
SEED_LIMIT = 2 ** 31            # seeds are kept in 0 .. 2**31 - 1: an ID property int is 32-bit signed
BATCH_TRACK_NAME = "MotionGPT Batch"
NEW_ROW_SECONDS = 2.0           # the length a new timeline row gets
MAX_NOTES = 3                   # engine notices reported per job (the rest are counted)


# ----------------------------------------------------------------------------- jobs

@dataclass
class Step:
    """One request to the worker and what to do with its result on the main thread: ``apply(result,
    reply)`` gets the request's result (a Motion, a text) and its whole reply (e.g. its "plan")."""

    label: str
    submit: Callable[[client.WorkerClient], client.Request]
    apply: Callable[[object, dict], object]


class Job:
    """Steps run one after another against the worker; see the module docstring."""

    def __init__(self, title: str, steps: list[Step], worker: client.WorkerClient,
                 on_end: Callable[["Job"], None] | None = None):
        self.title, self.steps, self.worker, self.on_end = title, steps, worker, on_end
        self.index = 0
        self.request: client.Request | None = None
        self.state = 'RUNNING'          # RUNNING, DONE, CANCELLED, FAILED
        self.error = ""
        self.cancel_requested = False
        self.results: list = []         # what each applied step returned (captions, actions)
        self.read_as: list[str] = []    # prompts as the model read them, where it did not know words
        self.plans: list[str] = []      # how the engine planned compound prompts and timelines
        self.notes: list[str] = []      # the engine's notices: actions the model knows no motion for

    @property
    def finished(self) -> bool:
        return self.state != 'RUNNING'

    @property
    def applied(self) -> int:
        return len(self.results)

    @property
    def progress(self) -> float:
        return self.index / max(1, len(self.steps))

    def status_text(self) -> str:
        if self.finished:
            return self.summary()
        label = self.steps[self.index].label if self.index < len(self.steps) else ""
        detail = self.request.status if self.request is not None and self.request.status else label
        return f"{self.title} {self.index + 1} / {len(self.steps)}: {detail}"

    def summary(self) -> str:
        count = f"{self.applied} / {len(self.steps)}"
        if self.state == 'DONE':
            return f"{self.title}: done ({count}){self.plan_note()}"
        if self.state == 'CANCELLED':
            return f"{self.title}: cancelled after {count}{self.plan_note()}"
        return f"{self.title} failed after {count}: {self.error}"

    def plan_note(self) -> str:
        """'; planned as: ...' for the first plan of the job ('' when the engine planned nothing)."""
        if not self.plans:
            return ""
        more = f" (+{len(self.plans) - 1} more)" if len(self.plans) > 1 else ""
        return f"; planned as: {self.plans[0]}{more}"

    def cancel(self) -> None:
        """Ask the job to stop; it ends at its next ``step`` (thread-safe: only sets a flag)."""
        self.cancel_requested = True

    def step(self) -> None:
        """Advance as far as possible without blocking (main thread)."""
        while not self.finished:
            self.worker.poll()
            if self.cancel_requested:
                if self.request is not None:
                    self.worker.cancel(self.request)
                self._end('CANCELLED')
                return
            if self.request is None:
                if self.index >= len(self.steps):
                    self._end('DONE')
                    return
                try:
                    self.request = self.steps[self.index].submit(self.worker)
                except Exception as error:  # no process, a disk fault writing the input, a bug
                    return self._end('FAILED', error_message(error))
            if not self.request.done:
                return
            request, self.request = self.request, None
            try:
                result = request.result()
                self.results.append(self.steps[self.index].apply(result, request.reply))
                if request.reply.get("read_as") and request.reply["read_as"] not in self.read_as:
                    self.read_as.append(request.reply["read_as"])
                if request.reply.get("plan"):
                    self.plans.append(request.reply["plan"])
                for note in request.reply.get("notes") or ():
                    if isinstance(note, str) and note not in self.notes:
                        self.notes.append(note)
            except client.WorkerError as error:
                return self._end('CANCELLED' if error.kind == "cancelled" else 'FAILED', str(error))
            except Exception as error:      # nothing may leave the job (and the UI) stuck
                return self._end('FAILED', error_message(error))
            self.index += 1

    def run_to_end(self) -> None:
        """Block until the job ends (background mode)."""
        while not self.finished:
            self.step()
            if not self.finished:
                time.sleep(0.01)

    def _end(self, state: str, error: str = "") -> None:
        self.state, self.error = state, error
        if self.on_end is not None:
            try:
                self.on_end(self)
            except Exception as problem:    # clean-up must not hide the outcome
                self.error = self.error or error_message(problem)


_running: Job | None = None


def running_job() -> Job | None:
    """The job in progress, if any."""
    return _running if _running is not None and not _running.finished else None


def _set_status(job: Job | None) -> None:
    status = getattr(bpy.context.window_manager, "motiongpt_status", None)
    if status is None:
        return
    status.running = job is not None and not job.finished
    status.task = job.title if job else ""
    status.message = job.status_text() if job else ""
    status.progress = job.progress if job else 0.0


def _redraw() -> None:
    for window in bpy.context.window_manager.windows:
        for area in window.screen.areas:
            if area.type in {'VIEW_3D', 'DOPESHEET_EDITOR', 'GRAPH_EDITOR', 'NLA_EDITOR'}:
                area.tag_redraw()


def drive_jobs():
    """The ``bpy.app.timers`` function: advance the running job; seconds until the next call, or
    None once it has ended (tests call it directly: timers never fire headless)."""
    job = _running
    if job is None:
        return None
    job.step()
    _set_status(job)
    _redraw()
    if job.finished:
        print(f"MotionGPT: {job.summary()}")
        return None
    return POLL_SECONDS


def cancel_running_job() -> bool:
    job = running_job()
    if job is None:
        return False
    job.cancel()
    return True


def stop_jobs() -> None:
    """Unregister: cancel and forget the running job, stop the timer."""
    global _running
    if _running is not None and not _running.finished:
        _running.cancel()
        _running.step()
    _running = None
    if bpy.app.timers.is_registered(drive_jobs):
        bpy.app.timers.unregister(drive_jobs)
    stop_preload()


# ----------------------------------------------------------------------------- loading the model at start

PRELOAD_DELAY_SECONDS = 1.0
_preload: client.Request | None = None


def preload_engine():
    """The ``bpy.app.timers`` function that ``register`` starts (the preference "Load the Model at
    Start", interactive sessions only): starts the engine and sends it "load" (the model, and what
    a first prompt reads), so that the first Generate does not wait for them. Quiet: a setting
    that cannot work yet (no torch installed, a missing model folder) is left for the first
    request to report. Runs once (returns None); ``watch_preload`` collects the reply."""
    global _preload
    prefs = preferences.addon_preferences()
    if prefs is None or not prefs.preload_model or preferences.check_model_setting() or running_job():
        return None
    try:
        _preload = client.shared_client(preferences.worker_settings()).submit("load")
    except (client.WorkerError, MotionError) as problem:
        print(f"MotionGPT: the model was not loaded at start: {error_message(problem)}")
        return None
    if not bpy.app.timers.is_registered(watch_preload):
        bpy.app.timers.register(watch_preload, first_interval=POLL_SECONDS)
    return None


def watch_preload():
    """Timer: hand the worker's replies over until the "load" request has its answer, then say
    in the console how it went; seconds until the next call, or None when done."""
    global _preload
    worker = client.current_client()
    if _preload is None or worker is None:
        _preload = None
        return None
    worker.poll()
    if not _preload.done:
        return POLL_SECONDS
    try:
        device = _preload.result().get("device", "")
        print(f"MotionGPT: the model is loaded ({device})")
    except client.WorkerError as problem:
        print(f"MotionGPT: the model was not loaded at start: {error_message(problem)}")
    _preload = None
    return None


def preload_request() -> client.Request | None:
    """The "load" request sent at start, while it has not been answered (tests)."""
    return _preload


def stop_preload() -> None:
    """Unregister: forget the load request and stop its timers."""
    global _preload
    _preload = None
    for timer in (preload_engine, watch_preload):
        if bpy.app.timers.is_registered(timer):
            bpy.app.timers.unregister(timer)


# ----------------------------------------------------------------------------- shared checks

def _problem(message: str) -> MotionError:
    return MotionError(message)


def settings_of(context):
    return context.scene.motiongpt


def target_armature(context, prefer_active: bool = False):
    """The panel's target armature, else the active object when it is an armature."""
    active = context.active_object if getattr(context, "active_object", None) else context.view_layer.objects.active
    target = settings_of(context).target
    candidates = [active, target] if prefer_active else [target, active]
    for obj in candidates:
        if obj is not None and obj.type == 'ARMATURE' and obj.name in context.scene.objects:
            if obj.mode == 'EDIT':
                raise _problem(f"armature '{obj.name}' is in Edit Mode; switch to Object or Pose Mode first")
            return obj
    if active is not None:
        raise _problem(f"'{active.name}' is not an armature: select an armature (or pick one in the MotionGPT panel)")
    raise _problem("no armature: select an armature (or pick one in the MotionGPT panel)")


def bone_map_of(context, armature, keys: bool = True):
    """The bone map from the panel (None = detect), checked against the armature now; with
    ``keys``, also that it leaves something to key (``retarget.check_keyable``)."""
    settings = settings_of(context)
    bone_map = None
    if settings.bone_map_mode == 'PRESET':
        bone_map = settings.bone_map_preset
    elif settings.bone_map_mode == 'FILE':
        bone_map = bpy.path.abspath(settings.bone_map_file).strip()
        if not bone_map or not os.path.isfile(bone_map):
            raise _problem(f"the bone-map file does not exist: '{bone_map}'")
    if keys:
        retarget.check_can_key(armature, bone_map)
    else:
        retarget.check_rig(armature, bone_map)
    return bone_map


def worker_for(context) -> client.WorkerClient:
    problem = preferences.check_model_setting(context)
    if problem:
        raise _problem(problem)
    return client.shared_client(preferences.worker_settings(context))


def clean_text(text) -> str:
    """``text`` on one printable line: control and format characters (NUL, newlines, tabs, escape,
    bidi overrides such as U+202E, zero-width marks) and other separators become spaces, and runs
    of spaces one space. The one cleaning of prompts, captions and Action names."""
    text = "".join(" " if unicodedata.category(ch)[0] in "CZ" else ch for ch in str(text))
    return " ".join(text.split())


def clean_prompt(text: str, what: str = "prompt") -> str:
    """A prompt as it is sent and stored (``clean_text``); MotionError when empty or too long."""
    text = clean_text(text)
    if not text:
        raise _problem(f"the {what} is empty: describe the motion in words, e.g. 'a person walks forward'")
    if len(text) > MAX_PROMPT_CHARS:
        raise _problem(f"the {what} is {len(text)} characters long; keep it under {MAX_PROMPT_CHARS}")
    return text


def clean_caption(text: str) -> str:
    """A caption as it is stored (a model may emit control characters)."""
    return clean_text(text) or "(no description)"


def action_name_for(prompt: str) -> str:
    """The Action name for a prompt: cleaned, at most ``ACTION_NAME_CHARS`` characters."""
    name = clean_text(prompt) or "MotionGPT"
    return name if len(name) <= ACTION_NAME_CHARS else name[:ACTION_NAME_CHARS - 3].rstrip() + "..."


def plan_property(reply: dict) -> dict:
    """{"motiongpt_plan": plan} for a reply that carries the engine's plan, else {}."""
    return {"motiongpt_plan": clean_text(reply["plan"])} if reply.get("plan") else {}


def key_options(settings) -> dict:
    """apply_motion's keyword arguments for the panel's Keys setting (Every frame or Sparse)."""
    if settings.keys != 'SPARSE':
        return {"keys": "EVERY_FRAME"}
    return {"keys": "SPARSE", "rotation_tolerance": math.radians(settings.key_rotation_tolerance),
            "location_tolerance": settings.key_location_tolerance / 1000.0}


def key_note(action_names) -> str:
    """', 1,234 keys (sparse; every frame: 22,413)' for actions keyed sparsely ('' otherwise)."""
    keys = every_frame = 0
    for name in action_names:
        action = bpy.data.actions.get(name) if isinstance(name, str) else None
        if action is not None:
            counts = retarget.key_counts(action)
            keys, every_frame = keys + counts[0], every_frame + counts[1]
    if keys == every_frame:
        return ""
    return f", {keys:,} keys (sparse; every frame: {every_frame:,})"


def variant_seed(seed: int, offset: int) -> int:
    """The seed of variant (or batch line) ``offset``: ``seed + offset``, wrapping to 0 after
    2**31 - 1 so that it fits a 32-bit ID property and the worker's seed range."""
    return (int(seed) + int(offset)) % SEED_LIMIT


def check_animatable(armature, adds_to_action: bool = False) -> None:
    """Refuse, before the model runs, an armature whose new keys would be lost on save (linked
    from a library, a system override) and, for ``adds_to_action``, a linked current action."""
    anim = armature.animation_data
    action = anim.action if adds_to_action and anim is not None else None
    retarget.check_editable(armature, action)


def _armature_by_name(name: str):
    obj = bpy.data.objects.get(name)
    if obj is None or obj.type != 'ARMATURE':
        raise _problem(f"the armature '{name}' no longer exists")
    return obj


def _action_range(action) -> tuple[int, int]:
    start, end = action.frame_range
    return int(math.floor(start + 1e-6)), int(math.ceil(end - 1e-6))


def _bone_fcurves(armature) -> list:
    return [fc for fc in anim_compat.fcurves_of(armature) if fc.data_path.startswith("pose.bones[")]


def frames_text(frames: list[int]) -> str:
    """Frames for a message: all of up to four, else 'N keys on frames A-B'."""
    if len(frames) <= 4:
        return ", ".join(map(str, frames))
    return f"{len(frames)} keys on frames {frames[0]}-{frames[-1]}"


def selected_key_frames(armature) -> list[int]:
    """Distinct frames of the selected keys on the armature's bone channels (sorted)."""
    frames = set()
    for fcurve in _bone_fcurves(armature):
        for point in fcurve.keyframe_points:
            if point.select_control_point:
                frames.add(int(round(point.co[0])))
    return sorted(frames)


# ----------------------------------------------------------------------------- writing a pose track

def _fitted_channels(armature, joints: np.ndarray, samples_per_frame: float, bone_map, frame_count: int,
                     clean_feet: bool) -> list[tuple[str, int, str, np.ndarray]]:
    """Fit joints (T, 22, 3) at 20 fps onto the armature; sample the pose track at ``frame_count``
    consecutive scene frames, the joints' rows being ``samples_per_frame`` apart per scene frame.
    Returns [(data_path, index, group, values (frame_count,))] for the channels that may be keyed
    (no locked channel, no DEF-/ORG-/MCH- or constraint-driven bone: ``retarget.keyable_channels``)."""
    fitted = retarget.fit_pose(armature, joints, MODEL_FPS, bone_map, clean_feet=clean_feet)
    track = dataclasses.replace(fitted.track, fps=samples_per_frame).resample(1.0)
    channels = []
    for column, bone in enumerate(track.bones):
        pose_bone = armature.pose.bones[fitted.bone_names[bone]]
        prop, values = rotation_channels(track.rotations[:frame_count, column], pose_bone.rotation_mode)
        path, keyable = pose_bone.path_from_id(prop), retarget.keyable_channels(pose_bone, prop, values.shape[1])
        channels += [(path, i, pose_bone.name, values[:, i]) for i in range(values.shape[1]) if keyable[i]]
        if bone == track.root_bone:
            path, keyable = pose_bone.path_from_id("location"), retarget.keyable_channels(pose_bone, "location", 3)
            channels += [(path, i, pose_bone.name, track.root_location[:frame_count, i]) for i in range(3) if keyable[i]]
    return channels


def _current_value(armature, data_path: str, index: int) -> float:
    value = armature.path_resolve(data_path)
    return float(value[index])


def _channel_bag(armature):
    """(fcurves by (path, index), function making a new F-Curve) of the armature's action."""
    existing = {(fc.data_path, fc.array_index): fc for fc in anim_compat.fcurves_of(armature)}
    anim = armature.animation_data
    action = anim.action

    def make(path: str, index: int, group: str):
        if anim_compat.HAS_SLOTS:
            for layer in action.layers:
                for strip in layer.strips:
                    bag = strip.channelbag(anim.action_slot, ensure=True)
                    return anim_compat.new_fcurve(bag, path, index, group)
        return anim_compat.new_fcurve(action, path, index, group)
    return existing, make


def write_between(armature, channels, first: int, last: int, blend: str) -> None:
    """Key ``channels`` (sampled at frames first..last) on frames strictly between first and last
    (``blend='BOTH'``) or after first (``'START'``), joined to the existing curves by an offset:
    the difference to the existing value at ``first`` (and ``last``): on rotations it fades
    linearly across (kept to the end for 'START'); on locations it fades out within
    ``LOCATION_FADE_SECONDS`` of each seam, so the fitted clip keeps its feet on the ground."""
    existing, make = _channel_bag(armature)
    frames = np.arange(first, last + 1, dtype=np.float64)
    fade = max(1.0, min(LOCATION_FADE_SECONDS * retarget.scene_fps(bpy.context.scene), last - first))
    fade_first = np.clip(1.0 - (frames - first) / fade, 0.0, 1.0)
    fade_last = np.clip(1.0 - (last - frames) / fade, 0.0, 1.0)
    quat_groups: dict[str, list[int]] = {}
    new_values = []
    for number, (path, index, group, values) in enumerate(channels):
        fcurve = existing.get((path, index))
        at_first = fcurve.evaluate(first) if fcurve else _current_value(armature, path, index)
        offset_first = at_first - values[0]
        at_last = None
        if blend == 'BOTH':
            at_last = fcurve.evaluate(last) if fcurve else _current_value(armature, path, index)
        if path.endswith("location"):          # the fitted clip stands on the ground: fade the seams out
            values = values + fade_first * offset_first
            if at_last is not None:
                values = values + fade_last * (at_last - values[-1])
        elif blend == 'BOTH':
            weight = (frames - first) / max(1, last - first)
            values = values + (1.0 - weight) * offset_first + weight * (at_last - values[-1])
        else:
            values = values + offset_first
        new_values.append(values)
        if path.endswith("rotation_quaternion"):
            quat_groups.setdefault(path, []).append(number)
    for numbers in quat_groups.values():           # keep keyed quaternions unit length
        if len(numbers) == 4:
            block = np.stack([new_values[n] for n in numbers], -1)
            block /= np.maximum(np.linalg.norm(block, axis=-1, keepdims=True), 1e-9)
            for column, n in enumerate(numbers):
                new_values[n] = block[:, column]
    inner = slice(1, -1) if blend == 'BOTH' else slice(1, None)
    for (path, index, group, _), values in zip(channels, new_values):
        fcurve = existing.get((path, index))
        if fcurve is None:
            fcurve = make(path, index, group)
            anim_compat.write_keys(fcurve, frames[[0, -1]] if blend == 'BOTH' else frames[:1],
                                   values[[0, -1]] if blend == 'BOTH' else values[:1])
        points = fcurve.keyframe_points
        upper = last if blend == 'BOTH' else math.inf
        for point in reversed(list(points)):
            if first < point.co[0] < upper:
                points.remove(point, fast=True)
        anim_compat.write_keys(fcurve, frames[inner], values[inner])


# ----------------------------------------------------------------------------- the operators

class _JobOperator:
    """Shared invoke/execute/modal: subclasses implement ``make_job(context) -> Job``."""

    asynchronous: BoolProperty(name="Asynchronous", default=False, options={'HIDDEN', 'SKIP_SAVE'},
                               description="Start the job and return at once (as the UI does)")

    def value(self, context, name: str, setting: str):
        """The operator's property when it was given, else the panel's setting."""
        if self.properties.is_property_set(name):
            return getattr(self, name)
        return getattr(settings_of(context), setting)

    def _start(self, context) -> Job | None:
        global _running
        if running_job() is not None:
            self.report({'ERROR'}, f"MotionGPT is busy ({_running.title}); wait for it or press Cancel")
            return None
        try:
            job = self.make_job(context)
        except Exception as error:
            self.report({'ERROR'}, error_message(error))
            return None
        _running = job
        _set_status(job)
        return job

    def _outcome(self, job: Job):
        _set_status(job)
        if job.state == 'FAILED':
            self.report({'ERROR'}, job.summary())
        elif job.state == 'CANCELLED':
            self.report({'WARNING'}, job.summary())
        else:
            self.report({'INFO'}, self.done_message(job))
        for note in job.notes[:MAX_NOTES]:     # the motion is keyed all the same
            self.report({'WARNING'}, f"MotionGPT: {clean_text(note)}")
        if len(job.notes) > MAX_NOTES:
            self.report({'WARNING'}, f"MotionGPT: {len(job.notes) - MAX_NOTES} more prompts name actions "
                                     "this model knows no motion for")
        return {'FINISHED'} if job.applied else {'CANCELLED'}

    def done_message(self, job: Job) -> str:
        return job.summary()

    @reports_errors
    def execute(self, context):
        job = self._start(context)
        if job is None:
            return {'CANCELLED'}
        self._job = job
        if self.asynchronous:
            self._job = None                # runs on after this operator returned
            if not bpy.app.timers.is_registered(drive_jobs):
                bpy.app.timers.register(drive_jobs, first_interval=POLL_SECONDS)
            return {'FINISHED'}
        job.run_to_end()
        return self._outcome(job)

    @reports_errors
    def invoke(self, context, event):
        if bpy.app.background or context.window is None:
            return self.execute(context)
        job = self._start(context)
        if job is None:
            return {'CANCELLED'}
        self._job = job
        if not bpy.app.timers.is_registered(drive_jobs):
            bpy.app.timers.register(drive_jobs, first_interval=0.0)
        self._timer = context.window_manager.event_timer_add(POLL_SECONDS, window=context.window)
        context.window_manager.modal_handler_add(self)
        return {'RUNNING_MODAL'}

    @reports_errors
    def modal(self, context, event):
        job = self._job
        if event.type == 'ESC' and event.value == 'PRESS' and not job.finished:
            job.cancel()
            drive_jobs()
            return {'RUNNING_MODAL'}
        if not job.finished:
            return {'PASS_THROUGH'}
        self.clean_up(context)
        result = self._outcome(job)
        self.after_ui(context, job)
        return result

    def clean_up(self, context) -> None:
        """Remove the modal timer and stop this operator's job if it still runs (also after an error)."""
        timer, self._timer = getattr(self, "_timer", None), None
        if timer is not None:
            context.window_manager.event_timer_remove(timer)
        job = getattr(self, "_job", None)
        if job is not None and not job.finished:
            job.cancel()
            drive_jobs()

    def after_ui(self, context, job: Job) -> None:
        """Interactive extras once the job ended (Describe shows a popup)."""


class MOTIONGPT_OT_generate(_JobOperator, bpy.types.Operator):
    """Generate motion from a text prompt: a new Action on the armature per variant"""

    bl_idname = "motiongpt.generate"
    bl_label = "Generate Motion"
    bl_options = {'REGISTER', 'UNDO'}

    prompt: StringProperty(name="Prompt", description="What the character does")
    seconds: FloatProperty(name="Seconds", default=0.0, min=0.0, max=MAX_SECONDS,
                           description="Length of the motion; 0 lets the model choose")
    seed: IntProperty(name="Seed", default=0, min=0,
                      description="Random seed; variants use seed, seed+1, ... (after 2147483647 comes 0)")
    variants: IntProperty(name="Variants", default=1, min=1, max=16)

    def make_job(self, context) -> Job:
        settings = settings_of(context)
        prompt = clean_prompt(self.value(context, "prompt", "prompt"))
        if self.properties.is_property_set("seconds"):
            seconds = self.seconds or None
        else:
            seconds = None if settings.auto_duration else settings.seconds
        seed, variants = self.value(context, "seed", "seed"), self.value(context, "variants", "variants")
        armature = target_armature(context)
        check_animatable(armature)
        bone_map = bone_map_of(context, armature)
        start, name, in_place = context.scene.frame_current, armature.name, settings.in_place
        keys = key_options(settings)
        worker = worker_for(context)

        def make_step(variant: int) -> Step:
            def submit(w):
                return w.submit("text_to_motion", text=prompt, seconds=seconds, seed=variant_seed(seed, variant))

            def apply(motion, reply):
                action = retarget.apply_motion(
                    _armature_by_name(name), motion, bone_map, start_frame=start,
                    action_name=action_name_for(prompt), in_place=in_place,
                    properties={"motiongpt_prompt": prompt, "motiongpt_seed": variant_seed(seed, variant),
                                **plan_property(reply)}, **keys)
                return action.name
            return Step(f"'{prompt}' (variant {variant + 1})", submit, apply)
        return Job("Generate", [make_step(v) for v in range(variants)], worker)

    def done_message(self, job):
        read_as = f" (read as '{job.read_as[0]}')" if job.read_as else ""
        return f"MotionGPT: {', '.join(job.results)}{key_note(job.results)}{read_as}{job.plan_note()}"


class MOTIONGPT_OT_inbetween(_JobOperator, bpy.types.Operator):
    """Fill the gaps between the selected keys of the armature with generated motion; the selected keys stay as they are"""

    bl_idname = "motiongpt.inbetween"
    bl_label = "Fill In-between"
    bl_options = {'REGISTER', 'UNDO'}

    prompt: StringProperty(name="Steer", description="Optional words that steer the motion, e.g. 'jumps'")

    def make_job(self, context) -> Job:
        armature = target_armature(context, prefer_active=True)
        steer = clean_text(self.value(context, "prompt", "inbetween_prompt")) or None
        if steer and len(steer) > MAX_PROMPT_CHARS:
            raise _problem(f"the prompt is {len(steer)} characters long; keep it under {MAX_PROMPT_CHARS}")
        anim = armature.animation_data
        if anim is None or anim.action is None or not _bone_fcurves(armature):
            raise _problem(f"'{armature.name}' has no keyed bones: key a start and an end pose first")
        check_animatable(armature, adds_to_action=True)
        keys = selected_key_frames(armature)
        if not keys:
            raise _problem(f"no keys selected on '{armature.name}': select the keys on both sides of the gap "
                           "in the Dope Sheet, Timeline or Graph Editor")
        if len(keys) == 1:
            raise _problem(f"only one key frame is selected ({keys[0]}): select the keys on both sides of the gap")
        fps = retarget.scene_fps(context.scene)
        gaps = [(a, b) for a, b in zip(keys, keys[1:]) if b - a >= 2]
        if not gaps:
            raise _problem(f"the selected keys ({frames_text(keys)}) have no frames between them: select the two "
                           "keys on each side of the gap")
        if len(gaps) > MAX_GAPS:
            raise _problem(f"the selected keys ({frames_text(keys)}) leave {len(gaps)} gaps, more than "
                           f"{MAX_GAPS}: select the two keys on each side of the gap")
        for a, b in gaps:
            if (b - a) / fps > MAX_GAP_SECONDS:
                raise _problem(f"the keys at frames {a} and {b} are {(b - a) / fps:.1f} s apart; MotionGPT fills "
                               f"gaps of up to {MAX_GAP_SECONDS:g} s: add a key in between")
        bone_map = bone_map_of(context, armature)
        for a, b in gaps:
            retarget.check_switched(armature, bone_map, a)
        first, last = _action_range(anim.action)
        context_frames = int(round(CONTEXT_SECONDS * fps))
        requests = []
        for number, (a, b) in enumerate(gaps):          # read everything before anything changes
            before_start = a if number > 0 else max(first, a - context_frames)
            after_end = b if number < len(gaps) - 1 else min(last, b + context_frames)
            before = retarget.read_motion(armature, before_start, a, bone_map)
            after = retarget.read_motion(armature, b, after_end, bone_map)
            new_frames = max(1, int(round((b - a) / fps * MODEL_FPS)) - 1)
            requests.append((a, b, before, after, new_frames))
        name, worker = armature.name, worker_for(context)

        def make_step(a, b, before, after, new_frames) -> Step:
            def submit(w):
                return w.submit("inbetween", motions={"before": before, "after": after}, frames=new_frames,
                                text=steer)

            def apply(motion, _reply):
                obj = _armature_by_name(name)
                joints = np.concatenate([before.joints[-1:], motion.joints, after.joints[:1]])
                channels = _fitted_channels(obj, joints, (len(joints) - 1) / (b - a), bone_map, b - a + 1,
                                            clean_feet=False)
                write_between(obj, channels, a, b, 'BOTH')
                return (a, b)
            return Step(f"frames {a}-{b}", submit, apply)
        return Job("In-between", [make_step(*r) for r in requests], worker)


class MOTIONGPT_OT_describe(_JobOperator, bpy.types.Operator):
    """Describe the armature's motion in words (the preview or scene range; in the Dope Sheet and Graph Editor the selected keys' range)"""

    bl_idname = "motiongpt.describe"
    bl_label = "Describe This Motion"
    bl_options = {'REGISTER', 'UNDO'}

    def make_job(self, context) -> Job:
        armature = target_armature(context, prefer_active=True)
        anim = armature.animation_data
        if anim is None or (anim.action is None and not anim.nla_tracks):
            raise _problem(f"'{armature.name}' has no animation to describe")
        scene = context.scene
        area = getattr(context, "area", None)
        in_key_editor = area is not None and area.type in {'DOPESHEET_EDITOR', 'GRAPH_EDITOR'}
        keys = selected_key_frames(armature) if anim.action is not None and in_key_editor else []
        if len(keys) >= 2:
            start, end = keys[0], keys[-1]
        elif scene.use_preview_range:
            start, end = scene.frame_preview_start, scene.frame_preview_end
        else:
            start, end = scene.frame_start, scene.frame_end
        if end <= start:
            raise _problem(f"the frame range {start}-{end} is too short to describe")
        motion = retarget.read_motion(armature, start, end, bone_map_of(context, armature, keys=False))
        if max_joint_travel(motion.joints) < STILL_METRES:
            raise _problem(f"no motion to describe: the rig does not move in frames {start}-{end}")
        name, worker = armature.name, worker_for(context)

        def apply(text, _reply):
            caption = clean_caption(text)
            obj = _armature_by_name(name)
            holder = obj.animation_data.action if obj.animation_data and obj.animation_data.action else obj
            if retarget.is_local(holder):      # linked data is only read: the caption stays in the panel
                holder["motiongpt_caption"] = caption
            bpy.context.scene.motiongpt.last_caption = caption
            return caption
        step = Step(f"frames {start}-{end}", lambda w: w.submit("describe", motions={"motion": motion}), apply)
        return Job("Describe", [step], worker)

    def done_message(self, job):
        return f"MotionGPT: {job.results[0]}" if job.results else job.summary()

    def after_ui(self, context, job):
        if not job.results:
            return
        caption = job.results[0]

        def draw(menu, _context):
            menu.layout.label(text=caption)
        context.window_manager.popup_menu(draw, title="Motion Description", icon='TEXT')


class MOTIONGPT_OT_continue_motion(_JobOperator, bpy.types.Operator):
    """Continue the armature's current action past its last key with predicted motion"""

    bl_idname = "motiongpt.continue_motion"
    bl_label = "Continue Motion"
    bl_options = {'REGISTER', 'UNDO'}

    seconds: FloatProperty(name="Seconds", default=2.0, min=0.0, max=MAX_SECONDS,
                           description="How much longer the motion gets")

    def make_job(self, context) -> Job:
        armature = target_armature(context)
        seconds = self.value(context, "seconds", "continue_seconds")
        if not seconds > 0:
            raise _problem(f"continue by a positive number of seconds, not {seconds:g}")
        anim = armature.animation_data
        if anim is None or anim.action is None or not _bone_fcurves(armature):
            raise _problem(f"'{armature.name}' has no action to continue: generate or key some motion first")
        check_animatable(armature, adds_to_action=True)
        fps = retarget.scene_fps(context.scene)
        first, last = _action_range(anim.action)
        start = max(first, last - int(round(CONTEXT_SECONDS * fps)))
        bone_map = bone_map_of(context, armature)
        retarget.check_switched(armature, bone_map, last)
        given = retarget.read_motion(armature, start, last, bone_map)
        new_frames = int(round(seconds * fps))
        name, worker = armature.name, worker_for(context)
        seed = settings_of(context).seed

        def apply(motion, _reply):
            obj = _armature_by_name(name)
            joints = motion.joints[given.num_frames - 1:].astype(np.float64)
            if len(joints) < 2:
                raise _problem("the engine returned no new frames")
            joints[..., [0, 2]] += given.joints[-1, 0, [0, 2]] - joints[0, 0, [0, 2]]   # start where it ended
            channels = _fitted_channels(obj, joints, MODEL_FPS / fps, bone_map, new_frames + 1, clean_feet=True)
            count = min(len(c[3]) for c in channels)
            write_between(obj, [(p, i, g, v[:count]) for p, i, g, v in channels], last, last + count - 1, 'START')
            return last + count - 1
        step = Step(f"{seconds:g} s after frame {last}",
                    lambda w: w.submit("predict", motions={"motion": given}, seconds=seconds,
                                       seed=variant_seed(seed, 0)), apply)
        return Job("Continue", [step], worker)


def read_prompt_lines(text: str) -> tuple[list[str], int]:
    """Prompts of a batch list: one per non-empty line ('#' starts a comment line); duplicates
    are dropped (the first is kept). Returns (prompts, number of duplicates dropped)."""
    prompts, seen, duplicates = [], set(), 0
    for line in text.splitlines():
        prompt = clean_text(line)
        if not prompt or prompt.startswith("#"):
            continue
        if prompt.lower() in seen:
            duplicates += 1
            continue
        seen.add(prompt.lower())
        prompts.append(prompt)
    return prompts, duplicates


def batch_actions(batch_key: str, armature_name: str) -> dict[str, bpy.types.Action]:
    """Actions an earlier run of this batch made for this armature, by prompt."""
    return {a["motiongpt_prompt"]: a for a in bpy.data.actions
            if a.get("motiongpt_batch") == batch_key and a.get("motiongpt_target") == armature_name
            and "motiongpt_prompt" in a}


class MOTIONGPT_OT_batch(_JobOperator, bpy.types.Operator):
    """Generate one clip per line of a text (a Text datablock or a .txt file); lines already generated are skipped"""

    bl_idname = "motiongpt.batch"
    bl_label = "Generate Batch"
    bl_options = {'REGISTER', 'UNDO'}

    text_name: StringProperty(name="Text", description="Name of a Text datablock with one prompt per line")
    filepath: StringProperty(name="File", subtype='FILE_PATH', description="A .txt file with one prompt per line")

    def make_job(self, context) -> Job:
        settings = settings_of(context)
        text_name, filepath = self.text_name, self.filepath
        if not text_name and not filepath:
            if settings.batch_source == 'TEXT':
                text_name = settings.batch_text.name if settings.batch_text else ""
            else:
                filepath = settings.batch_file
        if text_name:
            text = bpy.data.texts.get(text_name)
            if text is None:
                raise _problem(f"there is no Text named '{text_name}'")
            content, batch_key = text.as_string(), f"text:{text_name}"
        elif filepath:
            path = bpy.path.abspath(filepath)
            try:
                with open(path, encoding="utf-8") as handle:
                    content = handle.read()
            except (OSError, UnicodeDecodeError) as error:
                raise _problem(f"cannot read the prompt file '{path}': {error}") from None
            batch_key = f"file:{os.path.normpath(path)}"
        else:
            raise _problem("choose a Text or a .txt file with one prompt per line")
        prompts, duplicates = read_prompt_lines(content)
        if not prompts:
            raise _problem("the prompt list has no prompts (only empty lines)")
        if len(prompts) > MAX_BATCH_PROMPTS:
            raise _problem(f"the prompt list has {len(prompts)} prompts; one batch takes at most "
                           f"{MAX_BATCH_PROMPTS}: split the list")
        for number, prompt in enumerate(prompts, 1):
            if len(prompt) > MAX_PROMPT_CHARS:
                raise _problem(f"prompt {number} is {len(prompt)} characters long; keep it under {MAX_PROMPT_CHARS}")
        armature = target_armature(context)
        check_animatable(armature)
        bone_map = bone_map_of(context, armature)
        done = batch_actions(batch_key, armature.name)
        todo = [(i, p) for i, p in enumerate(prompts) if p not in done]
        self.skipped, self.duplicates = len(prompts) - len(todo), duplicates
        if not todo:
            raise _problem(f"all {len(prompts)} prompts of this list are generated already "
                           "(delete their actions to generate them again)")
        seconds = None if settings.auto_duration else settings.seconds
        seed, layout, in_place, name = settings.seed, settings.batch_layout, settings.in_place, armature.name
        keys = key_options(settings)
        worker = worker_for(context)

        def make_step(line: int, prompt: str) -> Step:
            def submit(w):
                return w.submit("text_to_motion", text=prompt, seconds=seconds, seed=variant_seed(seed, line))

            def apply(motion, reply):
                return _place_batch_clip(_armature_by_name(name), motion, bone_map, prompt, batch_key, line,
                                         layout, in_place, plan_property(reply), keys)
            return Step(f"'{prompt}'", submit, apply)
        return Job("Batch", [make_step(i, p) for i, p in todo], worker)

    def done_message(self, job):
        extra = f", {self.skipped} already done" if getattr(self, "skipped", 0) else ""
        extra += f", {self.duplicates} duplicate lines skipped" if getattr(self, "duplicates", 0) else ""
        extra += f", {len(job.read_as)} read with unknown words reworded (e.g. '{job.read_as[0]}')" \
            if job.read_as else ""
        return f"{job.summary()}{key_note(job.results)}{extra}"


def _batch_track(armature):
    anim = armature.animation_data or armature.animation_data_create()
    track = anim.nla_tracks.get(BATCH_TRACK_NAME)
    if track is None:
        track = anim.nla_tracks.new()
        track.name = BATCH_TRACK_NAME
    return track


def _place_batch_clip(armature, motion: Motion, bone_map, prompt: str, batch_key: str, line: int,
                      layout: str, in_place: bool, extra: dict, keys: dict | None = None) -> str:
    """Key one batch clip as its own Action, then lay it on the batch NLA track (end to end) or keep
    it as an unassigned Action with a fake user; the armature's active action is left as it was."""
    state = anim_compat.active_state(armature)
    start = bpy.context.scene.frame_start
    if layout == 'NLA' and armature.animation_data and armature.animation_data.nla_tracks.get(BATCH_TRACK_NAME):
        strips = armature.animation_data.nla_tracks[BATCH_TRACK_NAME].strips
        if len(strips):
            start = int(math.ceil(max(s.frame_end for s in strips))) + 1
    if armature.animation_data is not None:
        armature.animation_data.action = None
    action = None
    try:
        action = retarget.apply_motion(armature, motion, bone_map, start_frame=start,
                                       action_name=action_name_for(prompt), in_place=in_place,
                                       properties={"motiongpt_prompt": prompt, "motiongpt_batch": batch_key,
                                                   "motiongpt_target": armature.name, "motiongpt_line": line + 1,
                                                   **extra}, **(keys or {}))
        armature.animation_data.action = None
        if layout == 'NLA':
            strip = _batch_track(armature).strips.new(action.name, int(action.frame_range[0]), action)
            if anim_compat.HAS_SLOTS and len(action.slots) and strip.action_slot != action.slots[0]:
                strip.action_slot = action.slots[0]
        else:
            action.use_fake_user = True
    except Exception:
        if action is not None and action.name in bpy.data.actions:
            bpy.data.actions.remove(action)
        anim_compat.restore_state(armature, state)
        raise
    anim_compat.restore_state(armature, state)
    return action.name


# ----------------------------------------------------------------------------- the prompt timeline

def timeline_segments(settings, fps: float) -> tuple[list[Segment], int]:
    """The panel's timeline rows as checked ``engine.timeline`` Segments (seconds from the earliest
    row's start frame) and that frame, where the motion begins; a MotionError naming the row
    (by its place in the list, from 1) for an empty timeline or a bad row."""
    rows = list(settings.timeline_rows)
    if not rows:
        raise _problem("the timeline has no rows: add one with + in the Timeline panel")
    first = min(row.start for row in rows)
    segments = [Segment(clean_prompt(row.prompt, f"prompt of timeline row {number}"), (row.start - first) / fps,
                        row.length / fps if row.length else None, row.part.lower())
                for number, row in enumerate(rows, 1)]
    return check_segments(segments, "timeline"), first


def in_time_order(segments: list[Segment]) -> list[Segment]:
    """The rows as they are sent: the engine lays whole-body rows end to end in the order given, so
    these go in time order into the places whole-body rows hold; layers keep their places."""
    places = [i for i, segment in enumerate(segments) if segment.part == "whole"]
    order = list(range(len(segments)))
    for place, i in zip(places, sorted(places, key=lambda i: segments[i].start)):
        order[place] = i
    return [segments[i] for i in order]


def timeline_text(segments: list[Segment]) -> str:
    """The rows as ``engine.timeline.parse_timeline`` reads them: one line each, start, seconds
    ('-': the model chose), part and text separated by tabs."""
    return "\n".join(f"{s.start:g}\t{'-' if s.seconds is None else format(s.seconds, 'g')}\t{s.part}\t{s.text}"
                     for s in segments)


class MOTIONGPT_OT_generate_timeline(_JobOperator, bpy.types.Operator):
    """Generate the timeline's rows as one motion: a new Action on the armature from the earliest row's start frame"""

    bl_idname = "motiongpt.generate_timeline"
    bl_label = "Generate Timeline"
    bl_options = {'REGISTER', 'UNDO'}

    def make_job(self, context) -> Job:
        settings = settings_of(context)
        segments, first = timeline_segments(settings, retarget.scene_fps(context.scene))
        segments = in_time_order(segments)
        armature = target_armature(context)
        check_animatable(armature)
        bone_map = bone_map_of(context, armature)
        name, in_place, seed = armature.name, settings.in_place, variant_seed(settings.seed, 0)
        rows, record = [dataclasses.asdict(s) for s in segments], timeline_text(segments)
        keys = key_options(settings)
        worker = worker_for(context)

        def apply(motion, reply):
            action = retarget.apply_motion(
                _armature_by_name(name), motion, bone_map, start_frame=first,
                action_name=action_name_for(" | ".join(s.text for s in segments)), in_place=in_place,
                properties={"motiongpt_timeline": record, "motiongpt_seed": seed, **plan_property(reply)},
                **keys)
            return action.name
        step = Step(f"{len(rows)} rows from frame {first}", lambda w: w.submit("timeline", rows=rows, seed=seed),
                    apply)
        return Job("Generate Timeline", [step], worker)

    def done_message(self, job):
        return f"MotionGPT: {', '.join(job.results)}{key_note(job.results)}{job.plan_note()}"


class MOTIONGPT_OT_timeline_add(bpy.types.Operator):
    """Add a row at the end of the timeline, starting where the rows end (2 s long)"""

    bl_idname = "motiongpt.timeline_add"
    bl_label = "Add Timeline Row"
    bl_options = {'REGISTER', 'UNDO'}

    @reports_errors
    def execute(self, context):
        settings = settings_of(context)
        rows = settings.timeline_rows
        start = max((row.start + row.length for row in rows), default=context.scene.frame_current)
        row = rows.add()
        row.start, row.length = start, round(NEW_ROW_SECONDS * retarget.scene_fps(context.scene))
        settings.timeline_index = len(rows) - 1
        return {'FINISHED'}


def _active_row(context) -> int | None:
    """The index of the timeline's active row, None when there is none."""
    settings = settings_of(context)
    return settings.timeline_index if 0 <= settings.timeline_index < len(settings.timeline_rows) else None


class MOTIONGPT_OT_timeline_remove(bpy.types.Operator):
    """Remove the active timeline row"""

    bl_idname = "motiongpt.timeline_remove"
    bl_label = "Remove Timeline Row"
    bl_options = {'REGISTER', 'UNDO'}

    @classmethod
    def poll(cls, context):
        return _active_row(context) is not None

    @reports_errors
    def execute(self, context):
        settings, index = settings_of(context), _active_row(context)
        settings.timeline_rows.remove(index)
        settings.timeline_index = max(0, min(index, len(settings.timeline_rows) - 1))
        return {'FINISHED'}


class MOTIONGPT_OT_timeline_move(bpy.types.Operator):
    """Move the active timeline row up or down the list"""

    bl_idname = "motiongpt.timeline_move"
    bl_label = "Move Timeline Row"
    bl_options = {'REGISTER', 'UNDO'}

    direction: EnumProperty(name="Direction", items=(('UP', "Up", "One place up"), ('DOWN', "Down", "One place down")))

    @classmethod
    def poll(cls, context):
        return _active_row(context) is not None

    @reports_errors
    def execute(self, context):
        settings, index = settings_of(context), _active_row(context)
        target = index - 1 if self.direction == 'UP' else index + 1
        if not 0 <= target < len(settings.timeline_rows):
            return {'CANCELLED'}
        settings.timeline_rows.move(index, target)
        settings.timeline_index = target
        return {'FINISHED'}


class MOTIONGPT_OT_cancel(bpy.types.Operator):
    """Stop the running MotionGPT job (finished steps are kept)"""

    bl_idname = "motiongpt.cancel"
    bl_label = "Cancel"
    bl_options = {'REGISTER'}

    @classmethod
    def poll(cls, context):
        return running_job() is not None

    @reports_errors
    def execute(self, context):
        if not cancel_running_job():
            return {'CANCELLED'}
        drive_jobs()
        self.report({'INFO'}, "MotionGPT: cancelled")
        return {'FINISHED'}


classes = (MOTIONGPT_OT_generate, MOTIONGPT_OT_inbetween, MOTIONGPT_OT_describe, MOTIONGPT_OT_continue_motion,
           MOTIONGPT_OT_batch, MOTIONGPT_OT_generate_timeline, MOTIONGPT_OT_timeline_add, MOTIONGPT_OT_timeline_remove,
           MOTIONGPT_OT_timeline_move, MOTIONGPT_OT_cancel)
