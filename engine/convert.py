"""Import the official MotionGPT checkpoint (``motiongpt_s3_h3d.tar``) as our model folder.

    python -m engine convert-motiongpt CHECKPOINT --stats DIR --out DIR [--text-tokenizer DIR]

CHECKPOINT is a local file or ``hf://OpenMotionLab/MotionGPT-base`` (downloaded with
huggingface_hub, which honours HF_HUB_OFFLINE). The file is read without running code from it
(``engine.checkpoint``). Only ``vae.*`` and ``lm.language_model.*`` are kept:

    OUT/tokenizer/   config.json, model.safetensors, mean.npy, std.npy  (``MotionTokenizer``)
    OUT/lm/          a transformers T5 folder with the text tokenizer + 515 motion tokens:
                     ``T5ForConditionalGeneration.from_pretrained(OUT / "lm")`` works. lm_head is
                     stored separately from the input embedding and stays untied.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import sys
from pathlib import Path

from .errors import MotionError
from .motion import Normalizer

# torch, transformers and the tokenizer are imported inside the functions: the CLI imports this
# module to list its command.

HUB_PREFIX = "hf://"
OFFICIAL_FILENAME = "motiongpt_s3_h3d.tar"
TEXT_TOKENIZER_REPO = "google/flan-t5-base"
TEXT_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "spiece.model")
VAE_PREFIX = "vae."
LM_PREFIX = "lm.language_model."
MOTION_TOKEN_COUNT_EXTRA = 3  # start (code_num), end (code_num + 1), mask (code_num + 2)
EMBEDDING_ALIASES = ("encoder.embed_tokens.weight", "decoder.embed_tokens.weight")


def motion_token(index: int) -> str:
    """The text-tokenizer string of motion token ``index`` (codes, then start / end / mask)."""
    return f"<motion_id_{index}>"


# ----------------------------------------------------------------------------- sources

def resolve_checkpoint(source: str | Path) -> Path:
    """A local path, or ``hf://owner/repo[/file]`` downloaded into the huggingface_hub cache."""
    text = str(source)
    if not text.startswith(HUB_PREFIX):
        path = Path(text)
        if not path.is_file():
            raise MotionError(f"{path}: checkpoint file does not exist")
        return path
    parts = text[len(HUB_PREFIX):].strip("/").split("/")
    if len(parts) < 2:
        raise MotionError(f"{text}: expected hf://owner/repo or hf://owner/repo/file")
    repo_id, filename = "/".join(parts[:2]), "/".join(parts[2:]) or OFFICIAL_FILENAME
    from huggingface_hub import hf_hub_download
    try:
        return Path(hf_hub_download(repo_id=repo_id, filename=filename))
    except Exception as error:  # offline mode, missing repo, network: all end here
        offline = " (HF_HUB_OFFLINE is set and the file is not cached)" if os.environ.get("HF_HUB_OFFLINE") else ""
        raise MotionError(f"{text}: cannot download {filename} from {repo_id}{offline}: "
                          f"{type(error).__name__}: {error}") from None


def load_text_tokenizer(folder: str | Path | None):
    """A T5 tokenizer from ``folder``; without one, google/flan-t5-base's files from the hub."""
    from transformers import AutoTokenizer
    if folder is None:
        from huggingface_hub import hf_hub_download
        try:
            paths = [hf_hub_download(TEXT_TOKENIZER_REPO, name) for name in TEXT_TOKENIZER_FILES]
        except Exception as error:
            raise MotionError(f"cannot get the text tokenizer {TEXT_TOKENIZER_REPO} from the hub "
                              f"({type(error).__name__}: {error}); pass --text-tokenizer DIR with a local "
                              "flan-t5 tokenizer") from None
        folder = Path(paths[0]).parent
    folder = Path(folder)
    if not folder.is_dir():
        raise MotionError(f"{folder}: text tokenizer folder does not exist")
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(folder), legacy=True)
    except Exception as error:
        raise MotionError(f"{folder}: cannot load a text tokenizer: {type(error).__name__}: {error}") from None
    if not getattr(tokenizer, "is_fast", False):
        raise MotionError(f"{folder}: need a fast (tokenizers-backed) T5 tokenizer; the slow one puts spaces "
                          "between motion tokens when decoding")
    layout = {"pad": (tokenizer.pad_token_id, 0), "</s>": (tokenizer.eos_token_id, 1),
              "<unk>": (tokenizer.unk_token_id, 2)}
    for name, (actual, wanted) in layout.items():
        if actual != wanted:
            raise MotionError(f"{folder}: {name} has id {actual}, a T5 tokenizer has it at {wanted}")
    return tokenizer


