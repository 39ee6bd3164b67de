"""engine.convert on a synthetic checkpoint in the exact official layout of motiongpt_s3_h3d.tar
(built by tests/support/official_checkpoint.py, shared with tests/engine/test_official.py).

Every vae.* entry has the name and shape listed in the notes' key TSV (full official size); the
language model is a small T5 with the official key names (gated-gelu, untied lm_head, the three
embedding aliases sharing one tensor) and the official vocabulary of 32100 + 515 rows; metrics.*
and _losses.* entries and a non-tensor Lightning-style object sit beside them and are ignored.
"""
import os
import pickle
import re

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from engine import Motion, MotionError
from engine.checkpoint import load_state_dict
from engine.convert import convert_motiongpt, main, motion_token
from engine.tokenizer import MotionTokenizer

from tests.support.official_checkpoint import (NOTES, HyperParameters, flan_t5_layout_tokenizer,
                                               official_keys, synthetic_state_dict)

CODES = 512


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory, shared_data):
    folder = tmp_path_factory.mktemp("official")
    state = synthetic_state_dict()
    path = folder / "motiongpt_s3_h3d.tar"
    torch.save({"state_dict": state, "epoch": 99, "hyper_parameters": HyperParameters()}, path)
    flan_t5_layout_tokenizer(shared_data).save_pretrained(folder / "flan-t5-tokenizer")
    return path, state, folder / "flan-t5-tokenizer"


@pytest.fixture(scope="module")
def converted(checkpoint, tmp_path_factory, shared_data):
    path, state, text_tokenizer = checkpoint
    out = tmp_path_factory.mktemp("converted")
    summary = convert_motiongpt(path, shared_data / "motiongpt_meta", out, text_tokenizer=text_tokenizer)
    return out, summary


def test_synthetic_layout_is_the_official_one(checkpoint):
    _, state, _ = checkpoint
    official = {key: shape for key, shape, keep in official_keys()}
    ours_vae = {k: tuple(v.shape) for k, v in state.items() if k.startswith("vae.")}
    assert ours_vae == {k: s for k, s in official.items() if k.startswith("vae.")}
    # LM: the official names restricted to our two blocks per stack.
    official_lm = {k for k in official if k.startswith("lm.")
                   and not re.search(r"\.block\.([2-9]|1[0-9])\.", k)}
    assert {k for k in state if k.startswith("lm.")} == official_lm
    assert state["lm.language_model.encoder.embed_tokens.weight"].data_ptr() == \
        state["lm.language_model.shared.weight"].data_ptr()


def test_non_tensor_objects_force_the_restricted_loader_and_are_dropped(checkpoint):
    path, state, _ = checkpoint
    with pytest.raises(pickle.UnpicklingError):
        torch.load(path, weights_only=True)
    loaded = load_state_dict(path)
    assert set(loaded) == set(state)
    assert all(torch.equal(loaded[k], state[k]) for k in state)


def test_every_vae_tensor_lands_where_it_should(checkpoint, converted):
    _, state, _ = checkpoint
    out, summary = converted
    model = MotionTokenizer.from_pretrained(out / "tokenizer", device="cpu")
    ours = model.state_dict()
    vae = {k[len("vae."):]: v for k, v in state.items() if k.startswith("vae.")}
    assert set(ours) == set(vae) and len(vae) == 67
    for key, value in vae.items():
        assert torch.equal(ours[key], value), key
    assert summary["vae_entries"] == 67
    assert summary["ignored_entries"] == sum(1 for k in state if k.startswith(("metrics.", "_losses.")))
    expected_stats = np.load(NOTES.parent / "data" / "motiongpt_meta" / "std.npy")
    np.testing.assert_array_equal(model.normalizer.std, expected_stats.astype(np.float32))


