"""`python3 build.py demo TEXT`: text -> motion -> rig -> out/demo.blend + out/demo.png + out/demo.txt.

Runs the real demo end to end (real torch model loading, real bpy 4.5 scene, retarget, save and
Cycles render) on a tiny randomly initialised model folder built with the engine's own code
(tests/support/tiny_model.py), chosen through $MOTIONGPT_MODEL, with a small filmstrip
(3 tiles of 64 x 80 px, 2 samples) so it stays quick. The .blend is re-opened in a separate bpy
process. A checkout without the bundled model must say so in one line.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
TORCH_PYTHON = REPO / ".venv" / "bin" / "python"
PROMPT = "a person walks forward and waves"
TILES, TILE_W, TILE_H = 3, 64, 80
CAPTION_STRIP_H = 3 * 22 + 8            # motiongpt_addon.demo_scene: three 22 px lines + 8 px margin
STAGES = ("load", "generate", "describe", "scene", "save", "preview")

REOPEN = r"""
import json, os, sys
import bpy
bpy.ops.wm.open_mainfile(filepath=sys.argv[1])
scene = bpy.context.scene
rig = bpy.data.objects["MotionGPT Demo Rig"]
body = bpy.data.objects["MotionGPT Demo Body"]
action = rig.animation_data.action
heights, feet = [], []
for frame in range(scene.frame_start, scene.frame_end + 1):
    scene.frame_set(frame)
    heights.append((rig.matrix_world @ rig.pose.bones["Head"].head).z)
    feet.append(min((rig.matrix_world @ rig.pose.bones[n].head).z for n in ("L_Foot", "R_Foot", "L_Ankle", "R_Ankle")))
report = {
    "scene": scene.name, "fps": scene.render.fps, "range": [scene.frame_start, scene.frame_end],
    "action": action.name, "action_range": list(action.frame_range),
    "prompt": scene.get("motiongpt_prompt"), "caption": scene.get("motiongpt_caption"),
    "action_caption": action.get("motiongpt_caption"),
    "body_modifier": [m.type for m in body.modifiers], "body_vertex_groups": len(body.vertex_groups),
    "body_parent": body.parent.name if body.parent else None, "camera": scene.camera.name if scene.camera else None,
    "engine": scene.render.engine, "head_min": min(heights), "feet_min": min(feet), "feet_max_of_min": max(feet),
}
print("REPORT " + json.dumps(report), flush=True)
os._exit(0)
"""


def read_png(path: Path) -> np.ndarray:
    """(height, width, 3) uint8 pixels of an 8-bit RGB, non-interlaced PNG whose rows use filter 0
    (what the demo writes); anything else fails an assertion. Chunk CRCs are checked."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    offset, chunks = 8, {}
    while offset < len(data):
        length, kind = struct.unpack(">I4s", data[offset:offset + 8])
        body = data[offset + 8: offset + 8 + length]
        assert zlib.crc32(kind + body) & 0xFFFFFFFF == struct.unpack(">I", data[offset + 8 + length: offset + 12 + length])[0]
        chunks[kind] = chunks.get(kind, b"") + body
        offset += 12 + length
    width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", chunks[b"IHDR"])
    assert (depth, colour, interlace) == (8, 2, 0)
    raw = zlib.decompress(chunks[b"IDAT"])
    stride = width * 3
    assert len(raw) == height * (stride + 1)
    rows = np.frombuffer(raw, np.uint8).reshape(height, stride + 1)
    assert not rows[:, 0].any(), "a row filter other than 0"
    return rows[:, 1:].reshape(height, width, 3).copy()


