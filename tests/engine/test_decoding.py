"""engine.decoding: our own decoding loop for generate_motion, float32 and int8.

- float32: the loop's logits are bit-identical to transformers' generate with the same processor
  when its step linears are F.linear (``STEP_PRODUCT = "linear"``); with the default transposed
  product (W @ x.T).T they agree to ~1e-6 and the tokens are the same (batches with prompts of
  different lengths, sampling and greedy, free and fixed lengths, forced prefix/suffix codes);
- int8 (row-quantized weights): a seed reproduces, a batch row equals the single call, only valid
  motion tokens come out, the float32 model is left untouched;
- "auto" keeps small models in float32 and turns big ones to int8; the built decoder follows
  weight changes; training mode falls back to generate.

Real torch and transformers, tiny randomly initialised T5s with our real text tokenizer.
"""
import numpy as np
import pytest
import torch

from engine import MotionError, decoding
from engine.decoding import INT8_MIN_WEIGHTS, RowInt8Linear, has_vnni, int8_available, resolve_quantize
from engine.lm import (MotionLanguageModel, MotionSpanProcessor, T2M_LENGTH_PROMPT, T2M_PROMPT, PREDICT_PROMPT,
                       new_t5)
from engine.text.tokenizer import build_text_tokenizer
from tests.engine.tiny_models import CODE_NUM, real_captions

needs_int8 = pytest.mark.skipif(not int8_available(), reason="no x86 quantized kernels in this torch build")

PROMPTS = [T2M_LENGTH_PROMPT.format(frames=40, caption="a person walks forward and waves with the right hand"),
           T2M_PROMPT.format(caption="someone jumps"),
           T2M_LENGTH_PROMPT.format(frames=24, caption="a man runs in a circle, stops, turns around and sits down"),
           T2M_PROMPT.format(caption="a person kicks")]
MIN_CODES, MAX_CODES = [10, 2, 6, 1], [10, 14, 6, 9]


@pytest.fixture(scope="module")
def text_tokenizer(shared_data):
    return build_text_tokenizer(real_captions(shared_data), vocab_size=600, code_num=CODE_NUM)


def make_lm(text_tokenizer, quantize, d_model=32, layers=2, heads=2, d_ff=64, seed=5):
    t5 = new_t5(len(text_tokenizer), d_model=d_model, num_layers=layers, num_heads=heads, d_ff=d_ff, seed=seed).eval()
    return MotionLanguageModel(t5, text_tokenizer, CODE_NUM, quantize=quantize)


@pytest.fixture(scope="module")
def lm(text_tokenizer):
    return make_lm(text_tokenizer, "none")


@pytest.fixture(scope="module")
def lm8(text_tokenizer):
    return make_lm(text_tokenizer, "int8")


def both_paths(lm, *args, **kwargs):
    """generate_motion through our loop and through transformers' generate."""
    lm.fast_decoding = True
    fast = lm.generate_motion(*args, **kwargs)
    lm.fast_decoding = False
    try:
        reference = lm.generate_motion(*args, **kwargs)
    finally:
        lm.fast_decoding = True
    return fast, reference


@pytest.mark.parametrize("sample", [True, False])
def test_float32_loop_gives_the_tokens_of_generate(lm, sample):
    assert lm.decoder() is not None and not lm.decoder().quantized
    fast, reference = both_paths(lm, PROMPTS, MIN_CODES, MAX_CODES, seeds=[0, 1, 2, 3], sample=sample)
    for a, b in zip(fast, reference):
        np.testing.assert_array_equal(a, b)
    for prompt, low, high, seed, codes in zip(PROMPTS, MIN_CODES, MAX_CODES, range(4), fast):
        alone, = lm.generate_motion([prompt], [low], [high], seeds=[seed], sample=sample)
        np.testing.assert_array_equal(alone, codes)


def loop_and_generate_logits(lm, monkeypatch) -> tuple[dict, dict]:
    """The logits our loop and generate's path hand the processor, by (row, step), for three prompts."""
    seen = {}
    decide, decide_rows = MotionSpanProcessor.decide, MotionSpanProcessor.decide_rows

    def recording(self, row, ids, code_scores, end_score):           # the generate path, row by row
        seen[(False, row, len(ids))] = torch.cat([code_scores, end_score]).clone()
        return decide(self, row, ids, code_scores, end_score)

    def recording_rows(self, rows, ids, code_scores, end_scores):     # our loop, the rows of a step
        for position, row in enumerate(rows):
            seen[(True, row, len(ids[position]))] = torch.cat([code_scores[position], end_scores[position]]).clone()
        return decide_rows(self, rows, ids, code_scores, end_scores)

    monkeypatch.setattr(MotionSpanProcessor, "decide", recording)
    monkeypatch.setattr(MotionSpanProcessor, "decide_rows", recording_rows)
    both_paths(lm, PROMPTS[:3], MIN_CODES[:3], MAX_CODES[:3], seeds=[7, 8, 9])
    fast = {key[1:]: value for key, value in seen.items() if key[0]}
    reference = {key[1:]: value for key, value in seen.items() if not key[0]}
    # generate also asks the processor about rows that have ended (it answers </s>, then pads); we skip them
    assert set(fast) <= set(reference) and len(fast) > 20
    return fast, reference


