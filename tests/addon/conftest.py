"""Shared fixtures for the Blender-side tests: one bpy session, real motion, real rigs.

Needs bpy (4.2-5.0) + numpy + scipy, never torch. Motion: HumanML3D clip 012314 (a tennis serve,
20 fps) from ../shared/data next to the repository.

The add-on tests (``addon``, ``rig`` and the helpers ``expect_error``, ``drive_until``; test
modules import the helpers with ``from tests.addon.conftest import ...``) enable the add-on through
addon_utils; its engine worker is a real process running the torch interpreter of the repository's
.venv with the tiny randomly initialised model folder of tests/support/tiny_model.py.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import bpy  # noqa: E402
import addon_utils  # noqa: E402  (on sys.path once bpy is imported)

from engine.motion import Motion  # noqa: E402

CLIP = REPO.parent / "shared" / "data" / "humanml3d" / "new_joints" / "012314.npy"
TORCH_PYTHON = REPO / ".venv" / "bin" / "python"
ADDON = "motiongpt_addon"


@pytest.fixture(scope="session")
def tennis() -> Motion:
    """The real tennis serve, (170, 22, 3) at 20 fps."""
    return Motion(np.load(CLIP), 20.0)


@pytest.fixture()
def scene():
    """An empty scene at 20 fps, frame 1 (add-ons such as rigify stay enabled)."""
    bpy.ops.wm.read_homefile(use_empty=True)
    current = bpy.context.scene
    current.render.fps, current.render.fps_base = 20, 1.0
    current.frame_set(1)
    return current


@pytest.fixture()
def metarig(scene):
    """Blender's Rigify human metarig (159 bones, QUATERNION and YXZ rotation modes)."""
    addon_utils.enable("rigify", default_set=True)
    bpy.ops.object.armature_human_metarig_add()
    return bpy.context.view_layer.objects.active


# ----------------------------------------------------------------------------- the add-on with a real worker

def configure(model_folder: Path) -> None:
    """Point the add-on's preferences at ``model_folder``, on the CPU, with the torch .venv's Python."""
    prefs = bpy.context.preferences.addons[ADDON].preferences
    prefs.model_source = 'FOLDER'
    prefs.model_folder = str(model_folder)
    prefs.device = 'CPU'
    prefs.python_path = str(TORCH_PYTHON)


@pytest.fixture(scope="module")
def addon(tiny_model):
    """The add-on enabled for a test module (its ``operators`` module); one worker serves it."""
    addon_utils.enable(ADDON, default_set=True)
    configure(tiny_model)
    from motiongpt_addon import operators
    yield operators
    addon_utils.disable(ADDON, default_set=True)       # classes registered at exit hang bpy 4.5


@pytest.fixture()
def rig(addon, scene):
    """The SMPL armature the add-on builds, in an empty 20 fps scene."""
    from motiongpt_addon import retarget
    return retarget.create_smpl_armature()


def snapshot() -> tuple:
    """What 'the scene unchanged' means here: objects, actions, their keys and NLA tracks."""
    objects = tuple(sorted(o.name for o in bpy.data.objects))
    actions = tuple(sorted(a.name for a in bpy.data.actions))
    tracks = tuple(sorted((o.name, t.name, len(t.strips)) for o in bpy.data.objects if o.animation_data
                          for t in o.animation_data.nla_tracks))
    keys = tuple(sorted((a.name, int(a.frame_range[0]), int(a.frame_range[1])) for a in bpy.data.actions))
    return objects, actions, tracks, keys


def expect_error(call, *fragments: str) -> str:
    """``call()`` reports one ERROR (no traceback) holding every fragment and leaves the scene unchanged."""
    before = snapshot()
    with pytest.raises(RuntimeError) as error:
        call()
    message = str(error.value)
    assert message.startswith("Error: ") and "Traceback" not in message
    for fragment in fragments:
        assert fragment in message, message
    assert snapshot() == before
    return message


def drive_until(operators, condition, timeout: float = 60.0) -> None:
    """Call ``operators.drive_jobs()`` (what the timer does in the UI) until ``condition()``."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "the job did not get there in time"
        operators.drive_jobs()
        time.sleep(0.02)
