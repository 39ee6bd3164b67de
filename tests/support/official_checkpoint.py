"""A synthetic MotionGPT checkpoint in the exact official layout of ``motiongpt_s3_h3d.tar``.

Every ``vae.*`` entry has the name and full official shape listed in the notes' key TSV; the
language model is a small T5 (d_model 16, two blocks per stack) with the official key names
(gated-gelu, untied lm_head, the three embedding aliases sharing one tensor) and the official
vocabulary of 32100 + 515 rows; ``metrics.*`` / ``_losses.*`` entries and a non-tensor
Lightning-style object sit beside them. Also a fast T5 tokenizer with flan-t5-base's id layout.

    python tests/support/official_checkpoint.py HF_HOME     (torch venv: .venv)

writes both into a Hugging Face cache laid out as huggingface_hub would leave it after
downloading OpenMotionLab/MotionGPT-base and google/flan-t5-base (``HF_HOME/hub/models--*``), so
the real ``hf_hub_download(..., local_files_only=True)`` finds them.
"""
from __future__ import annotations

import json
import sys
from collections import OrderedDict
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

SHARED = REPO.parent / "shared"
NOTES = SHARED / "notes"
CHECKPOINT_REPO = "OpenMotionLab/MotionGPT-base"
CHECKPOINT_NAME = "motiongpt_s3_h3d.tar"
TOKENIZER_REPO = "google/flan-t5-base"
REVISION = "0123456789abcdef0123456789abcdef01234567"   # a made-up commit hash


class HyperParameters:
    """Stands in for the omegaconf / WordVectorizer objects of a Lightning checkpoint."""

    def __init__(self):
        self.lr = 2e-4
        self.name = "stage3"


def official_keys() -> list[tuple[str, tuple[int, ...], str]]:
    """(key, shape, keep) for every entry of the official state_dict (the notes' TSV)."""
    lines = (NOTES / "motiongpt_checkpoint_keys.tsv").read_text().splitlines()
    assert lines[0].split("\t") == ["key", "shape", "dtype", "keep"]
    rows = []
    for line in lines[1:]:
        key, shape, _dtype, keep = line.split("\t")
        rows.append((key, tuple(int(s) for s in shape.split(",")) if shape else (), keep))
    return rows


def flan_t5_layout_tokenizer(shared_data: Path = SHARED / "data"):
    """A T5 fast tokenizer with flan-t5-base's id layout (32100 entries), its pieces trained here."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import T5Tokenizer

    captions = [line.split("\t")[1] for line in
                (shared_data / "cmu" / "descriptions.tsv").read_text().splitlines() if "\t" in line]
    trained = Tokenizer(models.Unigram())
    trained.pre_tokenizer = pre_tokenizers.Metaspace()
    trained.train_from_iterator(captions * 5, trainers.UnigramTrainer(vocab_size=150, unk_token="<unk>",
                                                                      special_tokens=["<unk>"]))
    pieces = [(p, s) for p, s in json.loads(trained.to_str())["model"]["vocab"] if p != "<unk>"]
    filler = [(f"▁filler{i}", -30.0) for i in range(31997 - len(pieces))]
    vocab = ([("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0)] + pieces + filler
             + [(f"<extra_id_{i}>", 0.0) for i in range(99, -1, -1)])
    tokenizer = T5Tokenizer(vocab=vocab, extra_ids=100)
    assert len(tokenizer) == 32100
    return tokenizer


def synthetic_state_dict(seed: int = 0) -> OrderedDict:
    """metrics.*, vae.*, lm.language_model.*, _losses.* in the official order and names."""
    import numpy as np
    import torch
    from transformers import T5Config, T5ForConditionalGeneration

    generator = torch.Generator().manual_seed(seed)
    rows = official_keys()
    state = OrderedDict()
    for key, shape, keep in rows:
        if key.startswith("metrics.") and len(state) < 6 or key.startswith("_losses."):
            state[key] = torch.randn(shape, generator=generator) if shape else torch.tensor(0.5)
    for key, shape, keep in rows:
        if key.startswith("vae."):
            fan_in = int(np.prod(shape[1:])) if len(shape) > 1 else 1
            scale = 1.0 / np.sqrt(fan_in) if key.endswith("weight") else 0.02
            state[key] = torch.randn(shape, generator=generator) * (1.0 if "codebook" in key else scale)

    torch.manual_seed(seed)
    config = T5Config(vocab_size=32615, d_model=16, d_kv=4, d_ff=24, num_layers=2, num_decoder_layers=2,
                      num_heads=4, feed_forward_proj="gated-gelu", tie_word_embeddings=False,
                      decoder_start_token_id=0)
    t5 = T5ForConditionalGeneration(config)
    lm_state = t5.state_dict()
    lm_state["lm_head.weight"] = torch.randn(32615, 16, generator=generator)  # trained separately
    shared = lm_state["shared.weight"]
    for key, value in lm_state.items():
        state["lm." + "language_model." + key] = shared if key.endswith("embed_tokens.weight") else value.clone()
    state["lm.language_model.shared.weight"] = shared
    return state


def save_checkpoint(path: Path, state: OrderedDict | None = None) -> Path:
    """``torch.save`` a Lightning-style dict around ``state`` (the synthetic one by default)."""
    import torch
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"state_dict": synthetic_state_dict() if state is None else state, "epoch": 99,
                "hyper_parameters": HyperParameters()}, path)
    return path


def hub_snapshot(hf_home: Path, repo_id: str) -> Path:
    """The snapshot folder huggingface_hub uses for ``repo_id`` at REVISION (refs/main written)."""
    repo_folder = Path(hf_home) / "hub" / ("models--" + repo_id.replace("/", "--"))
    (repo_folder / "refs").mkdir(parents=True, exist_ok=True)
    (repo_folder / "refs" / "main").write_text(REVISION)
    snapshot = repo_folder / "snapshots" / REVISION
    snapshot.mkdir(parents=True, exist_ok=True)
    return snapshot


def prepare_hub_cache(hf_home: Path, checkpoint: Path | None = None) -> Path:
    """Put the checkpoint (synthetic unless given) and the flan-t5-layout tokenizer into ``hf_home``."""
    import shutil
    hf_home = Path(hf_home)
    target = hub_snapshot(hf_home, CHECKPOINT_REPO) / CHECKPOINT_NAME
    if checkpoint is None:
        save_checkpoint(target)
    else:
        shutil.copyfile(checkpoint, target)
    flan_t5_layout_tokenizer().save_pretrained(hub_snapshot(hf_home, TOKENIZER_REPO))
    return hf_home


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: official_checkpoint.py HF_HOME")
    print(prepare_hub_cache(Path(sys.argv[1])))
