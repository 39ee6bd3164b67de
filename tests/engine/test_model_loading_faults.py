"""Model folders, devices and motions that are broken on purpose (issue 21): every crafted config,
weight file, device name and degenerate motion ends in one engine.MotionError naming the file, the
key and the value, quickly, never in another exception, a hang or a huge allocation.

Real folders and real loading, no mocks: the tiny model of tests/conftest.py (``tiny_model``:
tokenizer/ + lm/ + config.json, written by the engine's own code) is copied to tmp_path and its
config files are edited with json, its weights with the safetensors library; a copy with a text
side (lm/text_side.json + text_side.safetensors) covers that file too. The bundled model
(assets/models/default) and evaluator (assets/evaluator) must still load. Size checks happen
before any module is built, so each refusal of a crafted size takes milliseconds (bound: 2 s).
"""
from __future__ import annotations

import json
import math
import random
import shutil
import time
from dataclasses import asdict, fields
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from engine import Motion, MotionError
from engine.configs import MAX_PARAMETERS, json_depth, read_config, show
from engine.eval import DEFAULT_EVALUATOR, TextMotionEvaluator
from engine.lm import check_t5_config, t5_weight_shapes
from engine.model import DEFAULT_MODEL, MotionGPT, MotionGPTConfig, check_model_folder
from engine.motion import check_skeleton
from engine.text.side import TextSideConfig
from engine.tokenizer import MotionTokenizer, TokenizerConfig, available_devices, resolve_device

FAST = 2.0          # seconds: a refusal before anything is built
LOAD = 30.0         # seconds: a fuzzed folder that is accepted and loaded (the tiny model: < 1 s)


# ----------------------------------------------------------------------------- helpers

def copy_of(folder: Path, tmp_path: Path, name: str) -> Path:
    target = tmp_path / name
    shutil.copytree(folder, target)
    return target


def set_values(path: Path, **changes) -> None:
    """Rewrite a config file with ``changes`` (NaN / Infinity written as JSON's non-standard literals)."""
    values = json.loads(path.read_text())
    values.update(changes)
    path.write_text(json.dumps(values))


def edit_weights(path: Path, change) -> None:
    tensors = load_file(str(path))
    change(tensors)
    save_file(tensors, str(path))


def refused(load, *parts: str, seconds: float = FAST) -> str:
    """Run ``load()``; it must raise MotionError within ``seconds`` whose message holds each of
    ``parts``. Returns the message."""
    started = time.perf_counter()
    with pytest.raises(MotionError) as caught:
        load()
    elapsed = time.perf_counter() - started
    message = str(caught.value)
    for part in parts:
        assert part in message, f"{part!r} not in {message!r}"
    assert elapsed < seconds, f"took {elapsed:.2f} s: {message}"
    return message


def load_folder(folder: Path):
    return lambda: MotionGPT.from_pretrained(folder, device="cpu")


@pytest.fixture(scope="module")
def serve(shared_data) -> np.ndarray:
    """Real mocap: HumanML3D 012314 (a tennis serve), (170, 22, 3) joints at 20 fps."""
    return np.load(shared_data / "humanml3d" / "new_joints" / "012314.npy").astype(np.float32)


@pytest.fixture(scope="module")
def warm(tiny_model):
    """The tiny model loaded once, so that imports (transformers' T5) are not timed in the cases."""
    return MotionGPT.from_pretrained(tiny_model, device="cpu")


@pytest.fixture(scope="module")
def with_text_side(tiny_model, tmp_path_factory, warm):
    """The tiny model with a text side: text_side.json (TextSideConfig for its d_model) and random
    text_side.safetensors of the shapes that config needs."""
    folder = tmp_path_factory.mktemp("text_side") / "tiny"
    shutil.copytree(tiny_model, folder)
    config = TextSideConfig(d_model=warm.lm.t5.config.d_model, hidden=16, embed_dim=8)
    generator = torch.Generator().manual_seed(0)
    save_file({key: torch.randn(shape, generator=generator) * 0.1 for key, shape in config.weight_shapes().items()},
              str(folder / "lm" / "text_side.safetensors"))
    (folder / "lm" / "text_side.json").write_text(json.dumps(asdict(config)))
    return folder


