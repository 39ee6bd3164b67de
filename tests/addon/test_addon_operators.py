"""The MotionGPT add-on in real bpy (4.5 in .venv, 5.0 in .venv-bpy5), headless.

The add-on is enabled through addon_utils (the ``addon`` and ``rig`` fixtures of conftest.py); its
engine worker is a real process running the torch interpreter of the repository's .venv with a
tiny randomly initialised model folder built by tests/support/tiny_model.py. One worker serves the session.
Operators run synchronously (background mode); the UI path (timers, Cancel) is driven by calling
``operators.drive_jobs()``, since timers never fire headless.
"""
from __future__ import annotations

import time

import bpy
import addon_utils
import numpy as np

from tests.addon.conftest import ADDON, REPO, TORCH_PYTHON, configure, drive_until, expect_error


def actions_on(obj) -> list[str]:
    anim = obj.animation_data
    return [anim.action.name] if anim and anim.action else []


HANDLE_TYPES = {"FREE": 0, "ALIGNED": 1, "VECTOR": 2, "AUTO": 3, "AUTO_CLAMPED": 4}
INTERPOLATIONS = {"CONSTANT": 0, "LINEAR": 1, "BEZIER": 2}


def keys_of(obj) -> dict:
    """(frame, value, interpolation, handle types) of every key; auto handles are Blender's to
    recompute when neighbours change, so their positions are not part of 'as keyed'."""
    from motiongpt_addon import anim_compat
    return {(fc.data_path, fc.array_index): np.array([
        (p.co[0], p.co[1], INTERPOLATIONS.get(p.interpolation, 9), HANDLE_TYPES[p.handle_left_type],
         HANDLE_TYPES[p.handle_right_type]) for p in fc.keyframe_points])
        for fc in anim_compat.fcurves_of(obj)}


# ----------------------------------------------------------------------------- generate

def test_generate_variants_make_actions_from_the_current_frame(rig):
    scene = bpy.context.scene
    scene.frame_set(11)
    assert bpy.ops.motiongpt.generate(prompt="a person walks forward", seconds=2.0, seed=4, variants=2) == {'FINISHED'}
    action = rig.animation_data.action
    assert action.name == "a person walks forward.001"
    assert tuple(action.frame_range) == (11.0, 50.0)                    # 2 s at 20 fps from frame 11
    assert action["motiongpt_prompt"] == "a person walks forward" and action["motiongpt_seed"] == 5
    tracks = rig.animation_data.nla_tracks
    assert [t.strips[0].action.name for t in tracks] == ["a person walks forward"] and tracks[0].mute


def test_generate_falls_back_to_the_panel_and_handles_23_976_fps(rig):
    scene = bpy.context.scene
    scene.render.fps, scene.render.fps_base = 24, 1.001
    settings = scene.motiongpt
    settings.prompt, settings.auto_duration, settings.seconds, settings.seed = "a man jumps", False, 1.5, 7
    assert bpy.ops.motiongpt.generate() == {'FINISHED'}
    action = rig.animation_data.action
    assert action.name == "a man jumps" and action["motiongpt_seed"] == 7
    start, end = action.frame_range
    assert start == 1.0 and abs((end - start) - 1.45 * 23.976) <= 1.0   # 30 model frames span 1.45 s


def test_generate_bad_input_reports_and_leaves_the_scene(rig):
    expect_error(lambda: bpy.ops.motiongpt.generate(prompt="   "), "the prompt is empty")
    expect_error(lambda: bpy.ops.motiongpt.generate(prompt="x" * 600), "600 characters")
    expect_error(lambda: bpy.ops.motiongpt.generate(prompt="walk", seconds=0.01), "shorter than one frame")
    bpy.ops.mesh.primitive_cube_add()
    expect_error(lambda: bpy.ops.motiongpt.generate(prompt="a person walks"), "'Cube' is not an armature")
    bpy.ops.wm.read_homefile(use_empty=True)
    expect_error(lambda: bpy.ops.motiongpt.generate(prompt="a person walks"), "no armature")


def test_missing_model_folder_is_reported(rig, tiny_model):
    prefs = bpy.context.preferences.addons[ADDON].preferences
    prefs.model_folder = str(tiny_model.parent / "missing-model")
    try:
        expect_error(lambda: bpy.ops.motiongpt.generate(prompt="a person walks"), "model folder does not exist",
                     "missing-model")
    finally:
        prefs.model_folder = str(tiny_model)


# ----------------------------------------------------------------------------- in-between

