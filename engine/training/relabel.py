"""Giving a retrained tokenizer's codes the numbers of an earlier tokenizer's codes:

    python -m engine.training relabel --tokenizer NEW --like OLD --data DIR --out DIR [--fp16]

A VQ-VAE's code numbers are arbitrary. Fine-tuning one (the codebook follows the encoder by EMA,
dead codes are reset) keeps much of what it encodes but moves it to other numbers: after 10,000
steps on the GPU the bundled tokenizer's fine-tune gave the same token as the old one at 0.4 % of
the positions of the training clips, and a language model trained on the old numbers reads its tokens as noise.

This permutes NEW's codebook rows so that each of its codes carries the number of the OLD code it
most often stands in for: both tokenizers encode the training clips, the (new, old) token pairs
at the same position are counted, and the permutation with the largest total count is taken
(a maximum-weight matching, ``scipy.optimize.linear_sum_assignment``). Only the numbers change:
the relabelled tokenizer decodes every motion exactly as NEW does. The language model can then be
fine-tuned from its old weights (``--init``) on tokens that mostly mean what they meant.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from ..errors import MotionError
from ..tokenizer import MotionTokenizer


@dataclass
class Relabelling:
    """What ``python -m engine.training relabel`` needs; the CLI flags have the same names."""

    tokenizer: str = ""        # the retrained tokenizer folder (NEW)
    like: str = ""             # the tokenizer whose code numbers NEW takes (OLD)
    data: str = ""             # dataset folder: its training clips are encoded by both
    out: str = ""              # folder for the relabelled tokenizer
    every: int = 1             # use every N-th training clip (1: all)
    fp16: bool = False         # write model.safetensors in float16 (for shipping)


def code_cooccurrence(new: MotionTokenizer, old: MotionTokenizer, clips: Sequence[np.ndarray]) -> np.ndarray:
    """(new code_num, old code_num) counts of positions where ``new`` and ``old`` encode the same
    (T, 263) feature clip as (row code, column code)."""
    step = new.config.frames_per_token
    if old.config.frames_per_token != step:
        raise MotionError(f"the tokenizers group {step} and {old.config.frames_per_token} frames per token")
    counts = np.zeros((new.config.code_num, old.config.code_num), dtype=np.int64)
    for features in clips:
        usable = len(features) // step * step
        if usable < step:
            continue
        ours, theirs = new.encode(features[:usable]), old.encode(features[:usable])
        np.add.at(counts, (ours, theirs), 1)
    if not counts.any():
        raise MotionError(f"no clip has {step} frames or more to compare the tokenizers on")
    return counts


def matching_permutation(counts: np.ndarray) -> np.ndarray:
    """(code_num,) ``order`` with ``order[j]`` = the NEW code that gets number j: the one-to-one
    assignment of NEW codes to OLD numbers with the largest summed ``counts``."""
    from scipy.optimize import linear_sum_assignment
    if counts.ndim != 2 or counts.shape[0] != counts.shape[1]:
        raise MotionError(f"the codebooks differ in size {counts.shape}: codes can only be renumbered 1:1")
    new_codes, old_numbers = linear_sum_assignment(-counts)
    order = np.empty(len(new_codes), dtype=np.int64)
    order[old_numbers] = new_codes
    return order


def renumber_codes(model: MotionTokenizer, order: np.ndarray) -> MotionTokenizer:
    """``model`` with codebook row j replaced by row ``order[j]`` (in place; returned)."""
    codebook = model.quantizer.codebook
    if sorted(order.tolist()) != list(range(len(codebook))):
        raise MotionError(f"order must be a permutation of the {len(codebook)} codes")
    with torch.no_grad():
        codebook.copy_(codebook[torch.as_tensor(order, device=codebook.device)])
    return model


def relabel(config: Relabelling) -> dict:
    """Relabel ``config.tokenizer`` like ``config.like`` and write it to ``config.out``; returns the
    share of positions (over the clips used) where the two agree before and after."""
    from ..data import load_split
    if config.every < 1:
        raise MotionError(f"--every {config.every}: must be 1 or more")
    new = MotionTokenizer.from_pretrained(config.tokenizer, device="cpu")
    old = MotionTokenizer.from_pretrained(config.like, device="cpu")
    if new.config.code_num != old.config.code_num:
        raise MotionError(f"{config.tokenizer} has {new.config.code_num} codes and {config.like} "
                          f"{old.config.code_num}: codes can only be renumbered 1:1")
    clips = [clip.features for clip in load_split(config.data, "train")[:: config.every]]
    counts = code_cooccurrence(new, old, clips)
    order = matching_permutation(counts)
    renumber_codes(new, order)
    new.save_pretrained(config.out, dtype=torch.float16 if config.fp16 else torch.float32)
    total = counts.sum()
    result = {"clips": len(clips), "agreement_before": float(np.trace(counts) / total),
              "agreement_after": float(counts[order, np.arange(len(order))].sum() / total)}
    print(f"relabelled {config.tokenizer} like {config.like} on {len(clips)} training clips: the same token "
          f"at {100 * result['agreement_before']:.1f} % of positions before, "
          f"{100 * result['agreement_after']:.1f} % after -> {config.out}", flush=True)
    return result
