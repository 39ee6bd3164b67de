"""The language model: a T5 whose vocabulary holds text pieces and motion tokens.

MotionGPT (notes §3, §4) adds ``code_num + 3`` ordinary tokens ``<motion_id_k>`` to a T5 text
tokenizer: k < code_num is VQ code k, then start (code_num), end (code_num + 1) and mask
(code_num + 2). A motion is written as ``<motion_id_{start}><motion_id_{c0}>...<motion_id_{end}>``
without separators. ``MotionVocabulary`` finds these ids BY NAME in the tokenizer (32100 + k for
the official flan-t5 vocabulary, base + k for ours) and generated motion is parsed by token id.

Generation runs through ``transformers`` ``generate`` (KV cache, batching, end-of-sequence
stopping) in greedy mode with a ``LogitsProcessor`` that decides each next token:
- ``MotionSpanProcessor`` writes a motion string: the start token first, then only codes
  0..code_num-1 (or the end token once ``min_codes`` codes exist, forced at ``max_codes``), then
  ``</s>``. Fixed codes (``prefix_codes``, ``suffix_codes``) are forced where they belong, for
  in-between. With sampling, the codes are drawn from the top-k (50) softmax with one
  ``torch.Generator`` per row, so a row's result depends only on its own prompt and seed: seeds
  reproduce and a batch equals the rows run one by one.
- ``TextOnlyProcessor`` bans motion tokens, ``<pad>`` and other special tokens (captions).
"""
from __future__ import annotations

import json
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from .errors import MotionError
from .text_tokenizer import MOTION_EXTRA_TOKENS, motion_token

WEIGHTS_NAME = "model.safetensors"
EMBEDDING_ALIASES = ("encoder.embed_tokens.weight", "decoder.embed_tokens.weight")
MOTION_TOKEN_PATTERN = re.compile(r"<motion_id_\d+>")

# Prompt templates (notes §4) and our steered in-between (official weights ignore the words).
T2M_PROMPT = "Generate motion: {caption}"
T2M_LENGTH_PROMPT = "Generate motion with {frames} frames: {caption}"
M2T_PROMPT = "Generate text: {motion}"
PREDICT_PROMPT = "Predict motion: {motion}"
INBETWEEN_PROMPT = "Complete the masked motion: {motion}"
STEERED_INBETWEEN_PROMPT = "Complete the masked motion in which {caption}: {motion}"


# ----------------------------------------------------------------------------- vocabulary

