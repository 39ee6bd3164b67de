"""The prompt timeline in the add-on (issue 18), in real bpy (4.5 in .venv, 5.0 in .venv-bpy5), headless.

The Timeline sub-panel's rows (saved in the .blend; add, remove, move), Generate Timeline with a
real engine worker on the tiny model (one Action from the earliest row's start frame, the previous
Action on a muted NLA track, undo, Cancel), rows refused before anything reaches the worker, and
the plan of a compound prompt given to the panel's Generate. Fixtures and helpers: conftest.py.
"""
from __future__ import annotations

import bpy
import pytest

from engine.motion import Motion
from engine.timeline import PARTS, Segment, parse_timeline
from tests.addon.conftest import drive_until, expect_error


def sent() -> int:
    """Requests sent to the engine so far (0 before the first worker exists)."""
    from motiongpt_addon import client
    worker = client.current_client()
    return worker.requests_sent if worker is not None else 0


def set_rows(*rows: tuple[str, int, int, str]) -> None:
    """Replace the scene's timeline by ``rows`` of (prompt, start frame, length in frames, part)."""
    collection = bpy.context.scene.motiongpt.timeline_rows
    collection.clear()
    for prompt, start, length, part in rows:
        row = collection.add()
        row.prompt, row.start, row.length, row.part = prompt, start, length, part


def rows_of(scene) -> list[tuple]:
    return [(r.prompt, r.start, r.length, r.part) for r in scene.motiongpt.timeline_rows]


@pytest.fixture()
def serve(rig, tennis):
    """The rig with 2 s of the real tennis serve keyed as Action 'Serve' (no model involved)."""
    from motiongpt_addon import retarget
    retarget.apply_motion(rig, Motion(tennis.joints[:40], 20.0), start_frame=1, action_name="Serve")
    return rig


WALK_WAVE_WALK = (("a person walks forward", 11, 40, 'WHOLE'),      # frames 11-50
                  ("a person walks backward", 51, 30, 'WHOLE'),     # frames 51-80
                  ("a person waves", 21, 20, 'UPPER'))              # frames 21-40, on top


# ----------------------------------------------------------------------------- the rows

def test_add_remove_and_move_rows(addon, scene):
    assert bpy.types.VIEW3D_PT_motiongpt_timeline.bl_parent_id == "VIEW3D_PT_motiongpt"
    assert hasattr(bpy.types, "MOTIONGPT_UL_timeline")
    from motiongpt_addon.properties import BODY_PARTS
    assert tuple(part.lower() for part, _, _ in BODY_PARTS) == PARTS
    settings = scene.motiongpt
    with pytest.raises(RuntimeError, match="poll"):
        bpy.ops.motiongpt.timeline_remove()                  # nothing to remove
    scene.frame_set(5)
    for _ in range(3):
        assert bpy.ops.motiongpt.timeline_add() == {'FINISHED'}
    assert rows_of(scene) == [("", 5, 40, 'WHOLE'), ("", 45, 40, 'WHOLE'), ("", 85, 40, 'WHOLE')]
    assert settings.timeline_index == 2                      # the new row is the active one
    for row, prompt in zip(settings.timeline_rows, "abc"):
        row.prompt = prompt
    assert bpy.ops.motiongpt.timeline_move(direction='UP') == {'FINISHED'}
    assert [r.prompt for r in settings.timeline_rows] == ["a", "c", "b"] and settings.timeline_index == 1
    settings.timeline_index = 0
    assert bpy.ops.motiongpt.timeline_move(direction='UP') == {'CANCELLED'}     # already at the top
    assert bpy.ops.motiongpt.timeline_move(direction='DOWN') == {'FINISHED'}
    assert [r.prompt for r in settings.timeline_rows] == ["c", "a", "b"] and settings.timeline_index == 1
    assert bpy.ops.motiongpt.timeline_remove() == {'FINISHED'}
    assert [r.prompt for r in settings.timeline_rows] == ["c", "b"] and settings.timeline_index == 1
    assert bpy.ops.motiongpt.timeline_remove() == {'FINISHED'}
    assert [r.prompt for r in settings.timeline_rows] == ["c"] and settings.timeline_index == 0


def test_rows_are_saved_in_the_blend(addon, scene, tmp_path):
    set_rows(*WALK_WAVE_WALK)
    scene.motiongpt.timeline_index = 2
    path = tmp_path / "timeline.blend"
    bpy.ops.wm.save_as_mainfile(filepath=str(path))
    bpy.ops.wm.read_homefile(use_empty=True)
    assert rows_of(bpy.context.scene) == []
    bpy.ops.wm.open_mainfile(filepath=str(path), load_ui=False)
    assert rows_of(bpy.context.scene) == list(WALK_WAVE_WALK)
    assert bpy.context.scene.motiongpt.timeline_index == 2


# ----------------------------------------------------------------------------- Generate Timeline