def reference_decoder(raw: dict, tokens: torch.Tensor) -> torch.Tensor:
    """The decoder written out with torch.nn.functional over the raw checkpoint tensors, in the
    order of the notes §2: conv, ReLU, 2 x (3 residual blocks with dilations 9, 3, 1, nearest x2
    upsampling, conv), conv, ReLU, conv. tokens (N,) -> normalised features (4N, 263)."""
    def conv(x, name, **kwargs):
        prefix = f"vae.decoder.model.{name}"
        return F.conv1d(x, raw[prefix + ".weight"], raw[prefix + ".bias"], **kwargs)

    x = raw["vae.quantizer.codebook"][tokens].t()[None]          # (1, 512, N)
    x = F.relu(conv(x, "0", padding=1))
    for stage in (2, 3):
        for block, dilation in enumerate((9, 3, 1)):
            name = f"{stage}.0.model.{block}"
            h = conv(F.relu(x), name + ".conv1", padding=dilation, dilation=dilation)
            x = x + conv(F.relu(h), name + ".conv2")
        x = F.interpolate(x, scale_factor=2, mode="nearest")
        x = conv(x, f"{stage}.2", padding=1)
    x = F.relu(conv(x, "4", padding=1))
    return conv(x, "6", padding=1)[0].t()


def reference_encoder(raw: dict, features: torch.Tensor) -> torch.Tensor:
    """Encoder + nearest-code search over raw tensors. (T, 263) normalised -> (T // 4,) tokens."""
    def conv(x, name, **kwargs):
        prefix = f"vae.encoder.model.{name}"
        return F.conv1d(x, raw[prefix + ".weight"], raw[prefix + ".bias"], **kwargs)

    x = F.relu(conv(features.t()[None], "0", padding=1))
    for stage in (2, 3):
        x = conv(x, f"{stage}.0", stride=2, padding=1)
        for block, dilation in enumerate((9, 3, 1)):
            name = f"{stage}.1.model.{block}"
            h = conv(F.relu(x), name + ".conv1", padding=dilation, dilation=dilation)
            x = x + conv(F.relu(h), name + ".conv2")
    latents = conv(x, "4", padding=1)[0].t()                      # (T / 4, 512)
    return torch.cdist(latents, raw["vae.quantizer.codebook"]).argmin(dim=1)


def test_decoder_follows_the_reference_layer_order(checkpoint, converted):
    _, state, _ = checkpoint
    model = MotionTokenizer.from_pretrained(converted[0] / "tokenizer", device="cpu")
    tokens = torch.tensor([3, 77, 400, 511, 0, 12])
    with torch.no_grad():
        expected = reference_decoder(state, tokens)
    ours = model.decode_normalized(tokens[None])[0]
    assert ours.shape == (24, 263)
    torch.testing.assert_close(ours, expected, rtol=1e-4, atol=1e-4)
    # the numpy API denormalises with MotionGPT's statistics and returns joints at 20 fps
    features = model.decode_features(tokens.numpy())
    np.testing.assert_allclose(features, model.normalizer.denormalize(expected.numpy()), rtol=1e-4, atol=1e-5)
    motion = model.decode(tokens.numpy())
    assert isinstance(motion, Motion) and motion.fps == 20.0 and motion.num_frames == 24


def test_encoder_follows_the_reference_layer_order(checkpoint, converted, shared_data):
    _, state, _ = checkpoint
    model = MotionTokenizer.from_pretrained(converted[0] / "tokenizer", device="cpu")
    features = np.load(shared_data / "humanml3d" / "new_joint_vecs" / "012314.npy")[:168]
    normalised = torch.from_numpy(model.normalizer.normalize(features))
    with torch.no_grad():
        expected = reference_encoder(state, normalised).numpy()
    np.testing.assert_array_equal(model.encode(features), expected)


def test_language_model_loads_with_transformers_and_keeps_lm_head_untied(checkpoint, converted):
    from transformers import T5ForConditionalGeneration
    _, state, _ = checkpoint
    out, _ = converted
    config = __import__("json").loads((out / "lm" / "config.json").read_text())
    assert config["tie_word_embeddings"] is False
    lm = T5ForConditionalGeneration.from_pretrained(out / "lm")
    assert lm.lm_head.weight.data_ptr() != lm.shared.weight.data_ptr()
    assert torch.equal(lm.lm_head.weight, state["lm.language_model.lm_head.weight"])
    assert torch.equal(lm.shared.weight, state["lm.language_model.shared.weight"])
    assert not torch.equal(lm.lm_head.weight, lm.shared.weight)
    assert lm.config.scale_decoder_outputs is False
    for key, value in lm.state_dict().items():
        assert torch.equal(value, state["lm.language_model." + key]), key