# ----------------------------------------------------------------------------- models that must load

def test_the_bundled_and_the_tiny_model_still_load(tiny_model, with_text_side, serve):
    bundled = MotionGPT.from_pretrained("default", device="cpu")
    assert bundled.lm.text_side is not None and bundled.config.text_to_motion_samples == 4
    assert check_model_folder(DEFAULT_MODEL) == bundled.config
    tiny = MotionGPT.from_pretrained(tiny_model, device="cpu")
    assert tiny.describe(serve[:40]) == tiny.describe(Motion(serve[:40], 20.0))
    side = MotionGPT.from_pretrained(with_text_side, device="cpu")
    assert side.lm.text_side is not None
    real = {key: tuple(value.shape) for key, value in bundled.lm.text_side.state_dict().items()}
    assert real == bundled.lm.text_side.config.weight_shapes()          # the shapes the loader checks
    assert TextMotionEvaluator.from_pretrained(device="cpu").config.width == 256


def test_official_model_sizes_pass_the_bounds():
    """MotionGPT's official model: flan-t5-base (as on the hub) with 32100 + 515 rows, the T5-base
    shape (d_ff 3072, relu) too, and the official VQ-VAE (TokenizerConfig's defaults)."""
    flan_t5_base = {
        "architectures": ["T5ForConditionalGeneration"], "d_ff": 2048, "d_kv": 64, "d_model": 768,
        "decoder_start_token_id": 0, "dense_act_fn": "gelu_new", "dropout_rate": 0.1, "eos_token_id": 1,
        "feed_forward_proj": "gated-gelu", "initializer_factor": 1.0, "is_encoder_decoder": True,
        "is_gated_act": True, "layer_norm_epsilon": 1e-06, "model_type": "t5", "n_positions": 512,
        "num_decoder_layers": 12, "num_heads": 12, "num_layers": 12, "output_past": True, "pad_token_id": 0,
        "relative_attention_max_distance": 128, "relative_attention_num_buckets": 32,
        "task_specific_params": {"summarization": {"early_stopping": True, "length_penalty": 2.0, "max_length": 200,
                                                   "min_length": 30, "no_repeat_ngram_size": 3, "num_beams": 4,
                                                   "prefix": "summarize: "}},
        "tie_word_embeddings": False, "torch_dtype": "float32", "transformers_version": "4.23.1",
        "use_cache": True, "vocab_size": 32100 + 515,
    }
    shapes = t5_weight_shapes(check_t5_config(dict(flan_t5_base), "flan-t5-base"), "flan-t5-base")
    flan_count = sum(math.prod(s) for s in shapes.values())
    assert 240e6 < flan_count < 260e6 and flan_count < MAX_PARAMETERS / 8
    t5_base = {**flan_t5_base, "d_ff": 3072, "feed_forward_proj": "relu", "dense_act_fn": "relu", "is_gated_act": False}
    t5_count = sum(math.prod(s) for s in t5_weight_shapes(check_t5_config(t5_base, "t5-base"), "t5-base").values())
    assert 240e6 < t5_count < 260e6
    official_vq = TokenizerConfig()
    assert (official_vq.code_num, official_vq.width, official_vq.depth) == (512, 512, 3)
    assert official_vq.frames_per_token == 4
    vq_count = sum(math.prod(s) for s in MotionTokenizer.weight_shapes(official_vq).values())
    assert 10e6 < vq_count < 30e6
    assert MotionGPTConfig(name="MotionGPT (official, converted)").top_k == 50


