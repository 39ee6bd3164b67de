"""Loading the model at start (the preference "Load the Model at Start"): in an interactive session
``register`` starts a timer that starts the engine and sends it "load", so the first Generate finds
the model loaded. Timers never fire headless, so the tests call the timer functions as Blender
would. Real bpy, a real worker process with the tiny model folder.
"""
from __future__ import annotations

import time

import bpy

from tests.addon.conftest import ADDON, TORCH_PYTHON


def watch_until_answered(operators, timeout: float = 60.0) -> None:
    """Call ``watch_preload`` (what its timer does) until it stops asking to be called again."""
    deadline = time.monotonic() + timeout
    while operators.watch_preload() is not None:
        assert time.monotonic() < deadline, "the load request was not answered in time"
        time.sleep(0.02)


def test_the_model_is_loaded_at_start_when_the_preference_says_so(addon, scene, capsys):
    from motiongpt_addon import client
    prefs = bpy.context.preferences.addons[ADDON].preferences
    assert prefs.preload_model                                    # on by default
    client.shutdown_shared_client()
    prefs.preload_model = False
    try:
        assert addon.preload_engine() is None                     # runs once
        assert client.current_client() is None and addon.preload_request() is None   # off: nothing starts
    finally:
        prefs.preload_model = True

    assert addon.preload_engine() is None
    worker, request = client.current_client(), addon.preload_request()
    assert worker is not None and worker.alive and request is not None and request.task == "load"
    assert bpy.app.timers.is_registered(addon.watch_preload)
    watch_until_answered(addon)
    assert addon.preload_request() is None
    assert "MotionGPT: the model is loaded (cpu)" in capsys.readouterr().out
    assert worker.wait(worker.submit("hello"))["loaded"] is True
    assert client.current_client() is worker                      # the session's worker, kept for Generate


def test_a_preload_that_cannot_start_is_quiet_and_the_first_request_reports_it(addon, scene, capsys, tmp_path):
    from motiongpt_addon import client
    prefs = bpy.context.preferences.addons[ADDON].preferences
    client.shutdown_shared_client()
    missing = tmp_path / "no-python-here"
    prefs.python_path = str(missing)
    try:
        assert addon.preload_engine() is None                     # no exception reaches Blender
        assert addon.preload_request() is None
        out = capsys.readouterr().out
        assert "MotionGPT: the model was not loaded at start:" in out and str(missing) in out
        assert "Traceback" not in out
    finally:
        prefs.python_path = str(TORCH_PYTHON)
    client.shutdown_shared_client()


def test_unregister_forgets_the_load_request_and_its_timer(addon, scene):
    from motiongpt_addon import client
    client.shutdown_shared_client()
    assert addon.preload_engine() is None and addon.preload_request() is not None
    addon.stop_preload()
    assert addon.preload_request() is None and not bpy.app.timers.is_registered(addon.watch_preload)
    client.shutdown_shared_client()
