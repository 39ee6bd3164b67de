"""MotionGPT for Blender: text to motion, in-between, captioning, continuation and batches.

The thin Blender side. The model runs in a separate engine process (``python -m engine.worker``,
see ``client.py``); this package never imports torch. ``register()`` / ``unregister()`` are
Blender's add-on entry points; importing the package registers nothing, so
``import motiongpt_addon.retarget`` works in plain bpy.
"""
from __future__ import annotations

import sys
from pathlib import Path

bl_info = {
    "name": "MotionGPT",
    "author": "MotionGPT for Blender developers",
    "version": (0, 1, 0),
    "blender": (4, 2, 0),
    "location": "3D View > Sidebar > MotionGPT",
    "description": "Generate, fill in, continue and describe character motion from text",
    "category": "Animation",
}


def _ensure_engine_importable() -> None:
    """The ``engine`` package sits beside this one (checkout) or inside it (a packaged add-on)."""
    here = Path(__file__).resolve().parent
    for folder in (here.parent, here):
        if (folder / "engine" / "__init__.py").is_file() and str(folder) not in sys.path:
            sys.path.append(str(folder))
            return


_ensure_engine_importable()
_registered_classes: list = []


def _modules():
    from . import operators, preferences, properties, ui
    return operators, preferences, properties, ui


def register() -> None:
    """Register the properties, preferences, operators, panels and menu entries."""
    import bpy

    operators, preferences, properties, ui = _modules()
    for cls in (*properties.classes, *preferences.classes, *operators.classes, *ui.classes):
        bpy.utils.register_class(cls)
        _registered_classes.append(cls)
    properties.register_properties()
    ui.register_menus()
    if not bpy.app.background:      # the first Generate of a session then finds the model loaded
        bpy.app.timers.register(operators.preload_engine, first_interval=operators.PRELOAD_DELAY_SECONDS,
                                persistent=True)


def unregister() -> None:
    """Undo ``register``: stop the running job and the engine process, remove everything."""
    import bpy

    from . import client, official_model
    operators, preferences, properties, ui = _modules()
    operators.stop_jobs()
    official_model.cancel_running()
    client.shutdown_shared_client()
    ui.unregister_menus()
    if hasattr(bpy.types.Scene, "motiongpt"):
        properties.unregister_properties()
    for cls in reversed(_registered_classes):
        if cls.is_registered:
            bpy.utils.unregister_class(cls)
    _registered_classes.clear()