def test_a_converted_official_layout_folder_passes_the_checks(tmp_path, shared_data, warm):
    """engine.convert on the synthetic official-layout checkpoint of test_convert (full-size VQ-VAE,
    flan-t5 vocabulary of 32100 + 515 rows, a small T5): its folder passes every check and loads."""
    from engine.convert import convert_motiongpt
    from tests.engine.test_convert import flan_t5_layout_tokenizer, synthetic_state_dict
    torch.save({"state_dict": synthetic_state_dict()}, tmp_path / "motiongpt_s3_h3d.tar")
    flan_t5_layout_tokenizer(shared_data).save_pretrained(tmp_path / "flan-t5-tokenizer")
    out = tmp_path / "converted"
    convert_motiongpt(tmp_path / "motiongpt_s3_h3d.tar", shared_data / "motiongpt_meta", out,
                      text_tokenizer=tmp_path / "flan-t5-tokenizer")
    assert check_model_folder(out).name == "MotionGPT (official, converted)"
    model = MotionGPT.from_pretrained(out, device="cpu")
    assert model.tokenizer.config == TokenizerConfig() and model.lm.t5.config.vocab_size == 32615


# ----------------------------------------------------------------------------- crafted sizes

SIZES = [  # (file, key, value): each out of bounds, a wrong type, or too big together
    ("tokenizer/config.json", "depth", 100000),
    ("tokenizer/config.json", "width", 1e7),
    ("tokenizer/config.json", "width", 10_000_000),
    ("tokenizer/config.json", "code_num", 1 << 20),
    ("tokenizer/config.json", "down_t", 40),
    ("tokenizer/config.json", "dilation_growth_rate", 10 ** 9),
    ("tokenizer/config.json", "nfeats", -263),
    ("lm/config.json", "num_layers", 1000000),
    ("lm/config.json", "num_decoder_layers", 49),
    ("lm/config.json", "d_model", 100_000),
    ("lm/config.json", "d_ff", 2 ** 40),
    ("lm/config.json", "vocab_size", 10 ** 9),
    ("lm/config.json", "num_heads", 0),
    ("lm/config.json", "d_kv", 64.0),
    ("lm/config.json", "relative_attention_num_buckets", 10 ** 6),
    ("config.json", "max_motion_tokens", 10 ** 9),
    ("config.json", "max_prompt_tokens", 10 ** 6),
    ("config.json", "text_to_motion_samples", 1000),
]


@pytest.mark.parametrize("part, key, value", SIZES)
def test_crafted_sizes_are_refused_before_anything_is_built(tiny_model, tmp_path, warm, part, key, value):
    folder = copy_of(tiny_model, tmp_path, "model")
    set_values(folder / part, **{key: value})
    refused(load_folder(folder), f"{folder / part}: {key} ", f"got {value!r}")


def test_sizes_within_bounds_that_make_a_huge_model_are_refused(tiny_model, tmp_path, warm):
    folder = copy_of(tiny_model, tmp_path, "huge_t5")
    set_values(folder / "lm" / "config.json", vocab_size=1_000_000, d_model=8192, d_kv=64, num_heads=128,
               d_ff=65536, num_layers=48, num_decoder_layers=48)
    refused(load_folder(folder), f"{folder / 'lm' / 'config.json'}: vocab_size 1000000, d_model 8192",
            "billion parameters, more than the limit of 2 billion")
    folder = copy_of(tiny_model, tmp_path, "huge_vq")
    set_values(folder / "tokenizer" / "config.json", code_num=65536, code_dim=8192, output_emb_width=8192,
               width=8192, depth=12, dilation_growth_rate=2)
    refused(load_folder(folder), f"{folder / 'tokenizer' / 'config.json'}: code_num 65536", "billion parameters")
    folder = copy_of(tiny_model, tmp_path, "dilation")
    set_values(folder / "tokenizer" / "config.json", depth=48, dilation_growth_rate=3)
    refused(load_folder(folder), "dilation_growth_rate 3 and depth 48 give a dilation of", "limit of 4096")
    folder = copy_of(tiny_model, tmp_path, "buckets")
    set_values(folder / "lm" / "config.json", relative_attention_max_distance=16)
    refused(load_folder(folder), "relative_attention_max_distance 16 must be above half of "
                                 "relative_attention_num_buckets 32")