def key_two_poses(rig, first: int, last: int):
    """A keyed action: generated motion, then only the keys at ``first`` and ``last`` selected."""
    assert bpy.ops.motiongpt.generate(prompt="a person walks", seconds=3.0) == {'FINISHED'}
    from motiongpt_addon import anim_compat
    for fcurve in anim_compat.fcurves_of(rig):
        for point in fcurve.keyframe_points:
            point.select_control_point = point.co[0] in (first, last)


def test_inbetween_fills_the_gap_and_keeps_the_selected_keys(rig):
    key_two_poses(rig, 10, 40)
    before = keys_of(rig)
    assert bpy.ops.motiongpt.inbetween(prompt="jumps") == {'FINISHED'}
    after = keys_of(rig)
    assert before.keys() == after.keys()
    changed = 0
    for channel, old in before.items():
        new = after[channel]
        for frame in (10, 40):                                            # exactly as keyed
            np.testing.assert_array_equal(old[old[:, 0] == frame], new[new[:, 0] == frame])
        np.testing.assert_array_equal(old[old[:, 0] < 10], new[new[:, 0] < 10])
        np.testing.assert_array_equal(old[old[:, 0] > 40], new[new[:, 0] > 40])
        inside = new[(new[:, 0] > 10) & (new[:, 0] < 40)]
        assert list(inside[:, 0]) == list(range(11, 40))                  # one key per frame in the gap
        changed += not np.allclose(inside[:, 1], old[(old[:, 0] > 10) & (old[:, 0] < 40)][:, 1])
    assert changed > 0


def test_inbetween_bad_input(rig):
    expect_error(lambda: bpy.ops.motiongpt.inbetween(), "has no keyed bones")
    key_two_poses(rig, 5, 5)
    expect_error(lambda: bpy.ops.motiongpt.inbetween(), "only one key frame is selected (5)")
    from motiongpt_addon import anim_compat
    for fcurve in anim_compat.fcurves_of(rig):
        for point in fcurve.keyframe_points:
            point.select_control_point = False
    expect_error(lambda: bpy.ops.motiongpt.inbetween(), "no keys selected")
    key_two_poses(rig, 5, 6)
    expect_error(lambda: bpy.ops.motiongpt.inbetween(), "have no frames between them")


def test_inbetween_keys_20_seconds_apart(rig):
    bpy.context.scene.render.fps = 20
    key_two_poses(rig, 1, 60)
    from motiongpt_addon import anim_compat
    for fcurve in anim_compat.fcurves_of(rig):                        # move the last key 20 s away
        fcurve.keyframe_points.insert(401, fcurve.evaluate(60)).select_control_point = True
        for point in fcurve.keyframe_points:
            point.select_control_point = point.co[0] in (1, 401)
    expect_error(lambda: bpy.ops.motiongpt.inbetween(), "frames 1 and 401 are 20.0 s apart")


# ----------------------------------------------------------------------------- describe, continue

def test_describe_stores_the_caption(rig):
    expect_error(lambda: bpy.ops.motiongpt.describe(), "has no animation to describe")
    assert bpy.ops.motiongpt.generate(prompt="a person waves", seconds=2.0) == {'FINISHED'}
    scene = bpy.context.scene
    scene.use_preview_range, scene.frame_preview_start, scene.frame_preview_end = True, 1, 30
    assert bpy.ops.motiongpt.describe() == {'FINISHED'}
    caption = rig.animation_data.action["motiongpt_caption"]
    assert caption and caption == scene.motiongpt.last_caption and caption.isprintable()
    assert bpy.ops.motiongpt.generate(prompt="a person runs", seconds=2.0) == {'FINISHED'}
    from motiongpt_addon import anim_compat
    for fcurve in anim_compat.fcurves_of(rig):                       # selected keys 5..25 in the Dope Sheet
        for point in fcurve.keyframe_points:
            point.select_control_point = point.co[0] in (5, 25)
    window = bpy.context.window_manager.windows[0]
    area = next(a for a in window.screen.areas if a.type == 'DOPESHEET_EDITOR')
    with bpy.context.temp_override(window=window, area=area):
        assert bpy.ops.motiongpt.describe() == {'FINISHED'}
    assert rig.animation_data.action["motiongpt_caption"]
    scene.frame_preview_end = 1
    expect_error(lambda: bpy.ops.motiongpt.describe(), "too short to describe")


