"""engine.text.tokenizer and engine.lm: vocabulary, motion strings, constrained generation.

A tiny randomly initialised T5 (real transformers) with our text tokenizer: a random model puts
probability everywhere, so every constraint is really exercised.
"""
import json

import numpy as np
import pytest
import torch

from engine import MotionError
from engine.lm import (MotionLanguageModel, MotionVocabulary, T2M_LENGTH_PROMPT, T2M_PROMPT, clean_caption,
                       load_t5, new_t5, save_t5)
from engine.text.tokenizer import build_text_tokenizer, motion_token
from tests.engine.tiny_models import CODE_NUM, real_captions


@pytest.fixture(scope="module")
def text_tokenizer(shared_data):
    return build_text_tokenizer(real_captions(shared_data), vocab_size=600, code_num=CODE_NUM)


@pytest.fixture(scope="module")
def lm(text_tokenizer):
    t5 = new_t5(len(text_tokenizer), d_model=32, num_layers=1, num_heads=2, d_ff=64, seed=3).eval()
    return MotionLanguageModel(t5, text_tokenizer, CODE_NUM)


def test_text_tokenizer_layout_and_reload(text_tokenizer, tmp_path):
    from transformers import AutoTokenizer
    assert (text_tokenizer.pad_token_id, text_tokenizer.eos_token_id, text_tokenizer.unk_token_id) == (0, 1, 2)
    base = text_tokenizer.convert_tokens_to_ids(motion_token(0))
    assert len(text_tokenizer) == base + CODE_NUM + 3
    assert [text_tokenizer.convert_tokens_to_ids(motion_token(k)) for k in range(CODE_NUM + 3)] == \
        list(range(base, base + CODE_NUM + 3))
    text_tokenizer.save_pretrained(str(tmp_path))
    assert (tmp_path / "tokenizer.json").is_file()
    reloaded = AutoTokenizer.from_pretrained(str(tmp_path))
    prompt = "Generate text: " + "".join(motion_token(k) for k in (CODE_NUM, 5, 7, CODE_NUM + 1))
    ids = text_tokenizer(prompt).input_ids
    assert reloaded(prompt).input_ids == ids
    assert ids[-1] == 1                                     # </s> appended, as T5
    assert ids[-5:-1] == [base + CODE_NUM, base + 5, base + 7, base + CODE_NUM + 1]


def test_text_tokenizer_represents_any_text(text_tokenizer):
    for text in ("a person waves 👋 then walks", "Ünïcödé ßtraße — 日本語", "tab\tand newline"):
        ids = text_tokenizer(text).input_ids
        assert 2 not in ids                                 # never <unk>: byte-level
        assert text_tokenizer.decode(ids, skip_special_tokens=True) == text


def test_motion_words_are_whole_tokens_at_the_default_size(shared_data):
    from engine.text.tokenizer import MOTION_WORDS
    tokenizer = build_text_tokenizer(real_captions(shared_data))
    base = tokenizer.convert_tokens_to_ids(motion_token(0))
    assert len(tokenizer) == base + 515 and 1000 < base <= 4000
    whole = [w for w in MOTION_WORDS if len(tokenizer(" " + w, add_special_tokens=False).input_ids) == 1]
    assert len(whole) == len(MOTION_WORDS), sorted(set(MOTION_WORDS) - set(whole))


def test_vocabulary_strings_and_parsing_by_id(text_tokenizer):
    vocab = MotionVocabulary.from_tokenizer(text_tokenizer, CODE_NUM)
    assert vocab.start_id == vocab.first_id + CODE_NUM and vocab.mask_id == vocab.first_id + CODE_NUM + 2
    string = vocab.motion_string([3, 0, 63])
    assert string == f"<motion_id_{CODE_NUM}><motion_id_3><motion_id_0><motion_id_63><motion_id_{CODE_NUM + 1}>"
    assert vocab.masked_string([1], 2, [4]).count(motion_token(CODE_NUM + 2)) == 2
    ids = [0, 17, vocab.start_id, vocab.first_id + 3, 40, vocab.first_id + 9, vocab.mask_id, vocab.end_id,
           vocab.first_id + 5, 1]
    np.testing.assert_array_equal(vocab.codes_of(ids), [3, 9])          # text and mask inside dropped
    assert vocab.codes_of([0, vocab.first_id + 3, 1]).size == 0           # no start token: nothing
    with pytest.raises(MotionError, match="64"):
        vocab.motion_string([64])
    with pytest.raises(MotionError, match="motion_id_0"):
        MotionVocabulary.from_tokenizer(_without_motion_tokens(), CODE_NUM)


def _without_motion_tokens():
    from tokenizers import Tokenizer, models
    from transformers import PreTrainedTokenizerFast
    tokenizer = Tokenizer(models.WordLevel({"<pad>": 0, "</s>": 1, "<unk>": 2, "walk": 3}, unk_token="<unk>"))
    return PreTrainedTokenizerFast(tokenizer_object=tokenizer, pad_token="<pad>", eos_token="</s>", unk_token="<unk>")