def test_a_crafted_text_side_size_is_refused(with_text_side, tmp_path):
    folder = copy_of(with_text_side, tmp_path, "side")
    config = folder / "lm" / "text_side.json"
    for key, value in (("hidden", 10 ** 8), ("d_model", "32"), ("embed_dim", 0), ("known_words", "walk"),
                       ("readings", {"walk": []}), ("styles", [["x"]]), ("unknown_key", 1)):
        original = config.read_text()
        set_values(config, **{key: value})
        refused(load_folder(folder), str(config), key)
        config.write_text(original)
    set_values(config, d_model=64)
    refused(load_folder(folder), "text_side.safetensors: does not match", "text_side.json: adapter.2.", "has shape")
    wider = TextSideConfig(**{**json.loads(config.read_text()), "d_model": 64})
    save_file({key: torch.zeros(shape) for key, shape in wider.weight_shapes().items()},
              str(folder / "lm" / "text_side.safetensors"))
    refused(load_folder(folder), "the text side feeds d_model 64 (text_side.json), the T5 has d_model 32")


# ----------------------------------------------------------------------------- every setting of config.json

def wrong_values(name: str, default, annotation: str = "") -> list:
    """Values of the wrong type or out of range for a MotionGPTConfig field with this default
    (and type annotation: an optional number, default None, takes null but no other wrong value)."""
    if default is None and "float" in str(annotation):
        return [value for value in wrong_values(name, 1.0) if value is not None]
    if isinstance(default, bool):
        return ["yes", 1, None, [], {"a": 1}]
    if isinstance(default, int):
        return ["4", 4.5, True, None, -1, 0, 10 ** 12, float("nan"), [4]]
    if isinstance(default, float):
        return ["hot", True, None, 0, -1, float("nan"), float("inf"), -float("inf"), 1e12, 10 ** 400, [1.0], {}]
    return [5, None, True, [default], {"value": default}, "x" * 5000] + ([] if name == "name" else ["other"])


def test_every_setting_of_config_json_is_typed_and_in_range(tiny_model, tmp_path, warm):
    folder = copy_of(tiny_model, tmp_path, "settings")
    path = folder / "config.json"
    original = path.read_text()
    tried = 0
    for field in fields(MotionGPTConfig):
        for value in wrong_values(field.name, field.default, field.type):
            path.write_text(original)
            set_values(path, **{field.name: value})
            refused(load_folder(folder), str(path), field.name, show(value))
            tried += 1
    assert tried >= 100


def test_sampling_arguments_are_checked_where_generation_starts(warm):
    for top_k, temperature, key in ((0, 1.0, "top_k"), (50, float("nan"), "temperature"), (50, "hot", "temperature"),
                                    (10 ** 12, 1.0, "top_k"), (50, 0.0, "temperature"), (50, 11, "temperature")):
        refused(lambda: warm.lm.generate_motion(["Generate motion: a person walks"], [2], [4], [0], top_k, temperature),
                f"generate_motion: {key} must be")


# ----------------------------------------------------------------------------- files that are not configs

NOT_CONFIGS = [  # (name, bytes, part of the message)
    ("nested arrays", b"[" * 100_000, "nested deeper than the limit of 16 levels"),
    ("nested objects", b'{"a":' * 500 + b"1" + b"}" * 500, "nested deeper than the limit of 16 levels"),
    ("nested below the recursion limit", b"[" * 20 + b"]" * 20, "nested deeper than the limit"),
    ("a list", b"[1, 2, 3]", "expected a JSON object {...}, got a list"),
    ("a string", b'"config"', "expected a JSON object {...}, got a string"),
    ("null", b"null", "got a null"),
    ("latin-1", '{"name": "café"}'.encode("latin-1"), "not UTF-8 text (byte 13"),
    ("utf-16", '{"name": "x"}'.encode("utf-16"), "not UTF-8 text"),
    ("truncated", b'{"top_k": 5', "cannot read JSON"),
    ("empty", b"", "cannot read JSON"),
    ("repeated key", b'{"top_k": 5, "top_k": 6}', "the key 'top_k' appears twice"),
    ("a number of 5000 digits", b'{"top_k": ' + b"7" * 5000 + b"}", "cannot read JSON"),
    ("huge", b'{"name": "' + b"x" * (17 << 20) + b'"}', "larger than the limit of 16 MB"),
]


