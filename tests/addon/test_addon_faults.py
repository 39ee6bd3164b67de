"""Faults the add-on must survive (issue 21), in real bpy (4.5 in .venv, 5.0 in .venv-bpy5), headless.

Disk faults made for real (the exchange folder deleted or taken by a file, a file-size limit as a
full disk), real linked libraries (a rig saved to a .blend and linked back), seeds at the top of
the 32-bit range, prompts with control characters, degenerate rigs, and an operator that raises.
Each must end in one clear error (or work), print no traceback, lose no keys, and leave the next
request working. One real engine worker (tiny model) serves the module, as in
test_addon_operators.py; timers never fire headless, so jobs are driven with ``drive_jobs()``.
"""
from __future__ import annotations

import resource
import shutil
import signal
import time
import unicodedata
from pathlib import Path

import addon_utils
import bpy
import pytest

from engine.motion import Motion
from tests.addon.conftest import drive_until

REPO = Path(__file__).resolve().parents[2]
TORCH_PYTHON = REPO / ".venv" / "bin" / "python"
ADDON = "motiongpt_addon"
TOP_SEED = 2 ** 31 - 1


@pytest.fixture(scope="module")
def addon(tiny_model):
    addon_utils.enable(ADDON, default_set=True)
    prefs = bpy.context.preferences.addons[ADDON].preferences
    prefs.model_source, prefs.model_folder, prefs.device = 'FOLDER', str(tiny_model), 'CPU'
    prefs.python_path = str(TORCH_PYTHON)
    from motiongpt_addon import operators
    yield operators
    addon_utils.disable(ADDON, default_set=True)       # classes registered at exit hang bpy 4.5


@pytest.fixture()
def rig(addon, scene):
    from motiongpt_addon import retarget
    return retarget.create_smpl_armature("Rig")


@pytest.fixture()
def keyed(rig, tennis):
    """The rig with 2 s of the real tennis serve keyed (frames 1-40), no model involved."""
    from motiongpt_addon import retarget
    retarget.apply_motion(rig, Motion(tennis.joints[:40], 20.0), action_name="Serve")
    return rig


# ----------------------------------------------------------------------------- helpers

def worker():
    from motiongpt_addon import client
    return client.current_client()


def sent() -> int:
    """Requests sent to the engine so far (0 before the first worker exists)."""
    return worker().requests_sent if worker() is not None else 0


def action_fcurves(action) -> list:
    """Every F-Curve of ``action`` (all slots on 4.4+)."""
    from motiongpt_addon import anim_compat
    if not anim_compat.HAS_SLOTS:
        return list(action.fcurves)
    return [fcurve for layer in action.layers for strip in layer.strips for slot in action.slots
            if strip.channelbag(slot) for fcurve in strip.channelbag(slot).fcurves]


def fcurve_count(action=None) -> int:
    """F-Curves plus keys of ``action``, or of every action in the file (linked ones included)."""
    actions = [action] if action is not None else bpy.data.actions
    return sum(1 + len(fc.keyframe_points) for a in actions for fc in action_fcurves(a))


def snapshot() -> tuple:
    objects = tuple(sorted(o.name for o in bpy.data.objects))
    actions = tuple(sorted((a.name, a.library is not None) for a in bpy.data.actions))
    tracks = tuple(sorted((o.name, t.name, len(t.strips)) for o in bpy.data.objects if o.animation_data
                          for t in o.animation_data.nla_tracks))
    return objects, actions, tracks, fcurve_count()


def refused(call, *fragments: str) -> str:
    """``call`` fails with one ERROR report holding ``fragments``, before the model runs and with
    the scene unchanged; returns the message."""
    before, requests = snapshot(), sent()
    with pytest.raises(RuntimeError) as error:
        call()
    message = str(error.value)
    assert message.startswith("Error: ") and "Traceback" not in message
    for fragment in fragments:
        assert fragment in message, message
    assert snapshot() == before and sent() == requests
    return message


def no_traceback(capfd) -> None:
    err = capfd.readouterr().err
    assert "Traceback" not in err, err


def select_keys(obj, frames) -> None:
    from motiongpt_addon import anim_compat
    for fcurve in anim_compat.fcurves_of(obj):
        for point in fcurve.keyframe_points:
            point.select_control_point = point.co[0] in frames


def generate_works() -> None:
    assert bpy.ops.motiongpt.generate(prompt="a person walks", seconds=1.0) == {'FINISHED'}


# ----------------------------------------------------------------------------- 1. disk faults