@dataclass(frozen=True)
class MotionVocabulary:
    """Where the motion tokens sit in the text tokenizer's ids (found by name)."""

    code_num: int          # VQ codes (512)
    first_id: int          # id of <motion_id_0>
    vocab_size: int        # len(text tokenizer), motion tokens included
    pad_id: int = 0
    eos_id: int = 1

    @property
    def start_id(self) -> int:
        return self.first_id + self.code_num

    @property
    def end_id(self) -> int:
        return self.first_id + self.code_num + 1

    @property
    def mask_id(self) -> int:
        return self.first_id + self.code_num + 2

    @classmethod
    def from_tokenizer(cls, tokenizer, code_num: int, source: str = "text tokenizer") -> "MotionVocabulary":
        """Look up ``<motion_id_0>`` .. ``<motion_id_{code_num+2}>``; they must be contiguous."""
        first = tokenizer.convert_tokens_to_ids(motion_token(0))
        unk = tokenizer.unk_token_id
        if first is None or first == unk:
            raise MotionError(f"{source}: has no {motion_token(0)} token; not a MotionGPT text tokenizer")
        last = code_num + MOTION_EXTRA_TOKENS - 1
        if tokenizer.convert_tokens_to_ids(motion_token(last)) in (None, unk):
            raise MotionError(f"{source}: has no {motion_token(last)} token: its motion tokens are for fewer "
                              f"codes than the VQ-VAE's code_num {code_num}; the VQ-VAE and the language model "
                              "do not belong together")
        for k in range(code_num + MOTION_EXTRA_TOKENS):
            token_id = tokenizer.convert_tokens_to_ids(motion_token(k))
            if token_id != first + k:
                raise MotionError(f"{source}: {motion_token(k)} has id {token_id}, expected {first + k} "
                                  f"(motion tokens must be contiguous, code_num {code_num})")
        if tokenizer.convert_tokens_to_ids(motion_token(code_num + MOTION_EXTRA_TOKENS)) not in (None, unk):
            raise MotionError(f"{source}: has more motion tokens than code_num {code_num} + 3; the VQ-VAE "
                              "and the language model do not belong together")
        if tokenizer.pad_token_id != 0 or tokenizer.eos_token_id != 1:
            raise MotionError(f"{source}: pad/eos ids are {tokenizer.pad_token_id}/{tokenizer.eos_token_id}, "
                              "a T5 tokenizer has 0/1")
        return cls(code_num=code_num, first_id=first, vocab_size=len(tokenizer))

    def motion_string(self, codes: Sequence[int]) -> str:
        """Codes -> ``<motion_id_{start}><motion_id_c>...<motion_id_{end}>``."""
        return motion_token(self.code_num) + "".join(motion_token(int(c)) for c in self.check_codes(codes)) \
            + motion_token(self.code_num + 1)

    def masked_string(self, before: Sequence[int], masked: int, after: Sequence[int]) -> str:
        """``before`` codes, ``masked`` mask tokens, ``after`` codes, in start/end tokens."""
        return (motion_token(self.code_num) + "".join(motion_token(int(c)) for c in self.check_codes(before))
                + motion_token(self.code_num + 2) * masked
                + "".join(motion_token(int(c)) for c in self.check_codes(after)) + motion_token(self.code_num + 1))

    def check_codes(self, codes: Sequence[int]) -> np.ndarray:
        array = np.asarray(codes)
        if array.ndim != 1 or (array.size and array.dtype.kind not in "iu"):
            raise MotionError(f"motion codes must be a 1-D integer sequence, got shape {array.shape} "
                              f"dtype {array.dtype}")
        bad = (array < 0) | (array >= self.code_num)
        if bad.any():
            raise MotionError(f"motion code {int(array[np.argmax(bad)])} is outside [0, {self.code_num - 1}]")
        return array.astype(np.int64)

    def codes_of(self, ids: Sequence[int]) -> np.ndarray:
        """Generated token ids -> the codes between the first start and the first end token after it,
        by id (anything that is not a code inside the span is dropped; no span -> empty)."""
        ids = np.asarray(ids, dtype=np.int64).reshape(-1)
        starts = np.flatnonzero(ids == self.start_id)
        if starts.size == 0:
            return np.zeros(0, dtype=np.int64)
        span = ids[starts[0] + 1:]
        ends = np.flatnonzero(span == self.end_id)
        span = span[: ends[0]] if ends.size else span
        codes = span[(span >= self.first_id) & (span < self.first_id + self.code_num)] - self.first_id
        return codes.astype(np.int64)


def clean_caption(caption: str, name: str = "text") -> str:
    """A caption as it goes into a prompt: a non-empty single line without motion tokens."""
    if not isinstance(caption, str):
        raise MotionError(f"{name} must be a string, got {type(caption).__name__}")
    text = " ".join(caption.split())
    if not text:
        raise MotionError(f"{name} is empty: describe the motion in words, e.g. 'a person walks forward'")
    if MOTION_TOKEN_PATTERN.search(text):
        raise MotionError(f"{name} {text!r} contains motion tokens (<motion_id_..>)")
    return text


# ----------------------------------------------------------------------------- logits processors

