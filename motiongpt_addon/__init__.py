"""MotionGPT for Blender (placeholder registration; the full add-on replaces this file).

Importing the package must stay side-effect free so that ``import motiongpt_addon.retarget``
works in plain bpy (tests) without registering anything.
"""


def register() -> None:
    """Nothing registered yet."""


def unregister() -> None:
    """Nothing to unregister yet."""
