"""The language model's pretrained text side: prompt captions read by all-MiniLM-L6-v2.

Design (README, "Architecture"): the T5 of the language model stays exactly MotionGPT's, so
converted official weights and ours share one code path. When a language-model folder holds
``text_side.json`` + ``text_side.safetensors``, the *caption* of every prompt (the user's words) is
read by the frozen pretrained encoder instead of the T5's own embeddings: its token states
(L, 384) go through a small trained adapter (an MLP to the T5 width) and are given to the T5
encoder as ``inputs_embeds``, followed by the T5's own embeddings of the rest of the prompt (the
task instruction, lengths, motion tokens, ``</s>``). Without those files (official weights) the
whole prompt is T5 tokens as before.

The caption is marked inside the prompt string (``mark_caption``) so prompts stay plain strings
everywhere; ``split_prompt`` takes it out again.

Training adds a text-motion contrastive (InfoNCE) loss: the mean adapter state of a caption
(``text_embedding``) and the mean T5 encoder state of a motion string (``motion_embedding``),
each through a linear head to ``embed_dim`` and normalised, so that paraphrases land near the
same motions; the same embeddings give text-to-motion retrieval.
"""
from __future__ import annotations

import json
import re
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Sequence

import torch
from torch import nn

from ..configs import (MAX_WIDTH, check_parameter_count, check_values, integer, list_of, object_of, read_config,
                      text)
from ..errors import MotionError
from .encoder import HIDDEN_SIZE, PACKAGE_PIN, WEIGHTS_SHA256, PretrainedTextEncoder

CONFIG_NAME = "text_side.json"
WEIGHTS_NAME = "text_side.safetensors"
CAPTION_START, CAPTION_END = "\x02", "\x03"     # never typed, never tokenized: removed by split_prompt
_MARKED = re.compile("\x02(.*?)\x03", re.S)


def mark_caption(caption: str) -> str:
    """The caption wrapped in the markers ``split_prompt`` looks for."""
    return f"{CAPTION_START}{caption}{CAPTION_END}"


def split_prompt(prompt: str) -> tuple[str, str | None]:
    """(the prompt without its marked caption, the caption or None)."""
    found = _MARKED.search(prompt)
    if not found:
        return prompt, None
    rest = prompt[: found.start()] + prompt[found.end():]
    return " ".join(rest.split()), found.group(1)


@dataclass
class TextSideConfig:
    d_model: int = 256                     # the T5's width
    hidden: int = 512                      # adapter MLP hidden width
    embed_dim: int = 256                   # contrastive embedding size
    encoder: str = "sentence-transformers/all-MiniLM-L6-v2"
    package: str = PACKAGE_PIN
    weights_sha256: str = WEIGHTS_SHA256
    # engine.text.lexicon: unknown words of a caption rewritten into action words before the encoder
    # reads it ("a guy saunters" -> "a guy walks"); empty action_words: captions read as typed.
    known_words: list[str] = field(default_factory=list)     # every word of the training captions
    action_words: list[str] = field(default_factory=list)
    # engine.text.reading: a caption still holding unknown words is read as the nearest of these labels
    # (label -> captions, the first one read), with a style adverb when a style word is named;
    # empty readings: such captions are read as typed. Style words are the lexicon's targets too.
    readings: dict[str, list[str]] = field(default_factory=dict)
    styles: dict[str, list[str]] = field(default_factory=dict)      # adverb -> words that name it

    def __post_init__(self) -> None:
        check_values(asdict(self), TEXT_SIDE_RULES, "text side config")

    @classmethod
    def from_dict(cls, values: dict, source: str = "text side config") -> "TextSideConfig":
        """Build from text_side.json's values; unknown keys, wrong types and sizes out of bounds are
        a MotionError naming ``source``, the key and the value."""
        check_values(values, TEXT_SIDE_RULES, source)
        return cls(**values)

    def weight_shapes(self, source: str = "text side config") -> dict[str, tuple[int, ...]]:
        """key -> shape of the weights a text side of this config has (text_side.safetensors)."""
        shapes = {"adapter.0.weight": (self.hidden, HIDDEN_SIZE), "adapter.0.bias": (self.hidden,),
                  "adapter.2.weight": (self.d_model, self.hidden), "adapter.2.bias": (self.d_model,),
                  "text_head.weight": (self.embed_dim, self.d_model), "text_head.bias": (self.embed_dim,),
                  "motion_head.weight": (self.embed_dim, self.d_model), "motion_head.bias": (self.embed_dim,),
                  "log_scale": ()}
        check_parameter_count(shapes, source,
                              f"d_model {self.d_model}, hidden {self.hidden}, embed_dim {self.embed_dim}")
        return shapes


