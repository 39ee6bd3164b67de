"""Training the motion tokenizer:

    python -m engine.training tokenizer --data DIR --out DIR [--steps N --batch 128 --window 64 ...]

(the command line is engine/training/__main__.py; the training loop, which the language model's
trainer in engine/training/lm.py shares, is engine/training/loop.py: this module supplies its
tokenizer-specific parts, ``TokenizerTrainer``.)

The tokenizer recipe is T2M-GPT's / MotionGPT's stage 1: random 64-frame windows of normalised
HumanML3D features; loss = smooth-L1 reconstruction of all 263 channels + 0.5 x smooth-L1 of the
root-relative joint positions (channels 4..66, which upstream calls the "velocity" loss) + 0.02 x
commitment; the codebook follows the encoder by EMA (mu 0.99) with dead-code reset; AdamW
(lr 2e-4, betas 0.9 / 0.99, no weight decay), linear warm-up, then the lr is multiplied by 0.05 at
each decay step. Options beyond upstream: ``--balance`` / ``--source-share`` (which clips the
windows come from), ``--heading`` (a loss on the integrated root turn) and ``--time-warp`` (each
window played at a random speed, ``MotionWindows``).

The same command runs on one CPU, one GPU, or under ``torchrun`` on many GPUs / nodes
(DistributedDataParallel: gloo on CPU, nccl on CUDA). ``--batch`` is the global batch; each rank
draws its share with its own seeded generator. The run folder ``--out`` holds ``checkpoint.pt``
(everything needed by ``--resume``), ``log.jsonl`` and ``best/`` (the model with the lowest
pelvis-aligned validation MPJPE, a ``MotionTokenizer.from_pretrained`` folder).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import MotionError
from ..motion import FEATURE_DIM, FEATURE_GROUPS, Normalizer
from ..tokenizer import MotionTokenizer, TokenizerConfig, codebook_usage
from .loop import Ranks, start_distributed, train

RIC_CHANNELS = slice(4, 67)  # root-relative joint positions: the channels of the "velocity" loss


@dataclass
class TokenizerTraining:
    """Everything a tokenizer run needs; the CLI flags have the same names."""

    data: str = ""                     # dataset folder (python -m engine.data build)
    out: str = ""                      # run folder
    steps: int = 100_000               # optimiser steps in total (a resumed run continues to this)
    batch: int = 128                   # windows per step, over all ranks
    window: int = 64                   # frames per window (a multiple of 4)
    lr: float = 2e-4
    warmup: int = 1000                 # linear warm-up steps
    decay_at: list[int] = field(default_factory=list)  # steps where lr *= lr_gamma (default: 2/3 of steps)
    lr_gamma: float = 0.05
    weight_decay: float = 0.0
    commit: float = 0.02               # commitment loss weight
    velocity: float = 0.5              # position ("velocity") loss weight
    heading: float = 0.0               # heading-drift loss weight (radians of integrated root turn)
    time_warp: float = 0.0             # windows played at random speeds in [1/(1+w), 1+w] (MotionWindows)
    balance: float = 0.0               # share of draws spread evenly over content labels (engine.data.sampling_weights)
    source_share: float = 0.0          # share of draws spread evenly over the sources, by frames within each (source_weights)
    init: str = ""                     # start from this tokenizer folder's weights (fresh optimiser, step 0)
    decoder_only: bool = False         # freeze encoder and codebook: the tokens stay as they were
    code_num: int = 512
    code_dim: int = 512
    width: int = 256
    depth: int = 3
    down_t: int = 2
    dilation_growth_rate: int = 3
    log_every: int = 50
    val_every: int = 1000              # validation + best model + checkpoint
    val_clips: int = 0                 # 0: every validation clip
    seed: int = 1234
    fp16: bool = False                 # write best/ as float16 safetensors (for shipping)
    resume: bool = False
    device: str | None = None          # default: cuda:LOCAL_RANK when available, else cpu

    def model_config(self) -> TokenizerConfig:
        return TokenizerConfig(code_num=self.code_num, code_dim=self.code_dim, output_emb_width=self.code_dim,
                               width=self.width, depth=self.depth, down_t=self.down_t,
                               dilation_growth_rate=self.dilation_growth_rate)


# ----------------------------------------------------------------------------- data

class MotionWindows:
    """The training clips in one tensor, drawing random fixed-length windows as T2M-GPT does
    (a clip at random, by ``weights`` or uniformly, then a start uniformly within it).

    With ``time_warp`` w > 0 each window is also played at its own random speed, log-uniform in
    [1 / (1 + w), 1 + w] (speed 2: every second frame of the clip), clamped to what its clip holds:
    poses are interpolated linearly between the clip's frames; a frame's velocities (root turn,
    root and joint velocities: the move to the next frame) become the clip's moves summed over the
    span to the next window frame, so the warped clip covers the same ground; foot contacts are
    rounded back to 0 or 1. ``normalizer`` (the one ``clips`` were normalised with) is then needed."""

    def __init__(self, clips: list[np.ndarray], window: int, source: str, weights: np.ndarray | None = None,
                 time_warp: float = 0.0, normalizer: Normalizer | None = None):
        keep = [i for i, c in enumerate(clips) if len(c) >= window]
        usable = [clips[i] for i in keep]
        if not usable:
            raise MotionError(f"{source}: no training clip has {window} frames or more "
                              f"(longest: {max((len(c) for c in clips), default=0)}); lower --window")
        if time_warp < 0 or not math.isfinite(time_warp):
            raise MotionError(f"time_warp {time_warp}: must be 0 (off) or a positive number")
        if time_warp and normalizer is None:
            raise MotionError("time_warp needs the normalizer the clips were normalised with")
        self.frames = torch.from_numpy(np.concatenate(usable)).float()        # (sum T, 263)
        self.lengths = lengths = torch.tensor([len(c) for c in usable])
        self.starts = torch.cumsum(lengths, 0) - lengths
        self.last_start = lengths - window                                   # inclusive
        self.window = window
        self.clip_count = len(usable)
        self.weights = None if weights is None else torch.as_tensor(np.asarray(weights)[keep], dtype=torch.float64)
        self.time_warp = time_warp
        if time_warp:
            self.mean = torch.from_numpy(normalizer.mean).float()
            self.std = torch.from_numpy(normalizer.std).float()
            self.velocity = torch.zeros(FEATURE_DIM, dtype=torch.bool)
            for group in ("root_rot_velocity", "root_linear_velocity", "local_velocity"):
                self.velocity[FEATURE_GROUPS[group]] = True
            self.contact = FEATURE_GROUPS["foot_contact"]
            # per clip, the moves summed up to each frame (T + 1 rows, from 0), in the features' units
            velocity = self.velocity.numpy()
            moves = [np.cumsum(c[:, velocity] * normalizer.std[velocity] + normalizer.mean[velocity],
                               axis=0, dtype=np.float64) for c in usable]
            self.travelled = torch.from_numpy(np.concatenate(
                [np.concatenate([np.zeros((1, m.shape[1])), m]) for m in moves])).float()
            self.travel_starts = self.starts + torch.arange(self.clip_count)

    def sample(self, count: int, generator: torch.Generator) -> torch.Tensor:
        """(count, window, 263) normalised windows."""
        if self.weights is None:
            clips = torch.randint(self.clip_count, (count,), generator=generator)
        else:
            clips = torch.multinomial(self.weights, count, replacement=True, generator=generator)
        if self.time_warp:
            return self._warped(clips, generator)
        offsets = (torch.rand(count, generator=generator) * (self.last_start[clips] + 1)).long()
        first = self.starts[clips] + offsets
        return self.frames[first[:, None] + torch.arange(self.window)]

    def _warped(self, clips: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Windows of ``clips`` (count,) at random speeds and starts (see the class docstring)."""
        bound = math.log1p(self.time_warp)
        speeds = torch.exp((torch.rand(len(clips), generator=generator, dtype=torch.float64) * 2 - 1) * bound)
        speeds = torch.minimum(speeds, (self.lengths[clips] - 1).double() / (self.window - 1))  # what the clip holds
        room = (self.lengths[clips] - 1).double() - speeds * (self.window - 1)                  # >= 0
        return self.play(clips, torch.rand(len(clips), generator=generator, dtype=torch.float64) * room, speeds)

    def play(self, clips: torch.Tensor, starts: torch.Tensor, speeds: torch.Tensor) -> torch.Tensor:
        """(count, window, 263) normalised windows of ``clips`` (count,) from frame ``starts``
        (count,), fractional allowed, played at ``speeds`` (count,) clip frames per window frame."""
        lengths = self.lengths[clips][:, None].double()
        times = starts.double()[:, None] + speeds.double()[:, None] * torch.arange(self.window, dtype=torch.float64)
        times = torch.minimum(times, lengths - 1)
        windows = _interpolate(self.frames, self.starts[clips], times, lengths - 1)
        raw = windows * self.std + self.mean
        # each frame's velocities: the clip's moves from its time to the next window frame's,
        # per window frame (the last one's span is cut at the clip's end)
        ends = torch.minimum(times + speeds.double()[:, None], lengths)
        moved = (_interpolate(self.travelled, self.travel_starts[clips], ends, lengths)
                 - _interpolate(self.travelled, self.travel_starts[clips], times, lengths))
        raw[..., self.velocity] = moved * (speeds.double()[:, None] / (ends - times)).float()[..., None]
        raw[..., self.contact] = raw[..., self.contact].round().clamp(0, 1)
        return (raw - self.mean) / self.std