@pytest.mark.parametrize("part", ["config.json", "tokenizer/config.json", "lm/config.json", "lm/tokenizer_config.json"])
def test_files_that_are_not_configs_are_named(tiny_model, tmp_path, warm, part):
    folder = copy_of(tiny_model, tmp_path, "model")
    path = folder / part
    for name, content, expected in NOT_CONFIGS:
        path.write_bytes(content)
        refused(load_folder(folder), f"{path}: ", expected)
    path.unlink()
    path.mkdir()
    refused(load_folder(folder), f"{path}", "folder")


def test_read_config_and_json_depth():
    assert json_depth(1) == 0 and json_depth([]) == 1 and json_depth({"a": [[1]]}) == 3
    assert read_config(DEFAULT_MODEL / "config.json")["model_type"] == "motiongpt"
    assert json_depth(read_config(DEFAULT_MODEL / "lm" / "text_side.json")) == 3


# ----------------------------------------------------------------------------- weights

WEIGHT_FAULTS = [  # (name, change of the tensors, parts of the message)
    ("NaN", lambda t, key: t[key].view(-1).__setitem__(0, float("nan")), ["NaN or infinite"]),
    ("infinity", lambda t, key: t[key].fill_(float("inf")), ["NaN or infinite"]),
    ("int32", lambda t, key: t.__setitem__(key, t[key].to(torch.int32)), ["holds int32 values"]),
    ("float64", lambda t, key: t.__setitem__(key, t[key].double()), ["holds float64 values"]),
    ("shape", lambda t, key: t.__setitem__(key, torch.zeros(3, 5)), ["has shape (3, 5)"]),
    ("missing", lambda t, key: t.pop(key), ["missing ["]),
    ("unexpected", lambda t, key: t.__setitem__(key + ".extra", torch.zeros(2)), ["unexpected ["]),
]


@pytest.mark.parametrize("part, key", [("lm/model.safetensors", "lm_head.weight"),
                                       ("lm/model.safetensors", "decoder.block.0.layer.1.EncDecAttention.k.weight"),
                                       ("tokenizer/model.safetensors", "quantizer.codebook"),
                                       ("tokenizer/model.safetensors", "decoder.model.0.bias")])
def test_damaged_weights_are_named_with_the_file_and_the_tensor(tiny_model, tmp_path, warm, part, key):
    for name, change, parts in WEIGHT_FAULTS:
        folder = copy_of(tiny_model, tmp_path, name)
        edit_weights(folder / part, lambda tensors: change(tensors, key))
        refused(load_folder(folder), f"{folder / part}: ", key, *parts)


def test_float16_and_bfloat16_weights_still_load(tiny_model, tmp_path, warm):
    for dtype in (torch.float16, torch.bfloat16):
        folder = copy_of(tiny_model, tmp_path, str(dtype))
        for part in ("lm/model.safetensors", "tokenizer/model.safetensors"):
            edit_weights(folder / part, lambda t: t.update({k: v.to(dtype) for k, v in t.items()}))
        assert MotionGPT.from_pretrained(folder, device="cpu").lm.t5.dtype == torch.float32


# ----------------------------------------------------------------------------- devices

def test_devices_are_checked_against_this_machine(tiny_model, warm):
    assert resolve_device("cpu") == torch.device("cpu") and "cpu" in available_devices()
    bad = ["meta", "nonsense", "", "cuda:99", "xla", "cpu,cuda"]
    if not torch.cuda.is_available():
        bad += ["cuda", "cuda:0"]
    if not torch.backends.mps.is_available():
        bad.append("mps")
    for device in bad:
        message = refused(lambda: MotionGPT.from_pretrained(tiny_model, device=device), f"device {device!r}",
                          "this machine has: cpu")
        assert ", ".join(available_devices()) in message
    for device in (3, 1.5, ["cpu"]):
        refused(lambda: resolve_device(device), "device must be a name such as 'cpu' or 'cuda'")
    if torch.cuda.is_available():
        assert resolve_device(f"cuda:{torch.cuda.device_count() - 1}").type == "cuda"
        refused(lambda: resolve_device(f"cuda:{torch.cuda.device_count()}"), "is not available on this machine")
    refused(lambda: TextMotionEvaluator.from_pretrained(device="meta"), "device 'meta'")