class MotionSpanProcessor:
    """Chooses each next token of ``<start> codes... <end> </s>`` (see the module docstring).

    Per row: ``min_codes`` / ``max_codes`` bound the number of codes (equal = exact length),
    ``prefix_codes`` / ``suffix_codes`` are forced at the beginning / end of the code span (they
    count toward the bounds), ``generator`` (None = greedy) drives top-k sampling.
    """

    def __init__(self, vocab: MotionVocabulary, min_codes: Sequence[int], max_codes: Sequence[int],
                 generators: Sequence | None = None, top_k: int = 50, temperature: float = 1.0,
                 prefix_codes: Sequence[Sequence[int]] | None = None,
                 suffix_codes: Sequence[Sequence[int]] | None = None):
        self.vocab = vocab
        self.min_codes, self.max_codes = list(min_codes), list(max_codes)
        rows = len(self.min_codes)
        self.generators = list(generators) if generators is not None else [None] * rows
        self.top_k, self.temperature = top_k, temperature
        self.prefix = [list(p) for p in prefix_codes] if prefix_codes is not None else [[]] * rows
        self.suffix = [list(s) for s in suffix_codes] if suffix_codes is not None else [[]] * rows

    def __call__(self, input_ids, scores):
        import torch
        ids = input_ids.cpu().numpy()
        scores = scores.float()
        out = torch.full_like(scores, float("-inf"))
        for row in range(ids.shape[0]):
            out[row, self._next_token(row, ids[row], scores[row])] = 0.0
        return out

    def _next_token(self, row: int, ids: np.ndarray, scores) -> int:
        vocab = self.vocab
        generated = ids[1:]                               # ids[0] is the decoder start token
        if generated.size == 0:
            return vocab.start_id
        if (generated == vocab.end_id).any() or (generated == vocab.eos_id).any():
            return vocab.eos_id
        count = int(generated.size) - 1                   # codes written after the start token
        prefix, suffix = self.prefix[row], self.suffix[row]
        if count < len(prefix):
            return vocab.first_id + prefix[count]
        total = self.max_codes[row]
        if suffix and count >= total - len(suffix):
            if count >= total:
                return vocab.end_id
            return vocab.first_id + suffix[count - (total - len(suffix))]
        if count >= self.max_codes[row]:
            return vocab.end_id
        end_allowed = count >= self.min_codes[row]
        code_scores = scores[vocab.first_id: vocab.first_id + vocab.code_num]
        choices = code_scores
        if end_allowed:
            choices = _cat(code_scores, scores[vocab.end_id: vocab.end_id + 1])
        index = self._choose(row, choices)
        return vocab.end_id if index == vocab.code_num else vocab.first_id + index

    def _choose(self, row: int, scores) -> int:
        import torch
        generator = self.generators[row]
        if generator is None:
            return int(torch.argmax(scores))
        logits = scores / self.temperature
        k = min(self.top_k, logits.numel()) if self.top_k else logits.numel()
        top_values, top_indices = torch.topk(logits, k)   # sorted, stable for equal inputs
        probs = torch.softmax(top_values.double(), dim=0)
        draw = torch.rand((), generator=generator, dtype=torch.float64)
        index = int(torch.searchsorted(torch.cumsum(probs, 0), draw, right=True).clamp(max=k - 1))
        return int(top_indices[index])


