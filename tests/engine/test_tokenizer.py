"""engine.MotionTokenizer: official module layout, encode/decode API, batching, model folders."""
import json
from pathlib import Path

import numpy as np
import pytest
import torch

import engine
from engine import Motion, MotionError, Normalizer
from engine.tokenizer import DEFAULT_FOLDER, MotionTokenizer, TokenizerConfig, codebook_usage

NOTES = Path(__file__).resolve().parents[2].parent / "shared" / "notes"
SMALL = TokenizerConfig(code_num=64, code_dim=32, output_emb_width=32, width=32, depth=2)


@pytest.fixture(scope="module")
def serve(shared_data):
    """HumanML3D clip 012314 (tennis serve): joints and features."""
    joints = np.load(shared_data / "humanml3d" / "new_joints" / "012314.npy")
    features = np.load(shared_data / "humanml3d" / "new_joint_vecs" / "012314.npy")
    return Motion(joints), features


@pytest.fixture(scope="module")
def tokenizer(shared_data, serve):
    """A small tokenizer whose codebook is set from real latents (as training initialises it)."""
    torch.manual_seed(0)
    model = MotionTokenizer(SMALL, Normalizer.load(shared_data / "motiongpt_meta"))
    _, features = serve
    model.train()
    windows = np.stack([features[:128], features[40:168]])               # 2 x 32 = 64 distinct latents
    model(torch.from_numpy(model.normalizer.normalize(windows)))
    return model.eval()


def test_state_dict_has_the_official_vae_keys_and_shapes():
    rows = [line.split("\t") for line in (NOTES / "motiongpt_checkpoint_keys.tsv").read_text().splitlines()[1:]]
    official = {key[len("vae."):]: tuple(int(s) for s in shape.split(","))
                for key, shape, _dtype, _keep in rows if key.startswith("vae.")}
    model = MotionTokenizer(TokenizerConfig())
    ours = {key: tuple(value.shape) for key, value in model.state_dict().items()}
    assert ours == official
    assert sum(p.numel() for p in model.parameters()) == 19_436_807