# ----------------------------------------------------------------------------- motions

def test_degenerate_motions_are_refused_by_every_task(warm, serve):
    clip = serve
    point = np.zeros((30, 22, 3), dtype=np.float32)
    scaled_away = clip[:30] * 0.0 + np.array([1.0, 2.0, 3.0], dtype=np.float32)    # object scale 0, moved
    collapsed_frame = clip[:30].copy()
    collapsed_frame[12] = collapsed_frame[12, :1]                                   # one frame at scale 0
    shared_bone = clip[:30].copy()
    shared_bone[:, 13] = shared_bone[:, 9]                                          # left_collar on spine3
    cases = [(point, "all joints at one point (within 0 mm of each other at frame 0; a rig at scale 0?)"),
             (scaled_away, "all joints at one point"),
             (collapsed_frame, "at frame 12"),
             (shared_bone, "the bone spine3 -> left_collar has zero length at frame 0")]
    for joints, expected in cases:
        refused(lambda: warm.describe(joints), "motion: the motion's skeleton is degenerate", expected)
        refused(lambda: warm.describe(Motion(joints, 30.0)), "the motion's skeleton is degenerate")
        refused(lambda: warm.predict(joints, seconds=1, seed=0), "motion: the motion's skeleton is degenerate")
        refused(lambda: warm.inbetween(clip[:20], joints, 8, seed=0), "after: the motion's skeleton is degenerate")
        refused(lambda: warm.inbetween(joints, clip[40:], 8, seed=0), "before: the motion's skeleton is degenerate")
    refused(lambda: warm.describe(point[:1]), "degenerate")                       # one frame is enough to tell
    refused(lambda: warm.tokenizer.encode(Motion(point)), "motion 0: its features are not finite")
    for joints, expected in ((np.full((5, 22, 3), "a"), "joints must be numbers, got an array of <U1"),
                             (np.zeros((5, 22, 3), dtype=object), "joints must be numbers, got an array of object"),
                             (np.zeros((0, 22, 3)), "motion has zero frames"),
                             (np.zeros((5, 22)), "(T, 22, 3) joints, got an array of shape (5, 22)")):
        refused(lambda: warm.describe(joints), expected)
    check_skeleton(clip, "real")                 # real mocap passes
    assert isinstance(warm.describe(clip[:2]), str)


# ----------------------------------------------------------------------------- the evaluator

def test_evaluator_inputs_of_the_wrong_shape_are_named(warm, serve):
    evaluator = TextMotionEvaluator.from_pretrained(device="cpu")
    clip = serve
    features = Motion(clip).to_features()
    cases = [
        (lambda: evaluator.embed_features([features[:, :262]]),
         ["features 0 must have shape (T, 263), got (169, 262)"]),
        (lambda: evaluator.embed_features([features[0]]), ["(T, 263), got (263,)"]),
        (lambda: evaluator.embed_features([]), ["non-empty list of (T, 263) feature arrays"]),
        (lambda: evaluator.embed_features(features), ["got shape (169, 263)"]),
        (lambda: evaluator.embed_motions([clip[:, :21]]), ["motion 0: expected", "(T, 22, 3)", "(170, 21, 3)"]),
        (lambda: evaluator.embed_motions([clip[:1]]), ["at least 2 frames"]),
        (lambda: evaluator.embed_motions([np.zeros((10, 22, 3))]), ["motion 0: the motion's skeleton is degenerate"]),
        (lambda: evaluator.embed_motions(clip), ["got shape (170, 22, 3)"]),
        (lambda: evaluator.encode_motion(torch.zeros(2, 40, 262), torch.tensor([40, 40])),
         ["(B >= 1, T >= 4, 263), got shape (2, 40, 262)"]),
        (lambda: evaluator.encode_motion(torch.zeros(2, 3, 263), torch.tensor([3, 3])), ["got shape (2, 3, 263)"]),
        (lambda: evaluator.encode_motion(torch.zeros(2, 40, 263), torch.tensor([40.0, 40.0])),
         ["lengths must be an integer tensor of shape (2,)"]),
        (lambda: evaluator.encode_text(torch.zeros(2, 383)), ["shape (B >= 1, 384), got shape (2, 383)"]),
        (lambda: evaluator.embed_texts("a person walks"), ["non-empty list of captions, got a str"]),
    ]
    for call, parts in cases:
        refused(call, *parts)
    assert evaluator.embed_features([features]).shape == (1, 256)