# Bounds of text_side.json (the bundled model: d_model 256, hidden 512, embed_dim 256, 785 known words).
WORD = text(200)
TEXT_SIDE_RULES = {
    "d_model": integer(1, MAX_WIDTH), "hidden": integer(1, 65536), "embed_dim": integer(1, MAX_WIDTH),
    "encoder": text(), "package": text(), "weights_sha256": text(),
    "known_words": list_of(WORD), "action_words": list_of(WORD),
    "readings": object_of(list_of(text(), non_empty=True)), "styles": object_of(list_of(WORD, non_empty=True)),
}


class TextSide(nn.Module):
    """Adapter (384 -> d_model MLP) + contrastive heads; the frozen encoder is held, not owned
    (it is not a submodule: its weights are neither trained nor saved with ours)."""

    def __init__(self, config: TextSideConfig, encoder: PretrainedTextEncoder | None = None):
        super().__init__()
        self.config = config
        self.adapter = nn.Sequential(nn.Linear(HIDDEN_SIZE, config.hidden), nn.GELU(),
                                     nn.Linear(config.hidden, config.d_model))
        self.text_head = nn.Linear(config.d_model, config.embed_dim)
        self.motion_head = nn.Linear(config.d_model, config.embed_dim)
        self.log_scale = nn.Parameter(torch.tensor(2.659))        # 1 / 0.07, CLIP's start
        self.__dict__["encoder"] = encoder or PretrainedTextEncoder.load()
        self.__dict__["cache"] = {}       # caption -> (L, 384) states; set ``use_cache`` for training
        self.__dict__["request"] = None   # caption -> states within one request (``remembering``)
        self.__dict__["lexicon"] = None   # engine.text.lexicon.Lexicon, built on first use
        self.__dict__["reader"] = None    # engine.text.reading.Reader, built for the first caption it must read
        self.use_cache = False

    def normalise(self, caption: str) -> str:
        """The caption as the encoder reads it: unknown words rewritten into action words
        (``engine.text.lexicon``) when the config names action words; then, when the config has
        readings and unknown words remain, the nearest label's caption (``engine.text.reading``)."""
        return self.normalise_many([caption])[0]

    def normalise_many(self, captions: Sequence[str]) -> list[str]:
        """``normalise`` for each caption, the readings done as one batch."""
        captions = list(captions)
        if self.config.action_words:
            captions = [self._lexicon().normalise(caption) for caption in captions]
        if self.config.readings:
            if self.reader is None:
                from .lexicon import unknown_words
                known = frozenset(word.lower() for word in self.config.known_words)
                if not any(unknown_words(caption, known) for caption in captions):
                    return captions     # nothing to read: the reading encoder is not loaded yet
            captions = self._reader().read_many(captions)
        return captions

    def readings_of(self, captions: Sequence[str]) -> list:
        """An ``engine.text.reading.Reading`` of each caption: as read (``normalise``), the words that
        carry its action and whether the model knows that action (its ``notice`` when not). Without
        readings in the config nothing is judged (score None). A caption that is one of the label
        captions after the lexicon is known without loading the reading encoder."""
        from .reading import Reader, Reading, action_views
        captions = list(captions)
        read = self.normalise_many(captions)
        lexicon = self._lexicon()
        lexed = [lexicon.normalise(c) for c in captions] if self.config.action_words else captions
        if not self.config.readings:
            return [Reading(c, r, action_views(c, lexicon.verb_places)[0]) for c, r in zip(captions, read)]
        labelled = {p.lower(): p for captions_of in self.config.readings.values() for p in Reader.prototypes(captions_of)}
        if all(after.strip().rstrip(".").lower() in labelled for after in lexed):
            return [Reading(c, r, action_views(c, lexicon.verb_places)[0], 1.0, after)
                    for c, r, after in zip(captions, read, lexed)]
        return self._reader().action_readings(captions, lexed, read, lexicon.verb_places)

    def _lexicon(self):
        """The lexicon (built on first use; with no action words it only finds verbs)."""
        if self.lexicon is None:
            from .lexicon import Lexicon
            self.__dict__["lexicon"] = Lexicon(self.config.known_words, self.config.action_words,
                                               style_words=sum(self.config.styles.values(), []))
        return self.lexicon

    def _reader(self):
        """The reader of the config's readings (built on first use: loads all-mpnet-base-v2)."""
        if self.reader is None:
            from .reading import Reader
            self.__dict__["reader"] = Reader(self.config.known_words, self.config.readings, self.config.styles,
                                             PretrainedTextEncoder.load(self.encoder.device, reading=True))
        return self.reader

    # -- the caption states
    def caption_states(self, captions: Sequence[str]) -> list[torch.Tensor]:
        """One (L_i, 384) float32 tensor of encoder states per caption (cached when use_cache, or
        within a ``remembering`` block), read after ``normalise``."""
        captions = self.normalise_many(captions)
        known = self.cache if self.use_cache else (self.request if self.request is not None else {})
        found: dict[str, torch.Tensor] = {c: known[c] for c in dict.fromkeys(captions) if c in known}
        missing = [c for c in dict.fromkeys(captions) if c not in known]
        for first in range(0, len(missing), 64):
            chunk = missing[first: first + 64]
            states, mask = self.encoder.encode(chunk, warn=not self.use_cache)
            for caption, row, keep in zip(chunk, states, mask):
                found[caption] = row[keep].cpu()
        known.update(found)
        device = self.adapter[0].weight.device
        return [found[c].to(device) for c in captions]

    @contextmanager
    def remembering(self):
        """Within the block, each caption's encoder states are computed once: a text-to-motion
        request encodes its captions for the T5, then again to pick among its samples
        (``closest_motions``). Only within one request, so that a caption's states (and so a
        seeded motion) never depend on what an earlier request batched it with."""
        outer = self.request
        if outer is None:
            self.__dict__["request"] = {}
        try:
            yield
        finally:
            if outer is None:
                self.__dict__["request"] = None

    def project(self, captions: Sequence[str]) -> list[torch.Tensor]:
        """The adapter's (L_i, d_model) states of each caption: what the T5 encoder reads."""
        states = self.caption_states(captions)
        lengths = [len(s) for s in states]
        projected = self.adapter(torch.cat(states).to(self.adapter[0].weight.dtype))
        return list(projected.split(lengths))

    # -- encoder inputs
    def encoder_inputs(self, t5, text_tokenizer, prompts: Sequence[str], max_tokens: int) -> dict:
        """``inputs_embeds`` (B, L, d_model) and ``attention_mask`` (B, L), right-padded: per
        prompt, the adapter states of its caption (if any) then the T5 embeddings of the rest."""
        rests, captions = zip(*(split_prompt(p) for p in prompts))
        ids = text_tokenizer(list(rests), padding=True, truncation=True, max_length=max_tokens, return_tensors="pt")
        device = t5.device
        token_embeds = t5.get_input_embeddings()(ids["input_ids"].to(device))
        with_caption = [i for i, c in enumerate(captions) if c is not None]
        projected = dict(zip(with_caption, self.project([captions[i] for i in with_caption]))) if with_caption else {}
        rows = []
        for i in range(len(prompts)):
            own = token_embeds[i, : int(ids["attention_mask"][i].sum())]
            rows.append(torch.cat([projected[i].to(own.dtype), own]) if i in projected else own)
        length = max(len(r) for r in rows)
        embeds = token_embeds.new_zeros(len(rows), length, token_embeds.shape[-1])
        mask = torch.zeros(len(rows), length, dtype=torch.long, device=device)
        for i, row in enumerate(rows):
            embeds[i, : len(row)] = row
            mask[i, : len(row)] = 1
        return {"inputs_embeds": embeds, "attention_mask": mask}

    # -- contrastive embeddings
    def text_embedding(self, captions: Sequence[str]) -> torch.Tensor:
        """(B, embed_dim) unit vectors of captions."""
        pooled = torch.stack([states.mean(0) for states in self.project(captions)])
        return nn.functional.normalize(self.text_head(pooled), dim=-1)

    def motion_embedding(self, t5, motion_ids: torch.Tensor, mask: torch.Tensor, encode=None) -> torch.Tensor:
        """(B, embed_dim) unit vectors of motion strings: ids (B, N) and mask (B, N) of
        ``<start> codes <end> </s>`` as the text tokenizer writes them. ``encode``: a function of
        {input_ids, attention_mask} giving the T5 encoder's (B, N, d_model) states with the same
        ops (``engine.decoding.T5Decoder.encode``, without transformers' per-call overhead);
        default the T5's own encoder."""
        if encode is not None:
            hidden = encode({"input_ids": motion_ids, "attention_mask": mask})
        else:
            hidden = t5.get_encoder()(input_ids=motion_ids, attention_mask=mask).last_hidden_state
        weights = mask.unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * weights).sum(1) / weights.sum(1).clamp_min(1.0)
        return nn.functional.normalize(self.motion_head(pooled), dim=-1)

    def contrastive_loss(self, text: torch.Tensor, motion: torch.Tensor, same: torch.Tensor) -> torch.Tensor:
        """Symmetric InfoNCE of matching rows; ``same`` (B, B) bool marks other pairs that share
        a caption (not negatives: masked out)."""
        logits = self.log_scale.exp().clamp(max=100) * text @ motion.t()
        eye = torch.eye(len(text), dtype=torch.bool, device=text.device)
        logits = logits.masked_fill(same & ~eye, float("-inf"))
        target = torch.arange(len(text), device=text.device)
        return 0.5 * (nn.functional.cross_entropy(logits, target) + nn.functional.cross_entropy(logits.t(), target))

    # -- files
    def save_pretrained(self, folder: str | Path, dtype=None) -> None:
        from safetensors.torch import save_file
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        dtype = dtype or torch.float32
        state = {k: v.detach().to("cpu", dtype).contiguous() for k, v in self.state_dict().items()}
        save_file(state, str(folder / WEIGHTS_NAME), metadata={"format": "pt"})
        (folder / CONFIG_NAME).write_text(json.dumps(asdict(self.config), indent=2) + "\n", encoding="utf-8")

    @classmethod
    def from_pretrained(cls, folder: str | Path, device=None, dtype=None) -> "TextSide | None":
        """The text side of a language-model folder, or None when it has none (official weights)."""
        from ..checkpoint import check_finite, check_layout, load_safetensors, tensor_layout

        folder = Path(folder)
        config_path, weights_path = folder / CONFIG_NAME, folder / WEIGHTS_NAME
        config = read_text_side_config(folder)
        if config is None:
            return None
        if not weights_path.is_file():
            raise MotionError(f"{weights_path}: missing file (a text side needs {CONFIG_NAME} and {WEIGHTS_NAME})")
        if config.weights_sha256 != WEIGHTS_SHA256:
            raise MotionError(f"{config_path}: trained on text-encoder weights {config.weights_sha256[:12]}..., "
                              f"this engine has {WEIGHTS_SHA256[:12]}... ({PACKAGE_PIN})")
        state = load_safetensors(weights_path)
        check_layout(tensor_layout(state), config.weight_shapes(str(config_path)),
                     f"{weights_path}: does not match {config_path}")
        check_finite(state, str(weights_path))
        from ..tokenizer import resolve_device
        device = resolve_device(device)
        side = cls(config, PretrainedTextEncoder.load(device))
        side.load_state_dict({k: v.float() for k, v in state.items()})
        return side.to(device, dtype or torch.float32).eval()


def read_text_side_config(folder: str | Path) -> TextSideConfig | None:
    """The checked config of a language-model folder's text side, or None when it has none (no
    text_side.json and no text_side.safetensors); MotionError naming the file otherwise."""
    folder = Path(folder)
    config_path, weights_path = folder / CONFIG_NAME, folder / WEIGHTS_NAME
    if not config_path.exists() and not weights_path.exists():
        return None
    if not config_path.exists():
        raise MotionError(f"{config_path}: missing file (a text side needs {CONFIG_NAME} and {WEIGHTS_NAME})")
    return TextSideConfig.from_dict(read_config(config_path), str(config_path))