def test_float32_loop_logits_are_bit_identical_to_generate_with_f_linear(lm, monkeypatch):
    monkeypatch.setattr(decoding, "STEP_PRODUCT", "linear")
    lm._decoders.clear()
    try:
        fast, reference = loop_and_generate_logits(lm, monkeypatch)
    finally:
        lm._decoders.clear()
    for key in fast:
        assert torch.equal(fast[key], reference[key]), key


def test_transposed_step_product_agrees_with_generate_to_float_rounding(lm, monkeypatch):
    assert decoding.STEP_PRODUCT == "transposed"
    fast, reference = loop_and_generate_logits(lm, monkeypatch)
    differing = 0
    for key in fast:
        scale = reference[key].abs().max()
        assert torch.allclose(fast[key], reference[key], rtol=0, atol=1e-5 * float(scale)), key
        differing += not torch.equal(fast[key], reference[key])
    assert differing > 0          # it is another summation order, not F.linear again


def test_step_linear_equals_f_linear_to_rounding_for_any_row_count():
    generator = torch.Generator().manual_seed(3)
    weight = torch.randn(96, 40, generator=generator)
    product = decoding.step_linear(weight)
    for rows in (1, 2, 4, 33):
        x = torch.randn(rows, 1, 40, generator=generator)
        out = product(x)
        assert out.shape == (rows, 1, 96)
        torch.testing.assert_close(out, torch.nn.functional.linear(x, weight), rtol=1e-5, atol=1e-5)
        singles = torch.cat([product(x[row:row + 1]) for row in range(rows)])
        torch.testing.assert_close(out, singles, rtol=1e-5, atol=1e-5)


def test_our_encoder_pass_is_bit_identical_to_the_t5_encoder(lm):
    decoder = lm.decoder()
    with torch.inference_mode():
        for prompts in (PROMPTS[:1], PROMPTS):                      # no padding, then padded rows
            inputs = lm.encode_prompts(prompts)
            ours = decoder.encode(inputs)
            theirs = lm.t5.get_encoder()(**inputs, return_dict=True).last_hidden_state
            assert torch.equal(ours, theirs)
        embeds = {"inputs_embeds": torch.randn(2, 7, 32, generator=torch.Generator().manual_seed(0)),
                  "attention_mask": torch.tensor([[1] * 7, [1] * 4 + [0] * 3])}   # as a text side gives them
        assert torch.equal(decoder.encode(embeds), lm.t5.get_encoder()(**embeds, return_dict=True).last_hidden_state)


@pytest.mark.parametrize("top_k, temperature", [(50, 1.0), (5, 0.7), (0, 1.3)])
def test_decide_rows_equals_decide_row_by_row(lm, top_k, temperature):
    vocab, rows = lm.vocab, 12
    scores = torch.randn(rows, CODE_NUM + 1, generator=torch.Generator().manual_seed(top_k))
    scores[3, :5] = scores[3, 5]                                    # ties
    low, high = [1 + r % 4 for r in range(rows)], [3 + r % 5 for r in range(rows)]
    prefix = [[2] if r == 5 else [] for r in range(rows)]
    ids = np.array([[0, vocab.start_id] + [vocab.first_id + 1] * (r % 6) for r in range(rows)], dtype=object)

    def processor(greedy):
        generators = None if greedy else [torch.Generator().manual_seed(100 + r) for r in range(rows)]
        return MotionSpanProcessor(vocab, low, high, generators, top_k, temperature, prefix_codes=prefix)

    for greedy in (False, True):
        one, many = processor(greedy), processor(greedy)
        for step in range(3):                                      # generator states advance alike
            expected = [one.decide(r, np.asarray(ids[r], dtype=np.int64), scores[r, :CODE_NUM], scores[r, CODE_NUM:])
                        for r in range(rows)]
            order = list(range(rows))[::-1]
            got = many.decide_rows(order, [np.asarray(ids[r], dtype=np.int64) for r in order],
                                   scores[order, :CODE_NUM], scores[order, CODE_NUM:])
            assert got == [expected[r] for r in order]