def test_generate_timeline_makes_one_action_and_undo_restores(serve, addon, capfd):
    set_rows(*WALK_WAVE_WALK)
    bpy.ops.ed.undo_push(message="before")
    bpy.ops.ed.undo_push(message="before, again")
    assert bpy.ops.motiongpt.generate_timeline() == {'FINISHED'}
    anim = bpy.data.objects["SMPL"].animation_data
    action = anim.action
    assert tuple(action.frame_range) == (11.0, 80.0)          # 40 + 30 frames from the earliest start
    assert [(t.strips[0].action.name, t.mute) for t in anim.nla_tracks] == [("Serve", True)]
    plan = action["motiongpt_plan"]
    assert "+ upper body: waves (1.0 s)" in plan and plan.count("|") == 2
    assert parse_timeline(action["motiongpt_timeline"]) == [
        Segment("a person walks forward", 0.0, 2.0, "whole"), Segment("a person walks backward", 2.0, 1.5, "whole"),
        Segment("a person waves", 0.5, 1.0, "upper")]
    status = bpy.context.window_manager.motiongpt_status.message
    assert status == f"Generate Timeline: done (1 / 1); planned as: {plan}"
    assert f"MotionGPT: {action.name}; planned as: {plan}" in "".join(capfd.readouterr())
    bpy.ops.ed.undo_push(message="timeline")
    bpy.ops.ed.undo()
    anim = bpy.data.objects["SMPL"].animation_data
    assert anim.action.name == "Serve" and not anim.nla_tracks
    assert [a.name for a in bpy.data.actions] == ["Serve"]


def test_whole_rows_out_of_list_order_and_model_chosen_lengths(rig):
    set_rows(("a person sits down", 41, 20, 'WHOLE'), ("a person waves", 1, 0, 'UPPER'),
             ("a person walks", 1, 40, 'WHOLE'))
    assert bpy.ops.motiongpt.generate_timeline() == {'FINISHED'}
    action = rig.animation_data.action
    assert tuple(action.frame_range) == (1.0, 60.0)
    assert parse_timeline(action["motiongpt_timeline"]) == [      # whole-body rows sent in time order
        Segment("a person walks", 0.0, 2.0, "whole"), Segment("a person waves", 0.0, None, "upper"),
        Segment("a person sits down", 2.0, 1.0, "whole")]
    assert "+ upper body: waves (2.0 s)" in action["motiongpt_plan"]     # to the end of the row under it


def test_cancel_a_running_timeline(serve, addon):
    set_rows(*WALK_WAVE_WALK)
    before = sent()
    assert bpy.ops.motiongpt.generate_timeline(asynchronous=True) == {'FINISHED'}
    job = addon.running_job()
    addon.drive_jobs()                                        # the request goes to the worker
    assert sent() == before + 1 and job.request is not None
    assert bpy.ops.motiongpt.cancel() == {'FINISHED'}
    drive_until(addon, lambda: job.finished, timeout=1.0)
    assert job.state == 'CANCELLED' and not job.results
    assert serve.animation_data.action.name == "Serve" and not serve.animation_data.nla_tracks
    assert [a.name for a in bpy.data.actions] == ["Serve"]
    assert bpy.ops.motiongpt.generate_timeline() == {'FINISHED'}   # the next run works


@pytest.mark.parametrize("rows, fragments", [
    ((), ("the timeline has no rows",)),
    ((("a person walks", 1, 40, 'WHOLE'), ("  \t ", 41, 20, 'WHOLE')),
     ("the prompt of timeline row 2 is empty",)),
    ((("a person walks", 1, 40, 'WHOLE'), ("a person waves", 11, 0, 'UPPER'), ("a person runs", 31, 40, 'WHOLE')),
     ("timeline rows 1 and 3: whole-body rows overlap",)),
    ((("a person walks", 1, 40, 'WHOLE'), ("a person runs", 1001, 400, 'WHOLE')),
     ("timeline row 2: ends at 70 s, past the 60 s limit",)),
    ((("a person walks", 1, 1300, 'WHOLE'),), ("timeline row 1", "65 s is beyond the 60 s limit")),
    ((("x" * 600, 1, 40, 'WHOLE'),), ("the prompt of timeline row 1 is 600 characters long",)),
])
def test_bad_rows_are_refused_before_the_model_runs(rig, rows, fragments):
    set_rows(*rows)
    before = sent()
    expect_error(lambda: bpy.ops.motiongpt.generate_timeline(), *fragments)
    assert sent() == before


# ----------------------------------------------------------------------------- a compound prompt

def test_generate_reports_and_stores_the_plan_of_a_compound_prompt(rig, capfd):
    settings = bpy.context.scene.motiongpt
    settings.prompt, settings.auto_duration, settings.seconds = "a person walks forward and waves", False, 3.0
    assert bpy.ops.motiongpt.generate() == {'FINISHED'}
    action = rig.animation_data.action
    plan = action["motiongpt_plan"]
    assert plan == "walks forward (3.0 s) | + upper body: waves (3.0 s)"
    assert action["motiongpt_prompt"] == "a person walks forward and waves"
    status = bpy.context.window_manager.motiongpt_status.message
    assert status == f"Generate: done (1 / 1); planned as: {plan}"
    assert f"MotionGPT: {action.name}; planned as: {plan}" in "".join(capfd.readouterr())
    assert bpy.ops.motiongpt.generate(prompt="a person walks forward", seconds=1.0) == {'FINISHED'}
    assert "motiongpt_plan" not in rig.animation_data.action                 # one action: no plan
    assert bpy.context.window_manager.motiongpt_status.message == "Generate: done (1 / 1)"