def _interpolate(rows: torch.Tensor, firsts: torch.Tensor, times: torch.Tensor, last: torch.Tensor) -> torch.Tensor:
    """``rows`` (N, C) read at fractional ``times`` (count, T) of blocks starting at ``firsts``
    (count,) whose last row is ``last`` (count, 1): linear between neighbouring rows, (count, T, C)."""
    below = times.floor()
    share = (times - below).float()[..., None]
    above = torch.minimum(below + 1, last).long()
    base = firsts[:, None]
    return rows[base + below.long()] * (1 - share) + rows[base + above] * share


def window_weights(clips: list[tuple[str, np.ndarray]], balance: float, source_share: float) -> np.ndarray | None:
    """(N,) probabilities of drawing each training clip (name, features): ``source_share`` of the
    draws even over the sources by frames (``engine.data.source_weights``), the rest as
    ``balance`` says (``engine.data.sampling_weights``); None (uniform over clips) when both are 0."""
    from ..data import sampling_weights, source_weights
    if not 0.0 <= source_share <= 1.0:
        raise MotionError(f"source_share {source_share}: must be between 0 and 1")
    if not balance and not source_share:
        return None
    names = [name for name, _ in clips]
    weights = (1.0 - source_share) * sampling_weights(names, balance)
    if source_share:
        weights = weights + source_share * source_weights(names, [len(features) for _, features in clips])
    return weights / weights.sum()


