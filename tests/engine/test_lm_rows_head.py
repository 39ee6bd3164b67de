"""engine.lm.motion_rows_head: while a motion string is generated, lm_head computes only the rows
of ``</s>`` and the motion tokens. Its logits there equal the full lm_head's, the generated codes
equal those of a run with the full lm_head, and the T5 gets its own lm_head back afterwards.

A tiny randomly initialised real T5 and our real text tokenizer (tests/engine/tiny_models.py).
"""
import numpy as np
import pytest
import torch

from engine.lm import MotionLanguageModel, motion_rows_head, new_t5
from engine.text.tokenizer import build_text_tokenizer
from tests.engine.tiny_models import CODE_NUM, real_captions


@pytest.fixture(scope="module")
def lm(shared_data):
    text_tokenizer = build_text_tokenizer(real_captions(shared_data), vocab_size=600, code_num=CODE_NUM)
    t5 = new_t5(len(text_tokenizer) + 7, d_model=32, num_layers=1, num_heads=2, d_ff=64, seed=0).eval()
    return MotionLanguageModel(t5, text_tokenizer, CODE_NUM)


def test_rows_head_logits_equal_the_full_head_on_its_rows(lm):
    vocab, head = lm.vocab, lm.t5.lm_head
    rows_head = motion_rows_head(head, vocab)
    hidden = torch.randn(3, 5, 32, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        full, restricted = head(hidden), rows_head(hidden)
    assert restricted.shape == full.shape == (3, 5, len(lm.text_tokenizer) + 7)
    rows = [vocab.eos_id] + list(range(vocab.first_id, vocab.first_id + CODE_NUM + 3))
    torch.testing.assert_close(restricted[..., rows], full[..., rows], rtol=1e-5, atol=1e-6)
    others = torch.ones(full.shape[-1], dtype=torch.bool)
    others[rows] = False
    assert torch.isneginf(restricted[..., others]).all()


def test_generation_with_the_rows_head_equals_the_full_head(lm):
    head = lm.t5.lm_head
    prompts = ["Generate motion: a person jumps", "Generate motion with 40 frames: someone waves"]
    fast = lm.generate_motion(prompts, [3, 10], [12, 10], seeds=[0, 1])
    assert lm.t5.lm_head is head                                   # restored after generating
    # the same processor on the full lm_head (generate without the swap) gives the same codes
    from engine.lm import MotionSpanProcessor
    generators = [torch.Generator().manual_seed(s) for s in (0, 1)]
    processor = MotionSpanProcessor(lm.vocab, [3, 10], [12, 10], generators)
    slow = [lm.vocab.codes_of(row) for row in lm._generate(prompts, processor, 15, motion_only=False)]
    for a, b in zip(fast, slow):
        np.testing.assert_array_equal(a, b)
    assert len(fast[1]) == 10 and 3 <= len(fast[0]) <= 12