def test_import_engine_stays_light_and_exposes_the_tokenizer_lazily():
    import subprocess
    import sys
    code = ("import sys, engine; assert 'torch' not in sys.modules; "
            "engine.MotionTokenizer; assert 'torch' in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).resolve().parents[2])
    assert engine.MotionTokenizer is MotionTokenizer


def test_token_counts_follow_the_four_frame_rule(tokenizer):
    generator = np.random.default_rng(0)
    for frames, tokens in ((4, 1), (7, 1), (8, 2), (40, 10), (196, 49), (199, 49)):
        latents = tokenizer.encoder(torch.zeros(1, 263, frames))
        assert latents.shape[-1] == tokens
        features = generator.normal(size=(frames, 263)).astype(np.float32)
        assert tokenizer.encode(features).shape == (tokens,)
    decoded = tokenizer.decode(np.arange(49))
    assert decoded.num_frames == 196 and decoded.fps == 20.0


def test_encode_accepts_a_motion_or_features_and_decode_gives_joints(tokenizer, serve):
    motion, features = serve
    from_features = tokenizer.encode(features)
    assert from_features.dtype == np.int64 and from_features.shape == (170 // 4,)
    assert from_features.min() >= 0 and from_features.max() < 64
    from_motion = tokenizer.encode(motion)           # to_features gives 169 rows -> 42 tokens
    assert from_motion.shape == (42,)
    decoded = tokenizer.decode(from_features)
    assert isinstance(decoded, Motion) and decoded.joints.shape == (168, 22, 3) and decoded.fps == 20.0
    assert np.array_equal(decoded.joints, Motion.from_features(tokenizer.decode_features(from_features)).joints)
    # put the 32 latents of frames 0..127 into the codebook in a shuffled order: the nearest-row
    # search must find each latent's own row
    import copy
    model = copy.deepcopy(tokenizer)
    with torch.no_grad():
        latents = model.encoder(torch.from_numpy(model.normalizer.normalize(features[:128])).T[None])[0].T
        order = torch.randperm(64, generator=torch.Generator().manual_seed(1))[:32]
        model.quantizer.codebook.fill_(1e3)                          # every other row far away
        model.quantizer.codebook[order] = latents
    assert np.array_equal(model.encode(features[:128]), order.numpy())


def test_batched_encode_and_decode_equal_one_by_one(tokenizer, serve):
    _, features = serve
    clips = [features, features[:50], features[13:101], features[:50] * 1.01, features[60:64]]
    batched = tokenizer.encode_batch(clips)
    for clip, tokens in zip(clips, batched):
        assert np.array_equal(tokens, tokenizer.encode(clip))
    decoded = tokenizer.decode_batch(batched)
    for tokens, motion in zip(batched, decoded):
        assert motion.num_frames == 4 * len(tokens)
        np.testing.assert_allclose(motion.joints, tokenizer.decode(tokens).joints, rtol=1e-5, atol=1e-5)


def test_bad_inputs_raise_motion_error(tokenizer, serve):
    _, features = serve
    with pytest.raises(MotionError, match="too short"):
        tokenizer.encode(features[:3])
    with pytest.raises(MotionError, match=r"\(T, 263\)"):
        tokenizer.encode(np.zeros((10, 262)))
    bad = features[:20].copy()
    bad[5, 3] = np.nan
    with pytest.raises(MotionError, match="NaN"):
        tokenizer.encode(bad)
    with pytest.raises(MotionError, match="token 64 at position 1"):
        tokenizer.decode([3, 64])
    with pytest.raises(MotionError, match="token -1"):
        tokenizer.decode(np.array([-1]))
    with pytest.raises(MotionError, match="integers"):
        tokenizer.decode(np.array([0.5, 1.0]))
    with pytest.raises(MotionError, match="1-D"):
        tokenizer.decode(np.zeros((2, 2), dtype=np.int64))
    with pytest.raises(MotionError, match="non-empty"):
        tokenizer.decode([])
    with pytest.raises(MotionError, match="code_dim"):
        TokenizerConfig(code_dim=256, output_emb_width=512)
    with pytest.raises(MotionError, match="width"):
        TokenizerConfig(width=0)


def test_save_and_load_round_trip_float32_and_float16(tokenizer, serve, tmp_path):
    _, features = serve
    tokenizer.save_pretrained(tmp_path / "fp32")
    assert sorted(p.name for p in (tmp_path / "fp32").iterdir()) == \
        ["config.json", "mean.npy", "model.safetensors", "std.npy"]
    loaded = MotionTokenizer.from_pretrained(tmp_path / "fp32", device="cpu")
    assert loaded.config == tokenizer.config
    for key, value in tokenizer.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value)
    assert np.array_equal(loaded.encode(features), tokenizer.encode(features))

    tokenizer.save_pretrained(tmp_path / "fp16", dtype=torch.float16)
    assert (tmp_path / "fp16" / "model.safetensors").stat().st_size < \
        0.6 * (tmp_path / "fp32" / "model.safetensors").stat().st_size
    half = MotionTokenizer.from_pretrained(tmp_path / "fp16", device="cpu")
    assert half.quantizer.codebook.dtype == torch.float32
    torch.testing.assert_close(half.quantizer.codebook, tokenizer.quantizer.codebook, rtol=1e-3, atol=1e-3)


def test_bad_model_folders_name_the_file(tokenizer, tmp_path):
    folder = tokenizer.save_pretrained(tmp_path / "model")
    (folder / "std.npy").rename(tmp_path / "std.npy")
    with pytest.raises(MotionError, match="statistics"):
        MotionTokenizer.from_pretrained(folder)
    (tmp_path / "std.npy").rename(folder / "std.npy")

    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "width": 48}))
    with pytest.raises(MotionError, match=r"model.safetensors.*shape"):
        MotionTokenizer.from_pretrained(folder)
    (folder / "config.json").write_text(json.dumps({**config, "code_num": 65}))
    with pytest.raises(MotionError, match=r"model.safetensors.*quantizer.codebook"):
        MotionTokenizer.from_pretrained(folder)
    (folder / "config.json").write_text(json.dumps({**config, "wdith": 32}))
    with pytest.raises(MotionError, match=r"config.json.*unknown keys \['wdith'\]"):
        MotionTokenizer.from_pretrained(folder)
    (folder / "config.json").write_text("{not json")
    with pytest.raises(MotionError, match="config.json"):
        MotionTokenizer.from_pretrained(folder)
    (folder / "config.json").write_text(json.dumps(config))
    (folder / "model.safetensors").write_bytes(b"garbage")
    with pytest.raises(MotionError, match="model.safetensors"):
        MotionTokenizer.from_pretrained(folder)
    (folder / "model.safetensors").unlink()
    with pytest.raises(MotionError, match="model.safetensors: missing file"):
        MotionTokenizer.from_pretrained(folder)
    with pytest.raises(MotionError, match="does not exist"):
        MotionTokenizer.from_pretrained(tmp_path / "nowhere")


def test_default_model_is_loaded_or_reported_as_not_built():
    if (DEFAULT_FOLDER / "model.safetensors").is_file():
        model = MotionTokenizer.from_pretrained("default", device="cpu")
        assert model.config.frames_per_token == 4
    else:
        with pytest.raises(MotionError, match="not built yet"):
            MotionTokenizer.from_pretrained("default")


def test_training_mode_updates_the_codebook_by_ema(serve):
    _, features = serve
    torch.manual_seed(0)
    model = MotionTokenizer(SMALL)
    model.train()
    batch = torch.from_numpy(((features - features.mean(0)) / (features.std(0) + 1e-3))[:160].astype(np.float32))
    batch = batch.reshape(2, 80, 263)
    _, commitment, tokens = model(batch)
    first = model.quantizer.codebook.clone()
    assert bool(model.quantizer.initialised) and tokens.shape == (2, 20)
    _, _, tokens = model(batch)
    # every code seen moved towards the latents assigned to it; rows never used were reset
    assert not torch.equal(first, model.quantizer.codebook)
    # counts start at 1 per code; each of the two updates keeps 0.99 of them and adds 0.01 x 40 latents
    assert model.quantizer.code_count.sum().item() == pytest.approx((64 * 0.99 + 0.4) * 0.99 + 0.4, rel=1e-5)
    usage = codebook_usage(tokens, 64)
    assert 1 <= usage["used_codes"] <= 40 and 1.0 <= usage["perplexity"] <= 40
    model.eval()
    before = model.quantizer.codebook.clone()
    model(batch)
    assert torch.equal(before, model.quantizer.codebook)      # eval never touches the codebook