def test_every_generated_motion_token_is_a_valid_code(lm):
    vocab = lm.vocab
    prompts = [T2M_PROMPT.format(caption="a person walks"), "Predict motion: " + vocab.motion_string([1, 2])]
    for seed in range(12):
        for codes in lm.generate_motion(prompts, [1, 1], [30, 30], seeds=[seed, seed + 100]):
            assert 1 <= len(codes) <= 30
            assert codes.dtype == np.int64 and ((codes >= 0) & (codes < CODE_NUM)).all()


def test_raw_output_is_a_well_formed_motion_string(lm):
    import transformers
    from engine.lm import MotionSpanProcessor
    vocab = lm.vocab
    inputs = lm.encode_prompts([T2M_PROMPT.format(caption="a man runs")] * 2)
    processor = MotionSpanProcessor(vocab, [5, 1], [5, 9], [torch.Generator().manual_seed(1), None])
    config = transformers.GenerationConfig(do_sample=False, max_new_tokens=20, decoder_start_token_id=0,
                                           eos_token_id=1, pad_token_id=0)
    output = lm.t5.generate(**inputs, generation_config=config,
                            logits_processor=transformers.LogitsProcessorList([processor])).numpy()
    for row, exact in zip(output, (True, False)):
        row = list(row[1:])                              # after the decoder start token
        end = row.index(vocab.end_id)
        assert row[0] == vocab.start_id and row[end + 1] == 1
        assert all(vocab.first_id <= t < vocab.first_id + CODE_NUM for t in row[1:end])
        assert (end - 1 == 5) if exact else (1 <= end - 1 <= 9)


def test_requested_lengths_are_exact(lm):
    prompts = [T2M_LENGTH_PROMPT.format(frames=4 * n, caption="a person jumps") for n in (1, 7, 49)]
    results = lm.generate_motion(prompts, [1, 7, 49], [1, 7, 49], seeds=[0, 1, 2])
    assert [len(r) for r in results] == [1, 7, 49]


def test_seeds_reproduce_and_batch_equals_single(lm):
    prompts = [T2M_PROMPT.format(caption=c) for c in ("a person walks", "someone jumps high and lands", "run")]
    batch = lm.generate_motion(prompts, [1, 1, 1], [40, 40, 40], seeds=[5, 6, 7])
    again = lm.generate_motion(prompts, [1, 1, 1], [40, 40, 40], seeds=[5, 6, 7])
    singles = [lm.generate_motion([p], [1], [40], seeds=[s])[0] for p, s in zip(prompts, (5, 6, 7))]
    for a, b, c in zip(batch, again, singles):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(a, c)
    different = lm.generate_motion(prompts[:1], [20], [20], seeds=[8])[0]
    assert not np.array_equal(lm.generate_motion(prompts[:1], [20], [20], seeds=[5])[0], different)


def test_forced_prefix_and_suffix_codes(lm):
    codes = lm.generate_motion(["Complete the masked motion: x"], [9], [9], seeds=[0],
                               prefix_codes=[[3, 4]], suffix_codes=[[60, 61, 62]])[0]
    assert len(codes) == 9 and list(codes[:2]) == [3, 4] and list(codes[-3:]) == [60, 61, 62]


def test_captions_contain_no_motion_tokens(lm):
    prompts = ["Generate text: " + lm.vocab.motion_string([1, 2, 3, 4]), "Generate text: " + lm.vocab.motion_string([9])]
    texts = lm.generate_text(prompts, max_new_tokens=12)
    assert len(texts) == 2 and all(isinstance(t, str) for t in texts)
    assert all("motion_id" not in t for t in texts)
    # greedy: batch == single
    assert texts[1] == lm.generate_text(prompts[1:], max_new_tokens=12)[0]


def test_saved_t5_keeps_lm_head_untied(lm, tmp_path):
    save_t5(lm.t5, tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["tie_word_embeddings"] is False
    loaded = load_t5(tmp_path, "cpu", torch.float32)
    assert loaded.lm_head.weight.data_ptr() != loaded.shared.weight.data_ptr()
    assert torch.equal(loaded.lm_head.weight, lm.t5.lm_head.weight)
    assert torch.equal(loaded.shared.weight, lm.t5.shared.weight)
    assert not torch.equal(loaded.lm_head.weight, loaded.shared.weight)
    assert loaded.config.scale_decoder_outputs is False


def test_bad_inputs(lm):
    with pytest.raises(MotionError, match="empty"):
        clean_caption("   ")
    with pytest.raises(MotionError, match="string"):
        clean_caption(42)
    with pytest.raises(MotionError, match="motion tokens"):
        clean_caption("walk <motion_id_3>")
    with pytest.raises(MotionError, match="0..3|1 <= min"):
        lm.generate_motion(["x"], [0], [3])
    with pytest.raises(MotionError, match="vocab_size"):
        build_text_tokenizer(["a"], vocab_size=10)