def test_a_deleted_exchange_folder_is_made_again(keyed, addon, capfd):
    generate_works()
    client = worker()
    shutil.rmtree(client.exchange)                                  # a tmp cleaner, worker alive
    assert bpy.ops.motiongpt.describe() == {'FINISHED'}
    assert client.exchange.is_dir() and client.log_path.is_file()
    shutil.rmtree(client.exchange)
    client.kill()                                                   # ... and the worker gone too
    generate_works()
    assert client.alive and client.log_path.is_file()
    assert bpy.ops.motiongpt.generate(prompt="a person runs", seconds=1.0, asynchronous=True) == {'FINISHED'}
    job = addon.running_job()
    addon.drive_jobs()                                              # submitted
    shutil.rmtree(client.exchange)                                  # while the worker runs it
    drive_until(addon, lambda: job.finished)
    assert job.state == 'DONE' or (job.state == 'FAILED' and str(client.exchange) in job.error), job.error
    generate_works()
    no_traceback(capfd)


def test_an_exchange_folder_taken_by_a_file_fails_the_job_not_the_session(keyed, addon, capfd):
    generate_works()
    client = worker()
    shutil.rmtree(client.exchange)
    client.exchange.write_text("not a folder")
    try:
        refused(lambda: bpy.ops.motiongpt.describe(), str(client.exchange), "is not a folder")
        assert bpy.ops.motiongpt.describe(asynchronous=True) == {'FINISHED'}      # as the UI runs it
        job = addon.running_job()
        drive_until(addon, lambda: job.finished)
        assert job.state == 'FAILED' and str(client.exchange) in job.error
        assert addon.running_job() is None and not bpy.context.window_manager.motiongpt_status.running
    finally:
        client.exchange.unlink()
    generate_works()                                                # no "MotionGPT is busy"
    no_traceback(capfd)


def test_a_full_disk_fails_writing_the_input_and_the_next_request_works(keyed, addon, capfd):
    generate_works()
    limits, handler = resource.getrlimit(resource.RLIMIT_FSIZE), signal.getsignal(signal.SIGXFSZ)
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)                  # writes past the limit: EFBIG
    resource.setrlimit(resource.RLIMIT_FSIZE, (4096, limits[1]))   # describe's input is ~10 kB
    try:
        message = refused(lambda: bpy.ops.motiongpt.describe(), "cannot write the motion for the engine",
                          str(worker().exchange / "in_"))     # numpy: "16500 requested and 992 written"
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, limits)
        signal.signal(signal.SIGXFSZ, handler)
    assert not list(worker().exchange.glob("*.npy")) and not list(worker().exchange.glob(".*part"))
    assert "Describe failed" in message
    assert bpy.ops.motiongpt.describe() == {'FINISHED'}
    no_traceback(capfd)


def test_a_result_that_cannot_be_read_fails_the_job(keyed, addon, capfd):
    generate_works()
    client, before = worker(), snapshot()
    assert bpy.ops.motiongpt.generate(prompt="a person jumps", seconds=1.0, asynchronous=True) == {'FINISHED'}
    job = addon.running_job()
    addon.drive_jobs()                                              # submits the request
    deadline = time.monotonic() + 60
    while not job.request.done:                                     # the reply is in, not yet applied
        assert time.monotonic() < deadline
        client.poll()
        time.sleep(0.02)
    Path(job.request.reply["motion"]).unlink()                      # the result file is gone
    addon.drive_jobs()
    assert job.state == 'FAILED' and "the engine's result" in job.error and "result_" in job.error
    assert snapshot() == before                                     # no half-made Action
    generate_works()
    no_traceback(capfd)


# ----------------------------------------------------------------------------- 2. library data

@pytest.fixture()
def library(keyed, tmp_path) -> Path:
    """A .blend holding the keyed rig 'Rig' (its armature data and action 'Serve'); the scene is
    emptied afterwards."""
    path = tmp_path / "rigs.blend"
    bpy.data.libraries.write(str(path), {keyed})
    bpy.ops.wm.read_homefile(use_empty=True)
    bpy.context.scene.render.fps = 20
    return path


def link(path: Path, **names) -> dict:
    with bpy.data.libraries.load(str(path), link=True) as (_source, target):
        for kind, wanted in names.items():
            setattr(target, kind, list(wanted))
    return {kind: list(getattr(target, kind)) for kind in names}


def use_rig(obj) -> None:
    if obj.name not in bpy.context.scene.objects:
        bpy.context.scene.collection.objects.link(obj)
    bpy.context.view_layer.objects.active = obj
    bpy.context.scene.motiongpt.target = obj