@pytest.fixture(scope="module")
def demo(tiny_model, tmp_path_factory):
    """Run `build.py demo` once; returns (output folder, stdout)."""
    out = tmp_path_factory.mktemp("demo-out")
    env = dict(os.environ, MOTIONGPT_MODEL=str(tiny_model))
    result = subprocess.run([sys.executable, str(REPO / "build.py"), "demo", PROMPT, "--seconds", "2",
                             "--out", str(out), "--tiles", str(TILES), "--tile-size", str(TILE_W), str(TILE_H),
                             "--samples", "2"], capture_output=True, text=True, env=env, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    return out, result.stdout


def test_demo_prints_every_stage_timing_and_where_the_files_are(demo, tiny_model):
    out, stdout = demo
    assert f"loading the model ({tiny_model})" in stdout              # $MOTIONGPT_MODEL was used
    timings = dict(re.findall(r"^  (\w+) +([0-9.]+) s$", stdout, flags=re.M))
    assert list(timings) == [*STAGES, "total"]
    assert abs(sum(float(timings[s]) for s in STAGES) - float(timings["total"])) < 0.05
    assert float(timings["preview"]) > 0 and float(timings["load"]) > 0
    for name in ("demo.blend", "demo.png", "demo.txt"):
        assert str(out / name) in stdout and (out / name).is_file()
    text = (out / "demo.txt").read_text()
    # the demo prompt says two things: planned as a walk with a wave on its upper body
    assert text.startswith(f"prompt: {PROMPT}\nplanned as: walks forward (2.0 s) | + upper body: waves (2.0 s)\n"
                           f"caption: ") and "motion: 40 frames" in text
    assert all(f"  {stage}" in text for stage in STAGES)


def test_demo_png_is_a_filmstrip_of_the_expected_size_showing_the_body(demo):
    out, stdout = demo
    pixels = read_png(out / "demo.png")
    assert pixels.shape == (TILE_H + CAPTION_STRIP_H, TILES * TILE_W, 3)
    assert f"({TILES * TILE_W} x {TILE_H + CAPTION_STRIP_H} px" in stdout
    tiles = pixels[:TILE_H].reshape(TILE_H, TILES, TILE_W, 3).transpose(1, 0, 2, 3).astype(int)
    for tile in tiles:
        red, green, blue = tile[..., 0], tile[..., 1], tile[..., 2]
        skin = (red - blue > 60) & (red > green)         # the orange body (floor and sky are grey/blue)
        left = (blue - red > 60)                          # the blue left limbs
        assert skin.sum() > 40 and left.sum() > 10, (skin.sum(), left.sum())
    strip = pixels[TILE_H:].astype(int)
    assert (strip < 60).mean() > 0.8 and (strip > 200).any()         # dark strip with light text


def test_demo_blend_reopens_with_the_keyed_rig_body_and_camera(demo):
    out, _ = demo
    result = subprocess.run([str(TORCH_PYTHON), "-c", REOPEN, str(out / "demo.blend")], capture_output=True,
                            text=True, timeout=120)
    lines = [line for line in result.stdout.splitlines() if line.startswith("REPORT ")]
    assert result.returncode == 0 and lines, result.stdout[-2000:] + result.stderr[-2000:]
    report = json.loads(lines[0].removeprefix("REPORT "))
    assert report["scene"] == "MotionGPT Demo" and report["fps"] == 20 and report["range"] == [1, 40]
    assert report["action"] == PROMPT and report["action_range"] == [1.0, 40.0]
    assert report["prompt"] == PROMPT and report["caption"] == report["action_caption"]
    assert report["body_modifier"] == ["ARMATURE"] and report["body_vertex_groups"] == 22
    assert report["body_parent"] == "MotionGPT Demo Rig" and report["camera"] == "MotionGPT Demo Camera"
    assert report["engine"] == "CYCLES"
    assert report["head_min"] > 1.0                                 # upright in every frame
    assert -0.05 < report["feet_min"] < 0.2                         # a foot near the floor (z = 0)


def test_demo_without_the_bundled_model_says_not_built_yet(tmp_path):
    """A checkout whose assets/models/default is missing (copied engine package, no assets)."""
    shutil.copytree(REPO / "engine", tmp_path / "engine", ignore=shutil.ignore_patterns("__pycache__"))
    env = dict(os.environ, PYTHONPATH=str(tmp_path))
    env.pop("MOTIONGPT_MODEL", None)
    result = subprocess.run([str(TORCH_PYTHON), "-m", "engine", "demo", PROMPT, "--out", str(tmp_path / "out")],
                            capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)
    assert result.returncode != 0
    assert "Traceback" not in result.stderr and result.stderr.strip().count("\n") == 0, result.stderr
    assert result.stderr.startswith("error: the bundled model is not built yet")
    assert not (tmp_path / "out").exists()


def test_demo_bad_arguments_give_one_line_errors(tmp_path, tiny_model):
    """Each case overrides a valid command line (argparse keeps the last value of an option)."""
    a_file = tmp_path / "a-file"
    a_file.write_text("not a folder")
    for text, overrides, fragment in (("   ", [], "the text prompt is empty"),
                                      (PROMPT, ["--seconds", "-1"], "--seconds must be between 0"),
                                      (PROMPT, ["--tiles", "0"], "--tiles must be between 1 and 24"),
                                      (PROMPT, ["--model", str(tmp_path / "nothing")], "no such model folder"),
                                      (PROMPT, ["--out", str(a_file)], "exists and is not a folder"),
                                      (PROMPT, ["--out", str(a_file / "sub")], "is not a writable folder")):
        result = subprocess.run([str(TORCH_PYTHON), "-m", "engine", "demo", text, "--model", str(tiny_model),
                                 "--out", str(tmp_path / "out"), *overrides],
                                capture_output=True, text=True, cwd=tmp_path, timeout=120)
        assert result.returncode == 2, result.stderr
        assert fragment in result.stderr and "Traceback" not in result.stderr, result.stderr
        assert result.stderr.strip().count("\n") == 0, result.stderr
    assert not (tmp_path / "out").exists()
