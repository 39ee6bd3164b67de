"""`python3 build.py extension`: the zip builds, validates, installs into real bpy, enables, and
its Generate operator runs the packaged engine on the packaged model.

The zip is built with ``--model`` = a tiny randomly initialised model folder (built by
tests/support/tiny_model.py with the engine's own code), so it is small and quick; it lands in a
temporary folder, never in dist/. Installation happens in a separate bpy process (bpy 4.5 from
.venv and, when set up, bpy 5.0 from .venv-bpy5) whose BLENDER_USER_RESOURCES is a temporary
folder, so nothing reaches the user's Blender configuration. That process removes the checkout
from sys.path first: the add-on must find the engine inside the extension. The engine worker runs
on the .venv interpreter (torch), set through the add-on preferences like a user would.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
TORCH_PYTHON = REPO / ".venv" / "bin" / "python"
BUILD = [sys.executable, str(REPO / "build.py")]
EXTENSION_MODULE = "bl_ext.user_default.motiongpt"

# Runs inside a fresh bpy process: argv = zip, engine interpreter; prints one line "REPORT {json}".
INSTALL_AND_GENERATE = r"""
import json, os, sys
from pathlib import Path
repo = Path(os.environ["MOTIONGPT_REPO"]).resolve()
sys.path[:] = [p for p in sys.path if p and Path(p).resolve() != repo]   # no checkout: the zip must be complete
import bpy, addon_utils
zip_path, engine_python = sys.argv[1], sys.argv[2]
module = "bl_ext.user_default.motiongpt"
report = {"install": sorted(bpy.ops.extensions.package_install_files(
    filepath=zip_path, repo="user_default", enable_on_install=True))}
