"""Tiny, randomly initialised but real models for the language-model tests (imported by
test_lm.py, test_model.py, test_cli_tasks.py, test_train_lm.py).

Real torch modules, a real transformers T5 and our real text tokenizer trained on real captions
(CMU descriptions); real mocap (HumanML3D clip 012314, a Bandai walk) for contexts.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from engine import Motion, Normalizer
from engine.formats.bvh import read_bvh
from engine.lm import MotionLanguageModel, new_t5
from engine.model import MotionGPT, MotionGPTConfig
from engine.text.tokenizer import build_text_tokenizer
from engine.tokenizer import MotionTokenizer, TokenizerConfig

CODE_NUM = 64


def real_captions(shared_data: Path) -> list[str]:
    lines = (shared_data / "cmu" / "descriptions.tsv").read_text().splitlines()
    return [line.split("\t")[1] for line in lines if "\t" in line]


def serve(shared_data: Path) -> Motion:
    """HumanML3D 012314 (tennis serve), 170 frames at 20 fps."""
    return Motion(np.load(shared_data / "humanml3d" / "new_joints" / "012314.npy"), 20.0)


def bandai_walk(shared_data: Path) -> Motion:
    return read_bvh(shared_data / "bandai" / "dataset-1" / "data" / "dataset-1_walk-left_tired_001.bvh")


def tiny_motion_tokenizer(shared_data: Path, code_num: int = CODE_NUM, seed: int = 0) -> MotionTokenizer:
    torch.manual_seed(seed)
    config = TokenizerConfig(code_num=code_num, code_dim=16, output_emb_width=16, width=32, depth=1)
    model = MotionTokenizer(config, Normalizer.load(shared_data / "motiongpt_meta"))
    with torch.no_grad():
        model.quantizer.codebook.normal_()
    return model.eval()


def tiny_motiongpt(shared_data: Path, seed: int = 0) -> MotionGPT:
    tokenizer = tiny_motion_tokenizer(shared_data, seed=seed)
    text_tokenizer = build_text_tokenizer(real_captions(shared_data), vocab_size=600, code_num=CODE_NUM)
    t5 = new_t5(len(text_tokenizer), d_model=32, num_layers=1, num_heads=2, d_ff=64, seed=seed).eval()
    return MotionGPT(tokenizer, MotionLanguageModel(t5, text_tokenizer, CODE_NUM), MotionGPTConfig(name="tiny"))


def tiny_model_folder(folder: Path, shared_data: Path) -> Path:
    return tiny_motiongpt(shared_data).save_pretrained(folder)