def test_continue_extends_the_action(rig):
    expect_error(lambda: bpy.ops.motiongpt.continue_motion(seconds=1.0), "has no action to continue")
    assert bpy.ops.motiongpt.generate(prompt="a person walks", seconds=2.0) == {'FINISHED'}
    before = keys_of(rig)
    assert bpy.ops.motiongpt.continue_motion(seconds=1.5) == {'FINISHED'}
    after = keys_of(rig)
    assert tuple(rig.animation_data.action.frame_range) == (1.0, 70.0)     # 40 + 1.5 s at 20 fps
    for channel, old in before.items():
        np.testing.assert_array_equal(after[channel][:len(old)], old)      # the old keys stay
    expect_error(lambda: bpy.ops.motiongpt.continue_motion(seconds=0.0), "positive number of seconds")


# ----------------------------------------------------------------------------- batch

def test_batch_from_a_text_lays_strips_end_to_end(rig):
    text = bpy.data.texts.new("prompts")
    text.from_string("a person walks\n\n   \na person jumps\na person walks\n# a comment\na person sits down\n")
    scene = bpy.context.scene
    scene.motiongpt.auto_duration, scene.motiongpt.seconds = False, 1.0
    assert bpy.ops.motiongpt.batch(text_name="prompts") == {'FINISHED'}
    strips = list(rig.animation_data.nla_tracks["MotionGPT Batch"].strips)
    assert [s.action["motiongpt_prompt"] for s in strips] == ["a person walks", "a person jumps", "a person sits down"]
    assert [(s.frame_start, s.frame_end) for s in strips] == [(1, 20), (21, 40), (41, 60)]
    assert rig.animation_data.action is None                               # the active action is untouched
    expect_error(lambda: bpy.ops.motiongpt.batch(text_name="prompts"), "all 3 prompts", "generated already")


def test_batch_from_a_file_as_actions(rig, tmp_path):
    path = tmp_path / "prompts.txt"
    path.write_text("a person runs\n\na person kicks\n", encoding="utf-8")
    bpy.context.scene.motiongpt.batch_layout = 'ACTIONS'
    assert bpy.ops.motiongpt.batch(filepath=str(path)) == {'FINISHED'}
    made = [a for a in bpy.data.actions if a.get("motiongpt_batch") == f"file:{path}"]
    assert sorted(a["motiongpt_prompt"] for a in made) == ["a person kicks", "a person runs"]
    assert all(a.use_fake_user for a in made) and rig.animation_data is None


def test_batch_bad_input(rig, tmp_path):
    big = tmp_path / "big.txt"
    big.write_text("".join(f"a person walks {i} steps\n" for i in range(10_000)), encoding="utf-8")
    expect_error(lambda: bpy.ops.motiongpt.batch(filepath=str(big)), "10000 prompts", "split the list")
    expect_error(lambda: bpy.ops.motiongpt.batch(filepath=str(tmp_path / "none.txt")), "cannot read the prompt file")
    bpy.data.texts.new("blank").from_string("\n\n   \n")
    expect_error(lambda: bpy.ops.motiongpt.batch(text_name="blank"), "no prompts")
    expect_error(lambda: bpy.ops.motiongpt.batch(text_name="nothing"), "no Text named 'nothing'")
    expect_error(lambda: bpy.ops.motiongpt.batch(), "choose a Text or a .txt file")


def test_batch_cancel_then_resume(rig, addon):
    operators = addon
    bpy.data.texts.new("list").from_string("a person walks\na person runs\na person jumps\na person waves\n")
    bpy.context.scene.motiongpt.auto_duration = False
    assert bpy.ops.motiongpt.batch(text_name="list", asynchronous=True) == {'FINISHED'}
    job = operators.running_job()
    assert job is not None and bpy.context.window_manager.motiongpt_status.running
    drive_until(operators, lambda: job.applied >= 1)
    assert bpy.ops.motiongpt.cancel() == {'FINISHED'}
    started = time.monotonic()
    drive_until(operators, lambda: job.finished, timeout=1.0)                 # takes effect within 1 s
    assert time.monotonic() - started < 1.0 and job.state == 'CANCELLED'
    kept = len(rig.animation_data.nla_tracks["MotionGPT Batch"].strips)
    assert 1 <= kept < 4
    assert bpy.ops.motiongpt.batch(text_name="list") == {'FINISHED'}        # resumes: skips what exists
    strips = rig.animation_data.nla_tracks["MotionGPT Batch"].strips
    assert sorted(s.action["motiongpt_prompt"] for s in strips) == sorted(
        ["a person walks", "a person runs", "a person jumps", "a person waves"])