def test_a_linked_rig_is_refused_before_the_model_runs(library, addon, capfd):
    rig = link(library, objects=["Rig"])["objects"][0]
    use_rig(rig)
    assert rig.library is not None and rig.animation_data.action.library is not None
    select_keys(rig, (5, 25))
    text = bpy.data.texts.new("prompts")
    text.from_string("a person walks\na person runs\n")
    why = ("'Rig' is linked from the library 'rigs.blend': make it local (Object > Relations > Make Local) "
           "or make a library override (Object > Library Override) to animate it")
    refused(lambda: bpy.ops.motiongpt.generate(prompt="a person walks", seconds=1.0), why)
    refused(lambda: bpy.ops.motiongpt.inbetween(), why)
    refused(lambda: bpy.ops.motiongpt.continue_motion(seconds=1.0), why)
    refused(lambda: bpy.ops.motiongpt.batch(text_name="prompts"), why)
    keys = fcurve_count()
    assert bpy.ops.motiongpt.describe() == {'FINISHED'}             # reading linked data is fine
    assert bpy.context.scene.motiongpt.last_caption
    assert "motiongpt_caption" not in rig.animation_data.action and fcurve_count() == keys
    no_traceback(capfd)


def test_a_linked_action_gets_no_keys_but_a_new_one_is_kept(library, addon, tmp_path, capfd):
    from motiongpt_addon import anim_compat, retarget
    serve = link(library, actions=["Serve"])["actions"][0]
    rig = retarget.create_smpl_armature("Local")
    use_rig(rig)
    rig.animation_data_create().action = serve
    if anim_compat.HAS_SLOTS:
        rig.animation_data.action_slot = serve.slots[0]
    select_keys(rig, (5, 25))
    why = "the action 'Serve' of 'Local' is linked from library 'rigs.blend' and cannot get new keys"
    refused(lambda: bpy.ops.motiongpt.inbetween(), why)
    refused(lambda: bpy.ops.motiongpt.continue_motion(seconds=1.0), why)
    serve_keys = fcurve_count(serve)
    generate_works()                                                # a new, local action: kept
    made = rig.animation_data.action
    assert made.library is None and made.name == "a person walks"
    keys = fcurve_count(made)
    bpy.ops.wm.save_as_mainfile(filepath=str(tmp_path / "scene.blend"))
    bpy.ops.wm.open_mainfile(filepath=str(tmp_path / "scene.blend"))
    rig = bpy.data.objects["Local"]
    assert rig.animation_data.action.name == "a person walks" and fcurve_count(rig.animation_data.action) == keys
    strip = rig.animation_data.nla_tracks[0].strips[0]              # the linked action, untouched
    assert strip.action.library is not None and fcurve_count(strip.action) == serve_keys > 0
    no_traceback(capfd)


def test_library_overrides(library, addon, tmp_path, capfd):
    linked = link(library, objects=["Rig"])["objects"][0]
    bpy.context.scene.collection.objects.link(linked)
    override = linked.override_hierarchy_create(bpy.context.scene, bpy.context.view_layer)
    use_rig(override)
    assert override.override_library.is_system_override
    refused(lambda: bpy.ops.motiongpt.generate(prompt="a person walks", seconds=1.0),
            "'Rig' is a system library override", "Make Editable")
    override.override_library.is_system_override = False          # Make Editable
    select_keys(override, (5, 25))
    refused(lambda: bpy.ops.motiongpt.continue_motion(seconds=1.0),
            "the action 'Serve' of 'Rig' is linked from library 'rigs.blend'")
    generate_works()
    keys = fcurve_count(override.animation_data.action)
    bpy.ops.wm.save_as_mainfile(filepath=str(tmp_path / "scene.blend"))
    bpy.ops.wm.open_mainfile(filepath=str(tmp_path / "scene.blend"))
    override = next(o for o in bpy.data.objects if o.override_library is not None)
    assert override.animation_data.action.name == "a person walks"
    assert fcurve_count(override.animation_data.action) == keys > 0
    no_traceback(capfd)


# ----------------------------------------------------------------------------- 3. seeds, 4. text

def test_seeds_at_the_top_of_the_range_wrap(rig, addon, capfd):
    assert addon.variant_seed(TOP_SEED, 1) == 0 and addon.variant_seed(TOP_SEED, 0) == TOP_SEED
    assert bpy.ops.motiongpt.generate(prompt="a person walks", seconds=1.0, seed=TOP_SEED,
                                      variants=2) == {'FINISHED'}
    made = sorted((a for a in bpy.data.actions if "motiongpt_seed" in a), key=lambda a: a.name)
    assert [(a.name, a["motiongpt_seed"], a["motiongpt_prompt"]) for a in made] == [
        ("a person walks", TOP_SEED, "a person walks"), ("a person walks.001", 0, "a person walks")]
    settings = bpy.context.scene.motiongpt
    settings.seed, settings.auto_duration, settings.seconds = TOP_SEED, False, 1.0
    bpy.data.texts.new("prompts").from_string("a person runs\na person jumps\n")
    assert bpy.ops.motiongpt.batch(text_name="prompts") == {'FINISHED'}
    assert bpy.ops.motiongpt.continue_motion(seconds=1.0) == {'FINISHED'}
    no_traceback(capfd)