def test_a_broken_evaluator_folder_is_named(tmp_path, warm):
    cases = [("width", 10 ** 6), ("feature_dim", 262), ("text_dim", "384"), ("temperature", float("nan")),
             ("max_frames", 0), ("colour", "red")]
    for key, value in cases:
        folder = copy_of(DEFAULT_EVALUATOR, tmp_path, f"evaluator_{key}")
        set_values(folder / "config.json", **{key: value})
        refused(lambda: TextMotionEvaluator.from_pretrained(folder), f"{folder / 'config.json'}: ", key)
    for name, change, parts in WEIGHT_FAULTS:
        folder = copy_of(DEFAULT_EVALUATOR, tmp_path, f"weights_{name}")
        edit_weights(folder / "model.safetensors", lambda tensors: change(tensors, "text_head.0.weight"))
        refused(lambda: TextMotionEvaluator.from_pretrained(folder), "model.safetensors: ", "text_head.0.weight",
                *parts)


# ----------------------------------------------------------------------------- a seeded fuzz

def fuzz_values(rng: random.Random) -> list:
    """Wrong types, huge, negative, NaN and nested values."""
    nested = []
    for _ in range(rng.randint(2, 30)):
        nested = [nested]
    return ["hot", True, False, None, -1, 0, 1, 2.5, 10 ** 12, -10 ** 12, 10 ** 400, 1e308, float("nan"),
            float("inf"), -float("inf"), [], {}, [1, 2], {"a": {"b": 1}}, nested, "x" * rng.randint(1001, 20000), "",
            rng.randint(-10 ** 6, 10 ** 6), rng.uniform(-1e6, 1e6)]


def test_seeded_fuzz_of_every_config_gives_a_model_or_one_motion_error(with_text_side, tmp_path, warm):
    """~120 mutations: a key of one of the five config files set to a wrong / huge / negative / NaN /
    nested value. Each ends in a loaded model or a MotionError naming the file, within LOAD seconds
    (a refusal before anything is built within FAST); never another exception."""
    rng = random.Random(21)
    files = ["config.json", "tokenizer/config.json", "lm/config.json", "lm/text_side.json", "evaluator/config.json"]
    outcomes = {"refused": 0, "loaded": 0}
    for case in range(120):
        part = files[case % len(files)]
        if part.startswith("evaluator"):
            folder = copy_of(DEFAULT_EVALUATOR, tmp_path, f"case{case}")
            path = folder / "config.json"
            load = lambda: TextMotionEvaluator.from_pretrained(folder)  # noqa: E731
        else:
            folder = copy_of(with_text_side, tmp_path, f"case{case}")
            path = folder / part
            load = load_folder(folder)
        key = rng.choice(sorted(json.loads(path.read_text())))
        value = rng.choice(fuzz_values(rng))
        set_values(path, **{key: value})
        started = time.perf_counter()
        try:
            load()
            outcomes["loaded"] += 1
        except MotionError as error:
            outcomes["refused"] += 1
            assert str(folder) in str(error) and time.perf_counter() - started < FAST, (part, key, value, error)
        except Exception as error:  # noqa: BLE001 - the point of the test
            pytest.fail(f"{part} {key}={value!r:.80}: {type(error).__name__}: {error}")
        assert time.perf_counter() - started < LOAD, (part, key, value)
    print(f"fuzz outcomes: {outcomes}")
    assert outcomes["refused"] >= 90, outcomes