def test_float32_loop_forces_prefix_and_suffix_like_generate(lm):
    prompt = "Complete the masked motion: " + lm.vocab.masked_string([3, 4, 5], 6, [7, 8])
    kwargs = dict(seeds=[11], prefix_codes=[[3, 4, 5]], suffix_codes=[[7, 8]])
    fast, reference = both_paths(lm, [prompt], [11], [11], **kwargs)
    np.testing.assert_array_equal(fast[0], reference[0])
    assert list(fast[0][:3]) == [3, 4, 5] and list(fast[0][-2:]) == [7, 8] and len(fast[0]) == 11


@needs_int8
def test_int8_seeds_reproduce_and_batch_rows_equal_single_calls(lm8):
    decoder = lm8.decoder()
    assert decoder.quantized and decoder.int8_layers == 2 * 9     # per layer: q k v o, cross q o, wi_0 wi_1 wo
    batch = lm8.generate_motion(PROMPTS, MIN_CODES, MAX_CODES, seeds=[0, 1, 2, 3])
    again = lm8.generate_motion(PROMPTS, MIN_CODES, MAX_CODES, seeds=[0, 1, 2, 3])
    for a, b in zip(batch, again):
        np.testing.assert_array_equal(a, b)
    for i, codes in enumerate(batch):
        alone, = lm8.generate_motion([PROMPTS[i]], [MIN_CODES[i]], [MAX_CODES[i]], seeds=[i])
        np.testing.assert_array_equal(alone, codes)
    greedy = lm8.generate_motion(PROMPTS[:2], MIN_CODES[:2], MAX_CODES[:2], sample=False)
    np.testing.assert_array_equal(greedy[1], lm8.generate_motion(PROMPTS[1:2], [2], [14], sample=False)[0])


@needs_int8
def test_int8_gives_valid_motion_tokens_only(lm8):
    prompts = PROMPTS + [PREDICT_PROMPT.format(motion=lm8.vocab.motion_string([1, 2, 3]))]
    for seed in range(3):
        results = lm8.generate_motion(prompts, MIN_CODES + [5], MAX_CODES + [5], seeds=[seed] * 5)
        for codes, low, high in zip(results, MIN_CODES + [5], MAX_CODES + [5]):
            assert codes.dtype == np.int64 and low <= len(codes) <= high
            assert ((codes >= 0) & (codes < CODE_NUM)).all()
    prompt = "Complete the masked motion: " + lm8.vocab.masked_string([3, 4], 5, [9])
    codes, = lm8.generate_motion([prompt], [8], [8], seeds=[1], prefix_codes=[[3, 4]], suffix_codes=[[9]])
    assert len(codes) == 8 and list(codes[:2]) == [3, 4] and codes[-1] == 9


@needs_int8
def test_int8_leaves_the_float32_model_untouched(lm8):
    before = {key: value.clone() for key, value in lm8.t5.state_dict().items()}
    lm8.generate_motion(PROMPTS[:1], [4], [4], seeds=[0])
    after = lm8.t5.state_dict()
    assert all(torch.equal(before[key], after[key]) and after[key].dtype == torch.float32 for key in before)
    assert all(type(m) is not RowInt8Linear for m in lm8.t5.modules())


@needs_int8
def test_row_int8_linear_is_close_and_row_independent():
    torch.manual_seed(0)
    weight = torch.randn(96, 64) / 8
    layer = RowInt8Linear(weight)
    x = torch.randn(5, 1, 64) * torch.tensor([1.0, 100.0, 0.01, 3.0, 0.0]).view(5, 1, 1)
    out = layer(x)
    reference = x @ weight.T
    for row in range(5):
        torch.testing.assert_close(layer(x[row:row + 1]), out[row:row + 1], rtol=0, atol=0)
        scale = reference[row].abs().max().item() + 1e-12
        assert (out[row] - reference[row]).abs().max().item() <= 0.05 * scale
    assert torch.equal(out[4], torch.zeros_like(out[4]))


@needs_int8
@pytest.mark.skipif(not has_vnni(), reason="8-bit inputs need VNNI")
def test_row_int8_linear_with_8_bit_inputs_does_not_saturate():
    weight = torch.sign(torch.randn(64, 256, generator=torch.Generator().manual_seed(1)))
    x = weight[:1].clone().view(1, 1, 256)             # every product at its largest: 256 in float
    for reduce_range in (True, False):
        out = RowInt8Linear(weight, reduce_range)(x)
        assert abs(out[0, 0, 0].item() - 256.0) <= 256.0 * (0.01 if reduce_range else 0.005)