def test_batch_survives_a_killed_worker(rig, addon):
    operators = addon
    from motiongpt_addon import client
    bpy.data.texts.new("list").from_string("a person walks\na person runs\na person jumps\n")
    bpy.context.scene.motiongpt.auto_duration = False
    bpy.context.scene.motiongpt.seconds = 60.0    # long requests: the next one is still running at the kill
    assert bpy.ops.motiongpt.batch(text_name="list", asynchronous=True) == {'FINISHED'}
    job = operators.running_job()
    drive_until(operators, lambda: job.applied >= 1)
    client.current_client().kill()                                            # the engine process dies
    drive_until(operators, lambda: job.finished)
    assert job.state == 'FAILED' and "stopped unexpectedly" in job.error
    kept = len(rig.animation_data.nla_tracks["MotionGPT Batch"].strips)
    assert 1 <= kept < 3
    assert bpy.ops.motiongpt.batch(text_name="list") == {'FINISHED'}        # a new worker finishes the rest
    assert len(rig.animation_data.nla_tracks["MotionGPT Batch"].strips) == 3


def test_a_second_job_while_one_runs_is_refused(rig, addon):
    assert bpy.ops.motiongpt.generate(prompt="a person walks", seconds=1.0, asynchronous=True) == {'FINISHED'}
    try:
        expect_error(lambda: bpy.ops.motiongpt.generate(prompt="a person runs"), "MotionGPT is busy")
    finally:
        drive_until(addon, lambda: addon.running_job() is None)
    assert rig.animation_data.action.name == "a person walks"


# ----------------------------------------------------------------------------- preferences

def test_engine_interpreter_missing_is_reported(rig):
    prefs = bpy.context.preferences.addons[ADDON].preferences
    prefs.python_path = "/no/such/python3"
    try:
        expect_error(lambda: bpy.ops.motiongpt.generate(prompt="a person walks", seconds=1.0),
                     "Python interpreter for the engine was not found", "/no/such/python3")
    finally:
        prefs.python_path = str(TORCH_PYTHON)


def test_install_dependencies_failure_is_clear(addon, tmp_path):
    prefs = bpy.context.preferences.addons[ADDON].preferences
    prefs.packages_folder = str(tmp_path / "site-packages")
    try:
        message = expect_error(lambda: bpy.ops.motiongpt.install_dependencies(
            packages="motiongpt-no-such-package==1.0", pip_arguments="--no-index"), "pip failed (exit code 1)")
        assert "motiongpt-no-such-package" in message
    finally:
        prefs.packages_folder = ""


def test_requirements_match_pyproject(addon):
    import tomllib
    from motiongpt_addon.preferences import NO_DEPS_REQUIREMENTS, REQUIREMENTS
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    assert list(REQUIREMENTS) == pyproject["project"]["dependencies"]
    assert list(NO_DEPS_REQUIREMENTS) == pyproject["tool"]["motiongpt"]["no-deps"]


# ----------------------------------------------------------------------------- undo, registration

def test_undo_restores_the_previous_state(rig):
    bpy.ops.ed.undo_push(message="before")
    bpy.ops.ed.undo_push(message="before, again")
    assert bpy.ops.motiongpt.generate(prompt="a person walks", seconds=1.0) == {'FINISHED'}
    bpy.ops.ed.undo_push(message="generated")
    assert bpy.data.objects["SMPL"].animation_data.action is not None
    bpy.ops.ed.undo()
    smpl = bpy.data.objects["SMPL"]
    assert smpl.animation_data is None or smpl.animation_data.action is None


def test_register_twice_and_unregister_leaves_nothing(addon, tiny_model):
    from motiongpt_addon import client, operators, ui
    assert bpy.ops.motiongpt.generate.poll() is not None
    worker = client.current_client()
    pid_alive = worker is not None and worker.alive
    for _ in range(2):
        addon_utils.disable(ADDON, default_set=True)
        assert not hasattr(bpy.types, "MOTIONGPT_OT_generate")
        assert not hasattr(bpy.types, "VIEW3D_PT_motiongpt")
        assert not hasattr(bpy.types.Scene, "motiongpt")
        assert not hasattr(bpy.types.WindowManager, "motiongpt_status")
        assert ADDON not in bpy.context.preferences.addons
        assert client.current_client() is None and not bpy.app.timers.is_registered(operators.drive_jobs)
        for menu, function in ui.MENU_ENTRIES:
            assert function not in getattr(bpy.types, menu)._dyn_ui_initialize()
        if pid_alive:
            assert not worker.alive
        addon_utils.enable(ADDON, default_set=True)
        assert hasattr(bpy.types, "MOTIONGPT_OT_generate") and hasattr(bpy.types.Scene, "motiongpt")
        for menu, function in ui.MENU_ENTRIES:
            assert getattr(bpy.types, menu)._dyn_ui_initialize().count(function) == 1
    configure(tiny_model)