NASTY = "a person\n walks\tforward\x1b[0m \u202eright to left\u200b \x07\x00end"


def printable(text: str) -> bool:
    return all(unicodedata.category(ch)[0] != "C" for ch in text) and text == " ".join(text.split())


def test_control_characters_never_reach_names_or_properties(rig, addon, tmp_path, capfd):
    assert addon.clean_text(NASTY) == "a person walks forward [0m right to left end"
    assert addon.action_name_for("\x00\n\t") == "MotionGPT"
    assert bpy.ops.motiongpt.generate(prompt=NASTY.replace("\x00", ""), seconds=1.0) == {'FINISHED'}
    prompts = tmp_path / "prompts.txt"                              # a file keeps NUL and the rest
    prompts.write_text(f"{NASTY.replace(chr(10), '')}\nthe\x00 second\x1bline\n", encoding="utf-8")
    bpy.context.scene.motiongpt.auto_duration = False
    assert bpy.ops.motiongpt.batch(filepath=str(prompts)) == {'FINISHED'}
    select_keys(rig, (1, 20))
    assert bpy.ops.motiongpt.inbetween(prompt="\x1b[31mjumps\u202e") == {'FINISHED'}
    stored = [a.name for a in bpy.data.actions] + [a.get("motiongpt_prompt", "") for a in bpy.data.actions]
    assert len(bpy.data.actions) == 3 and all(printable(text) for text in stored), stored
    assert "the second line" in stored
    no_traceback(capfd)


# ----------------------------------------------------------------------------- 5. degenerate rigs

def test_scale_zero_and_collapsed_rigs_are_refused_before_the_model_runs(keyed, addon, capfd):
    select_keys(keyed, (5, 25))
    bpy.data.texts.new("prompts").from_string("a person walks\n")
    calls = [lambda: bpy.ops.motiongpt.generate(prompt="a person walks", seconds=1.0),
             lambda: bpy.ops.motiongpt.describe(), lambda: bpy.ops.motiongpt.inbetween(),
             lambda: bpy.ops.motiongpt.continue_motion(seconds=1.0),
             lambda: bpy.ops.motiongpt.batch(text_name="prompts")]
    keyed.scale = (1.0, 0.0, 1.0)
    for call in calls:
        refused(call, "armature 'Rig' has scale 0 on an axis")
    keyed.scale = (1.0, 1.0, 1.0)
    keyed.pose.bones["Pelvis"].scale = (0.0, 0.0, 0.0)              # every joint at the pelvis
    for call in calls[1:4]:
        refused(call, "armature 'Rig' is degenerate at frame", "collapse to one point")
    keyed.pose.bones["Pelvis"].scale = (1.0, 1.0, 1.0)
    assert bpy.ops.motiongpt.describe() == {'FINISHED'}
    no_traceback(capfd)


def test_a_rig_with_all_bones_at_one_point_is_refused(addon, scene, capfd):
    from motiongpt_addon.retarget import SMPL_BONE_NAMES
    data = bpy.data.armatures.new("Point")
    obj = bpy.data.objects.new("Point", data)
    use_rig(obj)
    bpy.ops.object.mode_set(mode='EDIT')
    for name in SMPL_BONE_NAMES.values():
        bone = data.edit_bones.new(name)
        bone.head, bone.tail = (0.0, 0.0, 0.0), (0.0, 0.0, 0.1)
    bpy.ops.object.mode_set(mode='OBJECT')
    refused(lambda: bpy.ops.motiongpt.generate(prompt="a person walks", seconds=1.0),
            "armature 'Point' is degenerate", "one point")
    no_traceback(capfd)


# ----------------------------------------------------------------------------- 6. exceptions

def test_an_exception_in_an_operator_is_one_report(addon, scene, capfd):
    from motiongpt_addon import operators, preferences
    from motiongpt_addon.reporting import reports_errors

    class MOTIONGPT_OT_test_broken(bpy.types.Operator):
        bl_idname = "motiongpt.test_broken"
        bl_label = "Broken"

        @reports_errors
        def execute(self, context):
            raise OSError(28, "No space left on device", "/tmp/somewhere/file.npy")

    bpy.utils.register_class(MOTIONGPT_OT_test_broken)
    try:
        with pytest.raises(RuntimeError) as error:
            bpy.ops.motiongpt.test_broken()
        assert str(error.value) == "Error: /tmp/somewhere/file.npy: No space left on device\n"
    finally:
        bpy.utils.unregister_class(MOTIONGPT_OT_test_broken)
    for cls in (*operators.classes, preferences.MOTIONGPT_OT_install_dependencies):
        for name in ("execute", "invoke", "modal"):
            method = getattr(cls, name, None)
            assert method is None or hasattr(method, "__wrapped__"), f"{cls.__name__}.{name} is not guarded"
    no_traceback(capfd)
