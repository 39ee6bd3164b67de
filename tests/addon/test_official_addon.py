"""Model: *MotionGPT-base (official)* in the preferences: Download and Convert, offline, against a
Hugging Face cache prepared by tests/support/official_checkpoint.py (the official key layout, run
with the torch .venv's Python, since this file also runs under the bpy 5.0 venv without torch).

In module mode ``bpy.app.online_access`` is False, so the engine process gets HF_HUB_OFFLINE=1 and
only reads the prepared cache; it runs as ``.venv/bin/python -m engine fetch-official``.
"""
from __future__ import annotations

import shutil
import subprocess
import time

import addon_utils
import bpy
import pytest

from tests.addon.conftest import ADDON, REPO, TORCH_PYTHON, expect_error

CONVERTED = "motiongpt-base"


@pytest.fixture(scope="module")
def prepared_home(tmp_path_factory):
    """An HF_HOME holding the official-layout checkpoint and tokenizer in huggingface_hub's layout."""
    home = tmp_path_factory.mktemp("hf-home")
    subprocess.run([str(TORCH_PYTHON), str(REPO / "tests" / "support" / "official_checkpoint.py"), str(home)],
                   check=True, capture_output=True, timeout=300)
    return home


@pytest.fixture(scope="module")
def official(prepared_home):
    """The add-on enabled with the torch Python; its ``official_model`` module."""
    addon_utils.enable(ADDON, default_set=True)
    from motiongpt_addon import client, official_model
    prefs = bpy.context.preferences.addons[ADDON].preferences
    prefs.python_path, prefs.device = str(TORCH_PYTHON), 'CPU'
    yield official_model
    client.shutdown_shared_client()
    addon_utils.disable(ADDON, default_set=True)       # classes registered at exit hang bpy 4.5


@pytest.fixture()
def prefs(official, prepared_home, tmp_path):
    """Preferences with a fresh Cache Folder whose hub cache is the prepared one, the bundled model chosen."""
    home = tmp_path / "cache"
    home.mkdir()
    (home / "hub").symlink_to(prepared_home / "hub", target_is_directory=True)
    prefs = bpy.context.preferences.addons[ADDON].preferences
    prefs.cache_folder, prefs.model_source = str(home), 'DEFAULT'
    return prefs


def test_the_model_setting_offers_the_official_model_with_its_licence(prefs):
    from motiongpt_addon import preferences
    items = {item.identifier: item.name for item in prefs.bl_rna.properties["model_source"].enum_items}
    assert items["OFFICIAL"] == "MotionGPT-base (official, 1.2 GB download)"
    prefs.model_source = 'OFFICIAL'
    settings = preferences.worker_settings()
    assert settings.model == "official" and settings.offline
    lines = [text for text, _ in preferences.official_model.status_lines(prefs, settings)]
    assert "MIT" in lines[0] and "non-commercial" in " ".join(lines)
    # not converted yet: a request is refused with what to press, before any engine process starts
    assert "press Download and Convert" in preferences.check_model_setting()
    # the checkpoint repository chosen as a Hugging Face model points to this entry
    prefs.model_source, prefs.hub_repo_id = 'HUB', "OpenMotionLab/MotionGPT-base"
    assert "Model: MotionGPT-base (official)" in preferences.check_model_setting()
    prefs.hub_repo_id = ""


def test_download_and_convert_then_generate_then_a_second_click_does_nothing(official, prefs, scene):
    prefs.model_source = 'OFFICIAL'
    started = time.monotonic()
    assert bpy.ops.motiongpt.fetch_official() == {'FINISHED'}
    fetch = official.current_fetch()
    folder = official.folder_for(official.WorkerSettings(python="", cache_dir=prefs.cache_folder))
    assert fetch.returncode == 0 and fetch.error == "" and fetch.folder == str(folder)
    assert fetch.step == "ready" and fetch.progress_text == "ready" and fetch.fraction == 1.0
    assert official.is_ready(folder) and prefs.model_source == 'OFFICIAL'
    assert time.monotonic() - started < 60
    # the worker loads the converted folder and generates
    from motiongpt_addon import preferences, retarget
    assert preferences.check_model_setting() is None
    rig = retarget.create_smpl_armature()
    assert bpy.ops.motiongpt.generate(prompt="a person walks forward", seconds=2.0, seed=1) == {'FINISHED'}
    assert rig.animation_data.action.name == "a person walks forward"
    # a second click finds the converted folder: no engine process, nothing rewritten
    stamp = (folder / "MOTIONGPT_READY").stat().st_mtime_ns
    assert bpy.ops.motiongpt.fetch_official() == {'FINISHED'}
    assert official.current_fetch() is fetch and (folder / "MOTIONGPT_READY").stat().st_mtime_ns == stamp


def test_a_failure_is_one_message_and_leaves_the_bundled_model_selected(official, prefs, scene, tmp_path):
    empty = tmp_path / "empty-cache"
    empty.mkdir()
    prefs.cache_folder, prefs.model_source = str(empty), 'OFFICIAL'
    message = expect_error(bpy.ops.motiongpt.fetch_official, "not downloaded yet", "online",
                           "bundled model stays selected")
    assert "Traceback" not in message and len(message.splitlines()) == 1
    assert prefs.model_source == 'DEFAULT'
    assert sorted(p.name for p in empty.iterdir()) == []
    lines = official.status_lines(prefs, official.WorkerSettings(python="", cache_dir=str(empty)))
    assert lines[-1][1] == 'ERROR' and "not downloaded yet" in lines[-1][0]


def test_cancel_mid_way_leaves_no_folder_and_the_bundled_model(official, prefs):
    from motiongpt_addon import preferences
    prefs.model_source = 'OFFICIAL'
    fetch = official.OfficialFetch(preferences.worker_settings())
    fetch.start()
    deadline = time.monotonic() + 60
    while fetch.step != "convert":
        assert time.monotonic() < deadline and fetch.running, fetch.error
        time.sleep(0.02)
    fetch.cancel()
    fetch.wait()
    assert fetch.returncode != 0 and "cancelled" in fetch.error
    assert official.apply_outcome(fetch, prefs) == fetch.error and prefs.model_source == 'DEFAULT'
    home = prefs.cache_folder
    assert not official.is_ready(official.folder_for(official.WorkerSettings(python="", cache_dir=home)))
    assert not (official.folder_for(official.WorkerSettings(python="", cache_dir=home))).exists()
    shutil.rmtree(home, ignore_errors=True)