# ----------------------------------------------------------------------------- the VQ-VAE

def tokenizer_config_from_weights(state: dict[str, "torch.Tensor"], dilation_growth_rate: int = 3,
                                  source: str = "checkpoint") -> "TokenizerConfig":
    """Read the VQ-VAE sizes off its tensors (the dilation rate is not visible in the weights)."""
    from .tokenizer import TokenizerConfig
    try:
        codebook = state["quantizer.codebook"]
        first = state["encoder.model.0.weight"]
    except KeyError as error:
        raise MotionError(f"{source}: no vae.{error.args[0]} entry; not a MotionGPT VQ-VAE") from None
    down_t = len({int(m.group(1)) for key in state
                  if (m := re.fullmatch(r"encoder\.model\.(\d+)\.0\.weight", key))})
    depth = len({int(m.group(1)) for key in state
                 if (m := re.fullmatch(r"encoder\.model\.2\.1\.model\.(\d+)\.conv1\.weight", key))})
    return TokenizerConfig(code_num=int(codebook.shape[0]), code_dim=int(codebook.shape[1]),
                           output_emb_width=int(codebook.shape[1]), width=int(first.shape[0]),
                           depth=depth, down_t=down_t, dilation_growth_rate=dilation_growth_rate,
                           nfeats=int(first.shape[1]))


# ----------------------------------------------------------------------------- the language model

def t5_config_from_weights(state: dict[str, torch.Tensor], source: str = "checkpoint"):
    """A transformers T5Config matching the tensors (flan-t5 conventions for what is not visible)."""
    from transformers import T5Config
    try:
        vocab_size, d_model = state["shared.weight"].shape
        bias = state["encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight"]
        query = state["encoder.block.0.layer.0.SelfAttention.q.weight"]
    except KeyError as error:
        raise MotionError(f"{source}: no {LM_PREFIX}{error.args[0]} entry; not a T5 language model") from None
    gated = "encoder.block.0.layer.1.DenseReluDense.wi_0.weight" in state
    d_ff = state["encoder.block.0.layer.1.DenseReluDense." + ("wi_0" if gated else "wi") + ".weight"].shape[0]
    num_buckets, num_heads = bias.shape

    def count_blocks(stack: str) -> int:
        return len({int(m.group(1)) for key in state if (m := re.match(rf"{stack}\.block\.(\d+)\.", key))})

    return T5Config(
        vocab_size=int(vocab_size), d_model=int(d_model), d_kv=int(query.shape[0]) // int(num_heads),
        d_ff=int(d_ff), num_layers=count_blocks("encoder"), num_decoder_layers=count_blocks("decoder"),
        num_heads=int(num_heads), relative_attention_num_buckets=int(num_buckets),
        relative_attention_max_distance=128, dropout_rate=0.1, layer_norm_epsilon=1e-6,
        feed_forward_proj="gated-gelu" if gated else "relu", tie_word_embeddings=False,
        decoder_start_token_id=0, pad_token_id=0, eos_token_id=1,
        architectures=["T5ForConditionalGeneration"])