def read_split(data: Path, split: str) -> list[tuple[str, np.ndarray]]:
    """(name, (T, 263) un-normalised features) of a dataset split."""
    from ..data import load_split
    return [(clip.name, clip.features) for clip in load_split(data, split)]


def read_joints(data: Path, name: str) -> np.ndarray:
    path = data / "joints" / f"{name}.npy"
    try:
        joints = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as error:
        raise MotionError(f"{path}: cannot read ground-truth joints: {error}") from None
    if joints.ndim != 3 or joints.shape[1:] != (22, 3):
        raise MotionError(f"{path}: expected (T, 22, 3) joints, got {joints.shape}")
    return joints


def learning_rate(config: TokenizerTraining, step: int) -> float:
    """Linear warm-up over ``warmup`` steps, then ``lr_gamma`` at each step of ``decay_at``."""
    warm = min(1.0, (step + 1) / max(1, config.warmup))
    decays = sum(1 for at in (config.decay_at or [config.steps * 2 // 3]) if step >= at)
    return config.lr * warm * config.lr_gamma ** decays


# ----------------------------------------------------------------------------- validation

def heading_aligned(joints: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """(T, J, 3) ``joints`` with each frame's pelvis moved onto ``truth``'s and turned about the
    vertical (y) axis by the angle that brings its joints closest to ``truth``'s (least squares):
    the pose in the body's own frame, with the heading the root path drifted to taken out."""
    from ..model import rotate_about_y
    centred, target = joints - joints[:, :1], truth - truth[:, :1]
    # The angle of the turn about +Y (``rotate_about_y``) that best fits target, per frame.
    sine = (centred[..., 0] * target[..., 2] - centred[..., 2] * target[..., 0]).sum(-1)
    cosine = (centred[..., 0] * target[..., 0] + centred[..., 2] * target[..., 2]).sum(-1)
    return rotate_about_y(centred, -np.arctan2(sine, cosine)) + truth[:, :1]


@torch.no_grad()
def validate(model: MotionTokenizer, clips: list[tuple[str, np.ndarray]], data: Path) -> dict:
    """Reconstruction MPJPE (mm) of whole validation clips (decode -> joints vs ground truth),
    also after aligning the pelvis ("local") and after aligning the pelvis and the heading
    ("body", ``heading_aligned``: the pose alone, without the heading a long take's root path
    drifts to), and the codebook usage of their tokens."""
    model.eval()
    step = model.config.frames_per_token
    errors, local_errors, body_errors, tokens_seen = [], [], [], []
    for name, features in clips:
        usable = len(features) // step * step
        if usable < step:
            continue
        tokens = model.encode(features[:usable])
        joints = model.decode(tokens).joints
        truth = read_joints(data, name)[:usable]
        distance = np.linalg.norm(joints - truth, axis=-1)                    # (T, 22) metres
        local = np.linalg.norm((joints - joints[:, :1]) - (truth - truth[:, :1]), axis=-1)
        errors.append(distance.reshape(-1))
        local_errors.append(local.reshape(-1))
        body_errors.append(np.linalg.norm(heading_aligned(joints, truth) - truth, axis=-1).reshape(-1))
        tokens_seen.append(tokens)
    if not errors:
        raise MotionError(f"{data}: no validation clip has {step} frames or more")
    usage = codebook_usage(np.concatenate(tokens_seen), model.config.code_num)
    return {"mpjpe_mm": float(np.concatenate(errors).mean() * 1000),
            "mpjpe_local_mm": float(np.concatenate(local_errors).mean() * 1000),
            "mpjpe_body_mm": float(np.concatenate(body_errors).mean() * 1000),
            "val_perplexity": usage["perplexity"], "val_used_codes": usage["used_codes"], "val_clips": len(errors)}


# ----------------------------------------------------------------------------- training

def train_tokenizer(config: TokenizerTraining) -> MotionTokenizer:
    """Train (or resume) a MotionTokenizer as described in the module docstring; returns the
    trained model (unwrapped, on its device). Only rank 0 writes files."""
    ranks, device = start_distributed(config.device)
    trainer = TokenizerTrainer(config, ranks, device)
    train(trainer, config, ranks, device)
    return trainer.model


class TokenizerTrainer:
    """The tokenizer's parts of the training loop (``engine.training.loop.Trainer``)."""

    # Selected on the pelvis-aligned MPJPE, MotionGPT's reconstruction metric (MRMetrics,
    # align_root); the global one mostly measures root drift.
    score, best, best_text = "mpjpe_local_mm", "best_mpjpe_mm", "best MPJPE {:.1f} mm"
    # no per-step buffer broadcast: the quantizer all-reduces its own statistics
    ddp_options = {"forward_sync_buffers": False}
    weights_only = True

    def __init__(self, config: TokenizerTraining, ranks: Ranks, device: torch.device):
        if config.batch % ranks.world:
            raise MotionError(f"--batch {config.batch} must be divisible by the number of processes {ranks.world}")
        if config.window % 2 ** config.down_t:
            raise MotionError(f"--window {config.window} must be a multiple of {2 ** config.down_t} frames")
        self.config, self.ranks, self.device = config, ranks, device
        self.data = data = Path(config.data)

        # data, normalised with the dataset's training statistics
        normalizer = Normalizer.load(data)
        train_clips = read_split(data, "train")
        weights = window_weights(train_clips, config.balance, config.source_share)
        self.windows = MotionWindows([normalizer.normalize(f) for _, f in train_clips], config.window,
                                     str(data / "train.txt"), weights, config.time_warp, normalizer)
        val_clips = read_split(data, "val") if ranks.main else []
        if ranks.main and not val_clips:
            raise MotionError(f"{data / 'val.txt'}: the validation split is empty")
        self.val_clips = val_clips[: config.val_clips] if config.val_clips else val_clips

        # model and optimiser (identical initial weights on every rank: same seed, then DDP broadcasts)
        torch.manual_seed(config.seed)
        self.model = model = MotionTokenizer(config.model_config(), normalizer).to(device)
        if config.init:
            model.load_state_dict(_initial_weights(config, normalizer))
        if config.decoder_only:
            if not config.init:
                raise MotionError("--decoder-only needs --init DIR: a trained tokenizer whose encoder and codebook stay")
            model.encoder.requires_grad_(False)
        trained = [p for p in model.parameters() if p.requires_grad]
        self.optimizer = torch.optim.AdamW(trained, lr=config.lr, betas=(0.9, 0.99), weight_decay=config.weight_decay)
        # root rotation velocity (channel 0) back in radians per frame, for the heading loss
        self.turn_std = torch.tensor(float(normalizer.std[0]), device=device)
        self.generator = torch.Generator().manual_seed(config.seed + 1000 * ranks.rank)
        self.per_rank = config.batch // ranks.world
        self.sizes = {"model_config": asdict(config.model_config())}
        self.header = (f"tokenizer: {sum(p.numel() for p in model.parameters()) / 1e6:.2f} M parameters, "
                       f"{self.windows.clip_count} training clips ({len(self.windows.frames)} frames), "
                       f"{len(self.val_clips)} validation clips, {ranks.world} process(es) on {device}")

    def learning_rate(self, step: int) -> float:
        return learning_rate(self.config, step)

    def step(self, network: torch.nn.Module, step: int) -> torch.Tensor:
        """One step on random windows: its loss, reconstruction, position and commitment losses,
        then the histogram of its tokens."""
        config, model, optimizer = self.config, self.model, self.optimizer
        model.train()
        if config.decoder_only:      # no EMA codebook updates, no dead-code resets
            model.encoder.eval(), model.quantizer.eval()
        target = self.windows.sample(self.per_rank, self.generator).to(self.device, non_blocking=True)
        reconstruction, commitment, tokens = network(target)
        reconstruction_loss = F.smooth_l1_loss(reconstruction, target)
        position_loss = F.smooth_l1_loss(reconstruction[..., RIC_CHANNELS], target[..., RIC_CHANNELS])
        loss = reconstruction_loss + config.velocity * position_loss + config.commit * commitment
        if config.heading:
            # the facing direction is the running sum of the root's turn: errors there rotate the
            # whole body for the rest of the clip, which per-frame losses barely see
            turn_error = torch.cumsum((reconstruction[..., 0] - target[..., 0]) * self.turn_std, dim=1)
            loss = loss + config.heading * turn_error.abs().mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses = torch.tensor([loss.item(), reconstruction_loss.item(), position_loss.item(), commitment.item()],
                              dtype=torch.float64)
        return torch.cat([losses, torch.bincount(tokens.reshape(-1).cpu(), minlength=config.code_num).double()])

    def record(self, step: int, lr: float, totals: torch.Tensor, count: int) -> dict:
        mean, counts = totals[:4] / count, totals[4:]
        prob = counts / counts.sum().clamp_min(1)
        return {"loss": mean[0].item(), "reconstruction": mean[1].item(), "position": mean[2].item(),
                "commitment": mean[3].item(), "lr": lr,
                "perplexity": math.exp(-(prob * torch.log(prob + 1e-7)).sum().item()),
                "used_codes": int((counts > 0).sum())}

    def validate(self) -> dict:
        return validate(self.model, self.val_clips, self.data)

    def save_best(self, step: int, score: float) -> None:
        self.model.save_pretrained(Path(self.config.out) / "best",
                                   dtype=torch.float16 if self.config.fp16 else torch.float32)

    def state(self) -> dict:
        return {"ema": self.model.quantizer.ema_state()}

    def load(self, state: dict) -> None:
        self.model.quantizer.load_ema_state(state["ema"])
        self.model.to(self.device)

    def rng_state(self) -> dict:
        return {"data": self.generator.get_state(), "torch": torch.get_rng_state()}

    def set_rng_state(self, saved: dict | None, step: int) -> None:
        if saved is not None:
            self.generator.set_state(saved["data"])
            torch.set_rng_state(saved["torch"])
        else:
            self.generator.manual_seed(self.config.seed + 1000 * self.ranks.rank + step)


def _initial_weights(config: TokenizerTraining, normalizer: Normalizer) -> dict[str, torch.Tensor]:
    """The float32 state dict of the ``--init`` tokenizer folder, checked against this run's sizes
    and normalisation (the training windows are normalised with the dataset's statistics)."""
    start = MotionTokenizer.from_pretrained(config.init, device="cpu")
    if start.config != config.model_config():
        raise MotionError(f"{config.init}: its sizes {asdict(start.config)} differ from this run's "
                          f"{asdict(config.model_config())}")
    if not (np.allclose(start.normalizer.mean, normalizer.mean, atol=1e-5)
            and np.allclose(start.normalizer.std, normalizer.std, atol=1e-5)):
        raise MotionError(f"{config.init}: mean.npy / std.npy differ from {config.data}'s statistics")
    return {k: v.float() for k, v in start.state_dict().items()}