def motion_rows_head(head, vocab: MotionVocabulary):
    """A module that stands in for the T5's lm_head while a motion string is generated: the
    logits of ``</s>`` and of the motion tokens only (the rest -inf), so the largest matmul of a
    decoding step shrinks from vocab_size rows to code_num + 4. Same weights, same logits there."""
    import torch

    class MotionRowsHead(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.size = head.weight.shape[0]
            self.rows = torch.cat([torch.tensor([vocab.eos_id]), torch.arange(
                vocab.first_id, vocab.first_id + vocab.code_num + MOTION_EXTRA_TOKENS)]).to(head.weight.device)
            self.rows_weight = head.weight.detach()[self.rows]

        def forward(self, hidden):
            out = hidden.new_full((*hidden.shape[:-1], self.size), float("-inf"))
            out[..., self.rows] = torch.nn.functional.linear(hidden, self.rows_weight)
            return out

    return MotionRowsHead()


def _cat(a, b):
    import torch
    return torch.cat([a, b])


class TextOnlyProcessor:
    """Bans every motion token, ``<pad>``, the other special tokens and rows beyond the tokenizer."""

    def __init__(self, vocab: MotionVocabulary, banned_ids: Sequence[int] = ()):
        self.vocab, self.banned = vocab, sorted(set(banned_ids) - {vocab.eos_id})

    def __call__(self, input_ids, scores):
        scores = scores.clone()
        scores[:, self.vocab.first_id: self.vocab.first_id + self.vocab.code_num + MOTION_EXTRA_TOKENS] = float("-inf")
        scores[:, self.vocab.vocab_size:] = float("-inf")
        scores[:, self.vocab.pad_id] = float("-inf")
        if self.banned:
            scores[:, self.banned] = float("-inf")
        return scores


# ----------------------------------------------------------------------------- the T5

def new_t5(vocab_size: int, d_model: int = 256, num_layers: int = 4, num_heads: int = 4, d_ff: int = 1024,
           dropout: float = 0.1, seed: int | None = None):
    """A randomly initialised flan-t5-style T5 (gated-gelu, RMS norms, untied lm_head)."""
    import torch
    from transformers import T5Config, T5ForConditionalGeneration

    if d_model % num_heads:
        raise MotionError(f"d_model {d_model} must be divisible by num_heads {num_heads}")
    config = T5Config(vocab_size=vocab_size, d_model=d_model, d_kv=d_model // num_heads, d_ff=d_ff,
                      num_layers=num_layers, num_decoder_layers=num_layers, num_heads=num_heads,
                      relative_attention_num_buckets=32, relative_attention_max_distance=128,
                      dropout_rate=dropout, layer_norm_epsilon=1e-6, feed_forward_proj="gated-gelu",
                      tie_word_embeddings=False, decoder_start_token_id=0, pad_token_id=0, eos_token_id=1,
                      architectures=["T5ForConditionalGeneration"])
    if seed is not None:
        torch.manual_seed(seed)
    model = T5ForConditionalGeneration(config)
    untie_lm_head(model)
    return model


def untie_lm_head(model) -> None:
    """Give lm_head its own weights (transformers 5 ties every T5's lm_head to ``shared``)."""
    import torch
    if model.lm_head.weight.data_ptr() == model.shared.weight.data_ptr():
        weight = torch.empty_like(model.shared.weight)
        torch.nn.init.normal_(weight, std=model.config.d_model ** -0.5)
        model.lm_head.weight = torch.nn.Parameter(weight)
    getattr(model, "all_tied_weights_keys", {}).pop("lm_head.weight", None)
    model.config.scale_decoder_outputs = False


def save_t5(model, folder: str | Path, dtype=None) -> Path:
    """Write ``config.json`` + ``model.safetensors`` with lm_head stored apart from ``shared``
    (transformers 5's save_pretrained would drop it as a tied weight). ``dtype`` e.g. float16."""
    import torch
    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    dtype = dtype or torch.float32
    state = {key: value.detach().to("cpu", dtype).contiguous().clone()
             for key, value in model.state_dict().items() if key not in EMBEDDING_ALIASES}
    save_file(state, str(folder / WEIGHTS_NAME), metadata={"format": "pt"})
    values = model.config.to_dict()
    values["tie_word_embeddings"] = False
    values["scale_decoder_outputs"] = False
    values["torch_dtype"] = values["dtype"] = str(dtype).removeprefix("torch.")
    (folder / "config.json").write_text(json.dumps(values, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return folder


def load_t5(folder: str | Path, device, dtype):
    """T5ForConditionalGeneration from a folder, lm_head kept untied, eval mode."""
    import logging

    import torch
    from transformers import T5ForConditionalGeneration
    from transformers.utils import logging as hf_logging

    folder = Path(folder)
    if not (folder / "config.json").is_file():
        raise MotionError(f"{folder}: not a language-model folder (no config.json)")
    check_t5_files(folder)
    level, bars = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity(logging.ERROR)  # "both present with different values, will NOT tie": wanted
    hf_logging.disable_progress_bar()        # no "Loading weights" bar on stderr (CLI progress is ours)
    try:
        model = T5ForConditionalGeneration.from_pretrained(str(folder), dtype=dtype)
    except Exception as error:  # OSError, ValueError, RuntimeError, SafetensorError, ...
        raise MotionError(f"{folder}: cannot load the T5 language model: {type(error).__name__}: {error}") from None
    finally:
        hf_logging.set_verbosity(level)
        if bars:
            hf_logging.enable_progress_bar()
    if model.lm_head.weight.data_ptr() == model.shared.weight.data_ptr():
        raise MotionError(f"{folder}: lm_head is tied to the input embedding; MotionGPT's lm_head is separate "
                          "(re-save with engine.lm.save_t5)")
    model.config.scale_decoder_outputs = False
    return model.to(device).eval()


def check_t5_files(folder: Path) -> None:
    """config.json readable, model.safetensors present and readable, and its embedding / lm_head
    shapes equal to config.json's vocab_size x d_model (a clear MotionError before transformers)."""
    from safetensors import safe_open

    try:
        values = json.loads((folder / "config.json").read_text(encoding="utf-8"))
        vocab_size, d_model = int(values["vocab_size"]), int(values["d_model"])
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError, ValueError) as error:
        raise MotionError(f"{folder / 'config.json'}: not a T5 config ({type(error).__name__}: {error})") from None
    weights = folder / WEIGHTS_NAME
    if not weights.is_file():
        raise MotionError(f"{weights}: missing file (a language-model folder needs config.json, {WEIGHTS_NAME} "
                          "and tokenizer.json)")
    try:
        with safe_open(str(weights), framework="pt") as handle:
            shapes = {key: tuple(handle.get_slice(key).get_shape()) for key in ("shared.weight", "lm_head.weight")
                      if key in handle.keys()}
    except Exception as error:  # SafetensorError: truncated or not a safetensors file
        raise MotionError(f"{weights}: cannot read the weights ({type(error).__name__}: {error})") from None
    for key, shape in shapes.items():
        if shape != (vocab_size, d_model):
            raise MotionError(f"{weights}: {key} has shape {shape}, but config.json says vocab_size {vocab_size} "
                              f"x d_model {d_model}; the config and the weights do not belong together")


# ----------------------------------------------------------------------------- the language model

class MotionLanguageModel:
    """T5 + text tokenizer + motion vocabulary; batched constrained generation.

    ``generate_motion(prompts, ...) -> [codes (N,) int64]``; ``generate_text(prompts) -> [str]``.
    """

    def __init__(self, t5, text_tokenizer, code_num: int, max_prompt_tokens: int = 256, source: str = "lm",
                 text_side=None):
        self.t5, self.text_tokenizer = t5, text_tokenizer
        self.text_side = text_side     # engine.text_side.TextSide: captions read by the pretrained encoder
        self.vocab = MotionVocabulary.from_tokenizer(text_tokenizer, code_num, source)
        if t5.config.vocab_size < self.vocab.vocab_size:
            raise MotionError(f"{source}: the T5 has {t5.config.vocab_size} embedding rows, the text tokenizer "
                              f"{self.vocab.vocab_size} tokens")
        self.max_prompt_tokens = max_prompt_tokens
        specials = set(getattr(text_tokenizer, "all_special_ids", []))
        self.text_banned = sorted(specials - {self.vocab.eos_id})

    @classmethod
    def from_pretrained(cls, folder: str | Path, code_num: int, device=None, dtype=None) -> "MotionLanguageModel":
        from transformers import AutoTokenizer

        from .tokenizer import resolve_device
        import torch
        folder = Path(folder)
        device = resolve_device(device)
        if dtype is None:
            dtype = torch.bfloat16 if device.type == "cuda" and torch.cuda.is_bf16_supported() else torch.float32
        if not (folder / "tokenizer.json").is_file():
            raise MotionError(f"{folder / 'tokenizer.json'}: missing file (the text tokenizer of the language "
                              "model; a language-model folder needs config.json, model.safetensors and tokenizer.json)")
        try:
            text_tokenizer = AutoTokenizer.from_pretrained(str(folder))
        except Exception as error:  # transformers raises many kinds here
            raise MotionError(f"{folder}: cannot load the text tokenizer: {type(error).__name__}: {error}") from None
        if not getattr(text_tokenizer, "is_fast", False):
            raise MotionError(f"{folder}: need a fast (tokenizer.json) text tokenizer")
        text_tokenizer.padding_side = "right"
        from .text_side import TextSide
        return cls(load_t5(folder, device, dtype), text_tokenizer, code_num, source=str(folder),
                   text_side=TextSide.from_pretrained(folder, device))

    def save_pretrained(self, folder: str | Path, dtype=None) -> Path:
        save_t5(self.t5, folder, dtype)
        self.text_tokenizer.save_pretrained(str(folder))
        if self.text_side is not None:
            self.text_side.save_pretrained(folder, dtype)
        return Path(folder)

    @property
    def device(self):
        return self.t5.device

    def prompt_length(self, prompt: str) -> int:
        """Tokens of an encoded prompt, ``</s>`` included."""
        return len(self.text_tokenizer(prompt)["input_ids"])

    def fit_prompt(self, template: str, caption: str, name: str = "text", **fields) -> str:
        """``template.format(caption=caption, **fields)``; a caption too long for
        ``max_prompt_tokens`` is cut at a token boundary, with a UserWarning naming what was kept.
        (Cutting the whole prompt instead would drop motion tokens or the closing ``</s>``.)
        With a text side the caption is marked for the pretrained encoder, which cuts it at its own
        limit (256 WordPiece tokens), also with a UserWarning."""
        if self.text_side is not None:
            from .text_side import mark_caption
            return template.format(caption=mark_caption(caption), **fields)
        prompt = template.format(caption=caption, **fields)
        total = self.prompt_length(prompt)
        if total <= self.max_prompt_tokens:
            return prompt
        offsets = self.text_tokenizer(caption, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
        keep = max(0, len(offsets) - (total - self.max_prompt_tokens))
        while keep > 0:
            cut = caption[: offsets[keep - 1][1]].rstrip()
            prompt = template.format(caption=cut, **fields)
            if self.prompt_length(prompt) <= self.max_prompt_tokens:
                break
            keep -= 1
        if keep == 0:
            raise MotionError(f"{name}: the prompt without the caption is already longer than the limit of "
                              f"{self.max_prompt_tokens} tokens")
        warnings.warn(f"{name} is {len(offsets)} tokens ({len(caption)} characters) long; only its first {keep} "
                      f"tokens ({len(cut)} characters: {cut[:40]!r}...) are used, to fit the prompt limit of "
                      f"{self.max_prompt_tokens} tokens", UserWarning, stacklevel=3)
        return prompt

    def encode_prompts(self, prompts: Sequence[str]) -> dict:
        """The T5 encoder's inputs for prompts, right-padded, ``</s>`` appended, cut at
        max_prompt_tokens: ``input_ids`` + ``attention_mask``, or with a text side
        ``inputs_embeds`` + ``attention_mask`` (marked captions through the pretrained encoder)."""
        if self.text_side is not None:
            return self.text_side.encoder_inputs(self.t5, self.text_tokenizer, prompts, self.max_prompt_tokens)
        batch = self.text_tokenizer(list(prompts), padding=True, truncation=True,
                                    max_length=self.max_prompt_tokens, return_tensors="pt")
        return {"input_ids": batch["input_ids"].to(self.device), "attention_mask": batch["attention_mask"].to(self.device)}

    def _generate(self, prompts: Sequence[str], processor, max_new_tokens: int, motion_only: bool = False):
        """Greedy ``generate`` (KV cache, one encoder pass) with ``processor`` choosing each token.
        ``motion_only``: lm_head computes only the rows a motion string can use (eos, codes, start,
        end; 514 of e.g. 32615) and leaves the others at -inf, which the processor never reads."""
        import torch
        from transformers import GenerationConfig, LogitsProcessorList

        config = GenerationConfig(do_sample=False, num_beams=1, max_new_tokens=max_new_tokens,
                                  decoder_start_token_id=0, eos_token_id=self.vocab.eos_id,
                                  pad_token_id=self.vocab.pad_id, use_cache=True)
        head = self.t5.lm_head
        with torch.inference_mode():
            if motion_only:
                self.t5.lm_head = motion_rows_head(head, self.vocab)
            try:
                inputs = self.encode_prompts(prompts)
                output = self.t5.generate(**inputs, generation_config=config,
                                          logits_processor=LogitsProcessorList([processor]))
            finally:
                self.t5.lm_head = head
        return output.cpu().numpy()

    def generate_motion(self, prompts: Sequence[str], min_codes: Sequence[int], max_codes: Sequence[int],
                        seeds: Sequence[int | None] | None = None, top_k: int = 50, temperature: float = 1.0,
                        sample: bool = True, prefix_codes=None, suffix_codes=None) -> list[np.ndarray]:
        """One code array per prompt, each with min_codes..max_codes codes (all valid codes).

        ``seeds[i]`` seeds row i's sampling (None: a fresh random seed); ``sample=False`` is greedy.
        """
        import torch
        rows = len(prompts)
        if not (len(min_codes) == len(max_codes) == rows):
            raise MotionError("generate_motion: one min_codes/max_codes per prompt")
        for low, high in zip(min_codes, max_codes):
            if not 1 <= low <= high:
                raise MotionError(f"generate_motion: code bounds {low}..{high} are not 1 <= min <= max")
        generators = None
        if sample:
            seeds = list(seeds) if seeds is not None else [None] * rows
            generators = []
            for seed in seeds:
                generator = torch.Generator()
                generator.manual_seed(int(seed) if seed is not None else int(torch.randint(2 ** 62, ()).item()))
                generators.append(generator)
        processor = MotionSpanProcessor(self.vocab, min_codes, max_codes, generators, top_k, temperature,
                                        prefix_codes, suffix_codes)
        output = self._generate(prompts, processor, max(max_codes) + 3, motion_only=True)
        return [self.vocab.codes_of(row) for row in output]

    def generate_text(self, prompts: Sequence[str], max_new_tokens: int = 40) -> list[str]:
        """Greedy captions, motion tokens and specials banned."""
        processor = TextOnlyProcessor(self.vocab, self.text_banned)
        output = self._generate(prompts, processor, max_new_tokens)
        texts = self.text_tokenizer.batch_decode(output, skip_special_tokens=True)
        return [" ".join(text.split()) for text in texts]