def write_language_model(state: dict[str, torch.Tensor], text_tokenizer, code_num: int, out: Path,
                         source: str = "checkpoint") -> dict:
    """Write a transformers T5 folder with an untied lm_head and the motion-token text tokenizer.

    transformers 5 always ties T5's lm_head to the input embedding when it saves a model it built,
    so the safetensors file is written here directly, with both ``shared.weight`` and
    ``lm_head.weight``; ``from_pretrained`` then sees two different tensors and keeps them apart.
    """
    import torch
    from safetensors.torch import save_file
    from transformers import T5ForConditionalGeneration

    config = t5_config_from_weights(state, source)
    with torch.device("meta"):
        reference = T5ForConditionalGeneration(config).state_dict()
    expected = {key: tuple(value.shape) for key, value in reference.items()}
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        raise MotionError(f"{source}: {LM_PREFIX}* does not match a T5 of the inferred size: missing "
                          f"{missing[:5]}, unexpected {unexpected[:5]}")
    for key, shape in expected.items():
        if tuple(state[key].shape) != shape:
            raise MotionError(f"{source}: {LM_PREFIX}{key} has shape {tuple(state[key].shape)}, expected {shape}")
    for alias in EMBEDDING_ALIASES:
        if not torch.equal(state[alias], state["shared.weight"]):
            raise MotionError(f"{source}: {LM_PREFIX}{alias} differs from shared.weight; expected aliases")

    base_size = len(text_tokenizer)
    added = text_tokenizer.add_tokens([motion_token(k) for k in range(code_num + MOTION_TOKEN_COUNT_EXTRA)])
    for k in (0, code_num - 1, code_num, code_num + 2):
        token_id = text_tokenizer.convert_tokens_to_ids(motion_token(k))
        if token_id != base_size + k:
            raise MotionError(f"text tokenizer: {motion_token(k)} got id {token_id}, expected {base_size + k} "
                              "(the tokenizer already contains motion tokens or has gaps)")
    if added != code_num + MOTION_TOKEN_COUNT_EXTRA or len(text_tokenizer) != config.vocab_size:
        raise MotionError(f"text tokenizer has {base_size} entries + {added} motion tokens = "
                          f"{len(text_tokenizer)}, but the language model has {config.vocab_size} embedding rows "
                          f"({source}); use the tokenizer the model was trained with (flan-t5-base: 32100)")

    out.mkdir(parents=True, exist_ok=True)
    tensors = {key: state[key].detach().to(torch.float32).contiguous().clone()
               for key in expected if key not in EMBEDDING_ALIASES}
    if tensors["lm_head.weight"].data_ptr() == tensors["shared.weight"].data_ptr():
        raise AssertionError("lm_head must be stored separately")  # cannot happen after clone()
    save_file(tensors, str(out / "model.safetensors"), metadata={"format": "pt"})
    values = config.to_dict()
    values["tie_word_embeddings"] = False      # transformers 5 writes True for every T5
    values["scale_decoder_outputs"] = False   # untied T5 (v1.1 / flan) does not rescale before lm_head
    (out / "config.json").write_text(json.dumps(values, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    text_tokenizer.save_pretrained(str(out))
    return {"vocab_size": config.vocab_size, "text_tokens": base_size,
            "motion_token_ids": [base_size, base_size + code_num + MOTION_TOKEN_COUNT_EXTRA - 1]}


# ----------------------------------------------------------------------------- the whole import

def convert_motiongpt(checkpoint: str | Path, stats_dir: str | Path, out_dir: str | Path,
                      text_tokenizer: str | Path | None = None) -> dict:
    """Convert MotionGPT's checkpoint into ``out_dir/tokenizer`` and ``out_dir/lm``.

    ``stats_dir`` holds the mean.npy / std.npy the VQ-VAE was trained with (MotionGPT's
    assets/meta). ``text_tokenizer`` is a folder with flan-t5-base's tokenizer (downloaded from
    the hub when None). Returns a summary dict (paths, entry counts).
    """
    from .checkpoint import load_state_dict
    from .tokenizer import MotionTokenizer

    path = resolve_checkpoint(checkpoint)
    normalizer = Normalizer.load(stats_dir)
    state = load_state_dict(path)
    vae = {key[len(VAE_PREFIX):]: value for key, value in state.items() if key.startswith(VAE_PREFIX)}
    lm = {key[len(LM_PREFIX):]: value for key, value in state.items() if key.startswith(LM_PREFIX)}
    if not vae:
        raise MotionError(f"{path}: no {VAE_PREFIX}* entries; not a MotionGPT checkpoint")
    if not lm:
        raise MotionError(f"{path}: no {LM_PREFIX}* entries; not a MotionGPT checkpoint")
    out = Path(out_dir)

    config = tokenizer_config_from_weights(vae, source=str(path))
    model = MotionTokenizer(config, normalizer)
    model.load_weights(vae, source=f"{path} ({VAE_PREFIX}*)")
    model.save_pretrained(out / "tokenizer")

    tokenizer = load_text_tokenizer(text_tokenizer)
    lm_summary = write_language_model(lm, tokenizer, config.code_num, out / "lm", source=str(path))

    from .model import MotionGPTConfig  # the top-level config.json that MotionGPT.from_pretrained reads
    MotionGPTConfig(name="MotionGPT (official, converted)").save(out)

    summary = {"checkpoint": str(path), "sha256": _sha256(path), "tokenizer": str(out / "tokenizer"),
               "lm": str(out / "lm"), "vae_entries": len(vae), "lm_entries": len(lm),
               "ignored_entries": len(state) - len(vae) - len(lm), **lm_summary}
    (out / "MODEL_CARD.md").write_text(
        "# MotionGPT (official weights, converted)\n\n"
        "Converted with `python -m engine convert-motiongpt` from the MotionGPT stage-3 HumanML3D checkpoint\n"
        "(OpenMotionLab/MotionGPT-base, MIT licence; T5 backbone google/flan-t5-base, Apache-2.0).\n\n"
        f"- source file: `{path.name}`, sha256 `{summary['sha256']}`\n"
        f"- tokenizer/: VQ-VAE, {config.code_num} codes, {config.frames_per_token} frames per token, 20 fps\n"
        f"- lm/: T5ForConditionalGeneration, vocabulary {lm_summary['vocab_size']} "
        f"(motion tokens <motion_id_k> = {lm_summary['text_tokens']} + k)\n", encoding="utf-8")
    return summary


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("checkpoint", help=f"path to {OFFICIAL_FILENAME} or hf://OpenMotionLab/MotionGPT-base")
    parser.add_argument("--stats", required=True, help="folder with MotionGPT's mean.npy / std.npy")
    parser.add_argument("--out", required=True, help="output model folder (tokenizer/ and lm/ inside)")
    parser.add_argument("--text-tokenizer", default=None,
                        help=f"folder with a T5 tokenizer (default: download {TEXT_TOKENIZER_REPO})")


def run(args: argparse.Namespace) -> int:
    """Run the conversion for parsed arguments; prints the summary as JSON."""
    summary = convert_motiongpt(args.checkpoint, args.stats, args.out, args.text_tokenizer)
    print(json.dumps(summary, indent=2))
    return 0


def register_commands(register) -> None:
    """Add ``convert-motiongpt`` to ``python -m engine``."""
    register("convert-motiongpt", run, add_arguments,
             help="import the official MotionGPT checkpoint (motiongpt_s3_h3d.tar) as a model folder")


def main(argv: list[str] | None = None) -> int:
    """CLI: ``convert-motiongpt CHECKPOINT --stats DIR --out DIR [--text-tokenizer DIR]``; exit 1 on bad input."""
    parser = argparse.ArgumentParser(prog="python -m engine.convert",
                                     description="Import the official MotionGPT checkpoint.")
    add_arguments(parser)
    try:
        return run(parser.parse_args(argv))
    except MotionError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