report["enabled"] = module in bpy.context.preferences.addons
prefs = bpy.context.preferences.addons[module].preferences
prefs.python_path, prefs.device = engine_python, "CPU"       # model source stays "Bundled"
report["model_source"] = prefs.model_source
import engine
report["engine_file"] = engine.__file__
report["extension_folder"] = bpy.utils.user_resource("EXTENSIONS", path="user_default/motiongpt")
settings = sys.modules[module + ".preferences"].worker_settings()
report["worker_pythonpath"] = list(settings.pythonpath)
scene = bpy.context.scene
scene.render.fps, scene.render.fps_base = 20, 1.0
scene.frame_set(1)
rig = sys.modules[module + ".retarget"].create_smpl_armature()
report["generate"] = sorted(bpy.ops.motiongpt.generate(prompt="a person walks forward", seconds=1.0, seed=3))
action = rig.animation_data.action
report["action"] = action.name
report["frame_range"] = list(action.frame_range)
report["prompt_property"] = action.get("motiongpt_prompt")
fcurves = sys.modules[module + ".anim_compat"].fcurves_of(rig)
report["fcurves"] = len(fcurves)
report["keys_per_fcurve"] = sorted({len(fc.keyframe_points) for fc in fcurves})
addon_utils.disable(module, default_set=True)       # unregister: bpy 4.5 hangs at exit otherwise
report["disabled"] = module not in bpy.context.preferences.addons
print("REPORT " + json.dumps(report), flush=True)
os._exit(0)
"""


@pytest.fixture(scope="module")
def package(tiny_model, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    result = subprocess.run([*BUILD, "extension", "--model", str(tiny_model), "--out", str(out)],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "built and validated" in result.stdout and "MB zipped" in result.stdout
    zips = list(out.glob("*.zip"))
    assert [z.name for z in zips] == ["motiongpt-0.1.0.zip"]
    return zips[0]


def test_zip_holds_the_addon_engine_assets_and_model_at_the_right_places(package, tiny_model):
    with zipfile.ZipFile(package) as archive:
        names = set(archive.namelist())
        manifest = archive.read("blender_manifest.toml").decode()
    for required in ("blender_manifest.toml", "__init__.py", "operators.py", "client.py", "retarget.py",
                     "engine/__init__.py", "engine/worker.py", "engine/model.py", "assets/bone_maps/smpl.json",
                     "assets/bone_maps/metarig.json", "assets/models/default/config.json", "LICENSE",
                     "assets/motiongpt_meta/mean.npy", "assets/motiongpt_meta/std.npy"):
        assert required in names, required
    model_files = {p.relative_to(tiny_model).as_posix() for p in tiny_model.rglob("*") if p.is_file()}
    assert {f"assets/models/default/{f}" for f in model_files} <= names
    assert not [n for n in names if "__pycache__" in n or n.startswith(("tests/", "bench/", ".")) or n.endswith(".pyc")]
    assert 'id = "motiongpt"' in manifest and 'blender_version_min = "4.2.0"' in manifest
    assert "[permissions]" in manifest and "files = " in manifest and "network = " in manifest


def test_zip_validates_with_blenders_own_tool(package):
    tool = next((REPO / ".venv" / "lib").glob("python3*/site-packages/bpy/*/scripts/addons_core/bl_pkg/cli/blender_ext.py"))
    result = subprocess.run([sys.executable, str(tool), "validate", str(package)], capture_output=True, text=True)
    assert result.returncode == 0 and "Success" in result.stdout, result.stdout + result.stderr


@pytest.mark.parametrize("venv", [".venv", ".venv-bpy5"])
def test_installs_enables_and_generates_with_the_packaged_engine_and_model(venv, package, tmp_path):
    python = REPO / venv / "bin" / "python"
    if not python.exists():
        pytest.fail(f"{venv} is missing: run `python3 build.py setup`", pytrace=False)
    user = tmp_path / "blender-user"
    env = dict(os.environ, BLENDER_USER_RESOURCES=str(user), MOTIONGPT_REPO=str(REPO))
    env.pop("PYTHONPATH", None)
    result = subprocess.run([str(python), "-c", INSTALL_AND_GENERATE, str(package), str(TORCH_PYTHON)],
                            capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)
    lines = [line for line in result.stdout.splitlines() if line.startswith("REPORT ")]
    assert result.returncode == 0 and lines, result.stdout[-3000:] + result.stderr[-3000:]
    report = json.loads(lines[0].removeprefix("REPORT "))

    extension = Path(report["extension_folder"])
    assert extension.is_relative_to(user) and (extension / "blender_manifest.toml").is_file()
    assert report["install"] == ["FINISHED"] and report["enabled"] and report["model_source"] == "DEFAULT"
    assert Path(report["engine_file"]).is_relative_to(extension)          # the packaged engine, not the checkout
    assert Path(report["worker_pythonpath"][0]) == extension              # ... and the worker's too
    assert (extension / "assets" / "models" / "default" / "config.json").is_file()
    assert report["generate"] == ["FINISHED"]
    assert report["action"] == "a person walks forward" and report["prompt_property"] == "a person walks forward"
    assert report["frame_range"] == [1.0, 20.0]                           # 1 s at 20 fps from frame 1
    assert report["fcurves"] >= 22 * 4 and report["keys_per_fcurve"] == [20]
    assert report["disabled"]


def test_bad_model_folder_and_unknown_arguments_give_one_line_errors(tmp_path):
    not_a_model = tmp_path / "empty"
    not_a_model.mkdir()
    for args, fragment in ((["--model", str(not_a_model)], "is not a MotionGPT model folder (missing: config.json, "
                                                           "tokenizer, lm)"),
                           (["--bogus"], "unknown argument '--bogus'"),
                           (["--model", str(not_a_model), "--without-model"], "exclude each other")):
        result = subprocess.run([*BUILD, "extension", *args, "--out", str(tmp_path / "dist")],
                                capture_output=True, text=True, timeout=120)
        assert result.returncode == 1, result.stdout + result.stderr
        assert fragment in result.stderr and "Traceback" not in result.stderr
        assert result.stderr.strip().count("\n") == 0, result.stderr
    assert not (tmp_path / "dist").exists() or not list((tmp_path / "dist").iterdir())