def test_text_tokenizer_gets_the_motion_tokens_at_the_official_ids(converted):
    from transformers import AutoTokenizer
    out, summary = converted
    tokenizer = AutoTokenizer.from_pretrained(out / "lm")
    assert len(tokenizer) == 32615
    for k in (0, 1, 27, 28, 511, 512, 513, 514):
        assert tokenizer.convert_tokens_to_ids(motion_token(k)) == 32100 + k
    assert tokenizer.pad_token_id == 0 and tokenizer.eos_token_id == 1
    text = tokenizer.decode([32612, 32103, 32177, 32613, 1, 0], skip_special_tokens=True)
    assert text == "<motion_id_512><motion_id_3><motion_id_77><motion_id_513>"
    assert summary["motion_token_ids"] == [32100, 32614]


def test_a_pickle_that_runs_code_is_refused_and_runs_nothing(tmp_path, shared_data, checkpoint):
    marker = tmp_path / "payload_ran"

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    _, _, text_tokenizer = checkpoint
    evil_zip = tmp_path / "evil.tar"
    torch.save({"state_dict": {"vae.x": torch.zeros(2)}, "hyper_parameters": Payload()}, evil_zip)
    evil_plain = tmp_path / "evil_plain.tar"
    evil_plain.write_bytes(pickle.dumps({"state_dict": Payload()}))
    for path in (evil_zip, evil_plain):
        with pytest.raises(MotionError, match=r"refusing to load.*system"):
            convert_motiongpt(path, shared_data / "motiongpt_meta", tmp_path / "out", text_tokenizer)
    assert not marker.exists()
    assert not (tmp_path / "out").exists()


def test_bad_inputs_name_the_file_at_fault(tmp_path, shared_data, checkpoint, monkeypatch):
    path, _, text_tokenizer = checkpoint
    with pytest.raises(MotionError, match="does not exist"):
        convert_motiongpt(tmp_path / "nope.tar", shared_data / "motiongpt_meta", tmp_path / "o")
    with pytest.raises(MotionError, match="statistics"):
        convert_motiongpt(path, tmp_path, tmp_path / "o", text_tokenizer)
    junk = tmp_path / "junk.tar"
    junk.write_bytes(b"not a checkpoint at all")
    with pytest.raises(MotionError, match="junk.tar"):
        convert_motiongpt(junk, shared_data / "motiongpt_meta", tmp_path / "o", text_tokenizer)
    no_vae = tmp_path / "lm_only.tar"
    torch.save({"state_dict": {"lm.language_model.shared.weight": torch.zeros(3, 2)}}, no_vae)
    with pytest.raises(MotionError, match="lm_only.tar.*no vae"):
        convert_motiongpt(no_vae, shared_data / "motiongpt_meta", tmp_path / "o", text_tokenizer)
    # the hub source with HF_HUB_OFFLINE and an empty cache fails clearly, without network
    import huggingface_hub.constants as hub_constants
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(hub_constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(hub_constants, "HF_HUB_CACHE", str(tmp_path / "hub-cache"))
    with pytest.raises(MotionError, match="OpenMotionLab/MotionGPT-base"):
        convert_motiongpt("hf://OpenMotionLab/MotionGPT-base", shared_data / "motiongpt_meta", tmp_path / "o")


def test_command_line_reports_errors_without_a_traceback(tmp_path, shared_data, capsys):
    code = main([str(tmp_path / "missing.tar"), "--stats", str(shared_data / "motiongpt_meta"),
                 "--out", str(tmp_path / "o")])
    assert code == 1
    assert "missing.tar" in capsys.readouterr().err
