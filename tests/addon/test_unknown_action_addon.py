"""Issue 17 item 5 in real bpy: Generate with a prompt whose action the model does not know reports
the engine's notice as a WARNING and still keys the motion. The model: the tiny one with a text side
holding the bundled model's readings (written by the torch .venv; the reading encoder is real)."""
from __future__ import annotations

import subprocess

import bpy

from tests.addon.conftest import REPO, TORCH_PYTHON, configure

WRITE_TEXT_SIDE = """
import json, shutil, sys, torch
from engine.text.side import TextSide, TextSideConfig
values = json.load(open("assets/models/default/lm/text_side.json", encoding="utf-8"))
values.update(d_model=32, hidden=64, embed_dim=32)
shutil.copytree(sys.argv[1], sys.argv[2])
torch.manual_seed(0)
TextSide(TextSideConfig(**values)).save_pretrained(sys.argv[2] + "/lm")
"""


def test_generate_reports_an_unknown_action_and_still_keys(rig, tiny_model, tmp_path, capfd):
    folder = tmp_path / "model-with-readings"
    subprocess.run([str(TORCH_PYTHON), "-c", WRITE_TEXT_SIDE, str(tiny_model), str(folder)], cwd=REPO, check=True)
    configure(folder)
    try:
        assert bpy.ops.motiongpt.generate(prompt="a person swims breaststroke", seconds=1.0, seed=0) == {'FINISHED'}
        action = rig.animation_data.action
        assert action is not None and action["motiongpt_prompt"] == "a person swims breaststroke"
        assert tuple(action.frame_range) == (1.0, 20.0)
        printed = "".join(capfd.readouterr())
        assert "MotionGPT: this model knows no motion for 'swims breaststroke'; generated 'a person jogs in a " \
               "circle to the left', its nearest" in printed
        assert bpy.ops.motiongpt.generate(prompt="someone curtsies", seconds=1.0, seed=0) == {'FINISHED'}
        assert "knows no motion" not in "".join(capfd.readouterr())
    finally:
        configure(tiny_model)