@needs_int8
def test_auto_keeps_small_models_float32_and_turns_big_ones_int8(text_tokenizer):
    small = make_lm(text_tokenizer, "auto")
    assert not small.decoder().quantized
    big = make_lm(text_tokenizer, "auto", d_model=768, layers=1, heads=12, d_ff=2048)
    # "auto" uses int8 only where the CPU takes 8-bit inputs (VNNI); elsewhere 7-bit inputs cost quality
    assert 768 * 768 >= INT8_MIN_WEIGHTS and big.decoder().quantized == has_vnni()
    assert big.decoder().reduce_range == (not has_vnni())
    codes, = big.generate_motion(PROMPTS[:1], [3], [3], seeds=[0])
    assert len(codes) == 3
    assert not make_lm(text_tokenizer, "none", d_model=768, layers=1, heads=12, d_ff=2048).decoder().quantized


def test_the_decoder_is_built_once_and_follows_weight_changes(text_tokenizer):
    lm = make_lm(text_tokenizer, "none", seed=9)
    decoder = lm.decoder()
    assert lm.decoder() is decoder
    first = lm.generate_motion(PROMPTS[:2], MIN_CODES[:2], MAX_CODES[:2], sample=False)
    with torch.no_grad():
        lm.t5.lm_head.weight.mul_(-1.0)          # in place, as an optimizer step would
    assert lm.decoder() is not decoder
    fast, reference = both_paths(lm, PROMPTS[:2], MIN_CODES[:2], MAX_CODES[:2], sample=False)
    for a, b in zip(fast, reference):
        np.testing.assert_array_equal(a, b)
    assert any(not np.array_equal(a, b) for a, b in zip(first, fast))


def test_switching_modes_keeps_each_built_decoder(text_tokenizer):
    lm = make_lm(text_tokenizer, "none")
    float32 = lm.decoder()
    lm.quantize = "int8"
    int8 = lm.decoder()
    lm.quantize = "none"
    assert lm.decoder() is float32
    lm.quantize = "int8"
    assert lm.decoder() is int8
    with torch.no_grad():
        lm.t5.shared.weight.add_(0.0)                 # any in-place change: every built decoder is stale
    assert lm.decoder() is not int8


def test_training_mode_uses_generate(text_tokenizer):
    lm = make_lm(text_tokenizer, "none")
    lm.t5.train()
    try:
        assert lm.decoder() is None
        codes, = lm.generate_motion(PROMPTS[:1], [5], [5], seeds=[0])
        assert len(codes) == 5
    finally:
        lm.t5.eval()


def test_quantize_modes_env_and_errors(monkeypatch, shared_data, tmp_path):
    monkeypatch.delenv("MOTIONGPT_QUANTIZE", raising=False)
    assert resolve_quantize(None) == "auto"
    assert (resolve_quantize(True), resolve_quantize(False), resolve_quantize("int8")) == ("int8", "none", "int8")
    monkeypatch.setenv("MOTIONGPT_QUANTIZE", "none")
    assert resolve_quantize(None) == "none"
    with pytest.raises(MotionError, match="quantize"):
        resolve_quantize("fp8")
    from engine.model import MotionGPT
    from tests.engine.tiny_models import tiny_model_folder
    folder = tiny_model_folder(tmp_path / "model", shared_data)
    assert MotionGPT.from_pretrained(folder, device="cpu").lm.quantize == "none"        # from the environment
    assert MotionGPT.from_pretrained(folder, device="cpu", quantize="int8").lm.quantize == "int8"


@needs_int8
def test_int8_model_batches_equal_single_calls(shared_data, tmp_path):
    from engine.model import MotionGPT
    from tests.engine.tiny_models import tiny_model_folder
    model = MotionGPT.from_pretrained(tiny_model_folder(tmp_path / "model", shared_data), device="cpu",
                                      quantize="int8")
    assert model.lm.decoder().quantized
    texts = ["a person walks", "someone jumps high twice and lands softly", "a person waves"]
    batch = model.text_to_motion_batch(texts, seconds=[2.0, None, 1.2], seed=3)
    for i, text in enumerate(texts):
        alone = model.text_to_motion(text, seconds=[2.0, None, 1.2][i], seed=3 + i)
        np.testing.assert_array_equal(alone.joints, batch[i].joints)


def test_int8_that_cannot_be_built_falls_back_to_float32_with_a_warning(text_tokenizer, monkeypatch):
    import engine.decoding

    def broken(*args, **kwargs):
        raise RuntimeError("no quantized kernels")

    monkeypatch.setattr(engine.decoding, "int8_available", lambda: True)
    monkeypatch.setattr(engine.decoding, "RowInt8Linear", broken)
    lm = make_lm(text_tokenizer, "int8")
    with pytest.warns(RuntimeWarning, match="float32"):
        decoder = lm.decoder()
    assert not decoder.quantized
    fast, reference = both_paths(lm, PROMPTS[:2], MIN_CODES[:2], MAX_CODES[:2], seeds=[0, 1])
    for a, b in zip(fast, reference):
        np.testing.assert_array_equal(a, b)
