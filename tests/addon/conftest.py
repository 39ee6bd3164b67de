"""Shared fixtures for the Blender-side tests: one bpy session, real motion, real rigs.

Needs bpy (4.2-5.0) + numpy + scipy, never torch. Motion: HumanML3D clip 012314 (a tennis serve,
20 fps) from ../shared/data next to the repository.
"""
from __future__ import annotations

import sys
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
