"""The motion tokenizer: MotionGPT's VQ-VAE (itself T2M-GPT's), module for module.

Normalised HumanML3D features (B, T, 263) go through a 1-D convolutional encoder that halves the
time axis ``down_t`` times (4 frames per token with the default down_t = 2), each latent vector is
replaced by its nearest codebook row (its index is the motion token), and a mirrored decoder with
nearest-neighbour upsampling turns the codebook rows back into features.

The module tree reproduces the official one so that ``state_dict()`` has exactly the keys of the
released checkpoint's ``vae.*`` entries without the ``vae.`` prefix (67 entries for the official
size): ``encoder.model.*``, ``decoder.model.*`` and ``quantizer.codebook``. See
``/work/shared/notes/motiongpt_checkpoint.md`` §2 for the layer order.

A model folder holds ``config.json`` (``TokenizerConfig``), ``model.safetensors`` and the
normalisation statistics ``mean.npy`` / ``std.npy``. Nothing in it is unpickled.
"""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from .formats.bone_maps import assets_dir
from .checkpoint import check_finite, check_layout, meta_shapes, safetensors_layout, tensor_layout
from .configs import (MAX_CODES, MAX_LAYERS, MAX_WIDTH, WEIGHT_DTYPES, Rule, check_parameter_count, check_values,
                      integer, one_of, optional, read_config, show)
from .errors import MotionError
from .motion import FEATURE_DIM, MODEL_FPS, Motion, Normalizer, validate_features

MODEL_TYPE = "motiongpt_vqvae"
CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
DEFAULT_FOLDER = assets_dir() / "models" / "default" / "tokenizer"  # $MOTIONGPT_ASSETS moves it
MAX_DOWN_T = 6                   # at most 2 ** 6 = 64 frames per token
MAX_DILATION = 4096              # largest dilation of a residual block: dilation_growth_rate ** (depth - 1)

# Bounds of TokenizerConfig's sizes (the official VQ-VAE: 512 codes of 512, width 512, depth 3, down_t 2).
SIZE_RULES = {
    "code_num": integer(1, MAX_CODES), "code_dim": integer(1, MAX_WIDTH), "output_emb_width": integer(1, MAX_WIDTH),
    "width": integer(1, MAX_WIDTH), "depth": integer(1, MAX_LAYERS), "down_t": integer(1, MAX_DOWN_T),
    "dilation_growth_rate": integer(1, MAX_DILATION), "nfeats": integer(1, MAX_WIDTH),
}
# The other keys of tokenizer/config.json (written by ``to_dict`` / ``save_pretrained``).
FILE_RULES = {
    "model_type": one_of(MODEL_TYPE),
    "fps": Rule(f"{MODEL_FPS:g} (the engine's frame rate)",
                lambda v: isinstance(v, (int, float)) and not isinstance(v, bool) and v == MODEL_FPS),
    "frames_per_token": integer(2, 2 ** MAX_DOWN_T),
    "torch_dtype": optional(one_of(*WEIGHT_DTYPES)),
}


@dataclass
class TokenizerConfig:
    """Sizes of the VQ-VAE. The defaults are the official MotionGPT / T2M-GPT HumanML3D model."""

    code_num: int = 512              # codebook rows = number of distinct motion tokens
    code_dim: int = 512              # length of one codebook row
    output_emb_width: int = 512      # encoder output channels; must equal code_dim
    width: int = 512                 # channels inside encoder and decoder
    depth: int = 3                   # residual blocks per down/up-sampling stage
    down_t: int = 2                  # stride-2 stages: 2 ** down_t frames per token
    dilation_growth_rate: int = 3    # dilations of a stage: rate ** (depth-1), ..., rate, 1
    nfeats: int = FEATURE_DIM        # feature channels (263 for HumanML3D)

    def __post_init__(self) -> None:
        self.check(asdict(self), "tokenizer config")

    @staticmethod
    def check(values: dict, source: str) -> None:
        """MotionError naming ``source``, the key and the value when a size is not an integer within
        SIZE_RULES' bounds, or the sizes do not fit together."""
        check_values(values, SIZE_RULES, source, required=tuple(SIZE_RULES), ignored=tuple(FILE_RULES))
        check_values({k: v for k, v in values.items() if k in FILE_RULES}, FILE_RULES, source)
        if values["output_emb_width"] != values["code_dim"]:
            raise MotionError(f"{source}: output_emb_width ({values['output_emb_width']}) must equal "
                              f"code_dim ({values['code_dim']}); the encoder output is quantised row by row")
        rate, depth = values["dilation_growth_rate"], values["depth"]
        if rate ** (depth - 1) > MAX_DILATION:
            raise MotionError(f"{source}: dilation_growth_rate {rate} and depth {depth} give a dilation of "
                              f"{show(rate ** (depth - 1))} ({rate} ** {depth - 1}), more than the limit of "
                              f"{MAX_DILATION}")
        if "frames_per_token" in values and values["frames_per_token"] != 2 ** values["down_t"]:
            raise MotionError(f"{source}: frames_per_token {values['frames_per_token']} does not match "
                              f"down_t {values['down_t']} (2 ** down_t = {2 ** values['down_t']})")

    @property
    def frames_per_token(self) -> int:
        return 2 ** self.down_t

    def to_dict(self) -> dict:
        return {"model_type": MODEL_TYPE, **asdict(self), "fps": MODEL_FPS,
                "frames_per_token": self.frames_per_token}

    @classmethod
    def from_dict(cls, values: dict, source: str = "config") -> "TokenizerConfig":
        """Build from a config.json dict (``check``: unknown, missing or out-of-bounds keys are a
        MotionError naming ``source``)."""
        if not isinstance(values, dict):
            raise MotionError(f"{source}: expected a JSON object, got {type(values).__name__}")
        if values.get("model_type", MODEL_TYPE) != MODEL_TYPE:
            raise MotionError(f"{source}: model_type is {show(values.get('model_type'))}, expected {MODEL_TYPE!r}")
        cls.check(values, source)
        return cls(**{name: values[name] for name in SIZE_RULES})


# ----------------------------------------------------------------------------- modules

class ResConv1DBlock(nn.Module):
    """Pre-activation residual block: x + conv2(relu(conv1(relu(x)))); (B, C, T) -> (B, C, T)."""

    def __init__(self, channels: int, dilation: int):
        super().__init__()
        self.conv1 = nn.Conv1d(channels, channels, kernel_size=3, padding=dilation, dilation=dilation)
        self.conv2 = nn.Conv1d(channels, channels, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(F.relu(self.conv1(F.relu(x))))


class Resnet1D(nn.Module):
    """``depth`` residual blocks with dilations rate ** (depth-1), ..., rate, 1 (largest first)."""

    def __init__(self, channels: int, depth: int, dilation_growth_rate: int):
        super().__init__()
        dilations = [dilation_growth_rate ** i for i in range(depth)][::-1]
        self.model = nn.Sequential(*[ResConv1DBlock(channels, d) for d in dilations])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


class Encoder(nn.Module):
    """Normalised features (B, nfeats, T) -> latents (B, code_dim, T / 2 ** down_t).

    ``model``: 0 conv 3, 1 ReLU, 2.. one (stride-2 conv 4, Resnet1D) per down_t step, last conv 3.
    """

    def __init__(self, config: TokenizerConfig):
        super().__init__()
        width = config.width
        layers: list[nn.Module] = [nn.Conv1d(config.nfeats, width, 3, padding=1), nn.ReLU()]
        for _ in range(config.down_t):
            layers.append(nn.Sequential(
                nn.Conv1d(width, width, kernel_size=4, stride=2, padding=1),
                Resnet1D(width, config.depth, config.dilation_growth_rate),
            ))
        layers.append(nn.Conv1d(width, config.output_emb_width, 3, padding=1))
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


class Decoder(nn.Module):
    """Codebook rows (B, code_dim, N) -> normalised features (B, nfeats, N * 2 ** down_t).

    ``model``: 0 conv 3, 1 ReLU, 2.. one (Resnet1D, nearest x2 upsample, conv 3) per down_t step,
    then conv 3, ReLU, conv 3 to nfeats.
    """

    def __init__(self, config: TokenizerConfig):
        super().__init__()
        width = config.width
        layers: list[nn.Module] = [nn.Conv1d(config.output_emb_width, width, 3, padding=1), nn.ReLU()]
        for _ in range(config.down_t):
            layers.append(nn.Sequential(
                Resnet1D(width, config.depth, config.dilation_growth_rate),
                nn.Upsample(scale_factor=2, mode="nearest"),
                nn.Conv1d(width, width, 3, padding=1),
            ))
        layers += [nn.Conv1d(width, width, 3, padding=1), nn.ReLU(),
                   nn.Conv1d(width, config.nfeats, 3, padding=1)]
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


class Quantizer(nn.Module):
    """Nearest-row vector quantiser with an EMA codebook and dead-code reset (QuantizeEMAReset).

    The codebook (code_num, code_dim) is the only saved buffer. In training mode each forward
    moves every row towards the mean of the latents assigned to it (exponential moving average,
    ``mu``), and rows whose EMA count falls below 1 are replaced by random latents of the batch.
    Under torch.distributed the per-batch statistics are all-reduced and the random replacements
    come from rank 0, so every rank keeps an identical codebook.
    """

    def __init__(self, code_num: int, code_dim: int, mu: float = 0.99):
        super().__init__()
        self.code_num, self.code_dim, self.mu = code_num, code_dim, mu
        self.register_buffer("codebook", torch.zeros(code_num, code_dim))
        # EMA state: not part of the released weights, saved in training checkpoints instead.
        self.register_buffer("code_sum", torch.zeros(code_num, code_dim), persistent=False)
        self.register_buffer("code_count", torch.zeros(code_num), persistent=False)
        self.register_buffer("initialised", torch.zeros((), dtype=torch.bool), persistent=False)

    def ema_state(self) -> dict[str, torch.Tensor]:
        """The EMA statistics a resumed training run needs (CPU tensors)."""
        return {"code_sum": self.code_sum.cpu(), "code_count": self.code_count.cpu(),
                "initialised": self.initialised.cpu()}

    def load_ema_state(self, state: dict[str, torch.Tensor]) -> None:
        for name in ("code_sum", "code_count", "initialised"):
            getattr(self, name).copy_(state[name])

    def nearest(self, latents: torch.Tensor) -> torch.Tensor:
        """(M, code_dim) latents -> (M,) int64 index of the nearest codebook row (squared L2)."""
        codebook = self.codebook.to(latents.dtype)
        distance = (latents.pow(2).sum(-1, keepdim=True) - 2 * latents @ codebook.t()
                    + codebook.pow(2).sum(-1)[None])
        return distance.argmin(dim=-1)

    def lookup(self, tokens: torch.Tensor) -> torch.Tensor:
        """(...,) int64 tokens -> (..., code_dim) codebook rows."""
        return F.embedding(tokens, self.codebook)

    def _random_rows(self, latents: torch.Tensor) -> torch.Tensor:
        """code_num rows drawn from the latents (tiled with small noise when there are fewer)."""
        count = latents.shape[0]
        if count < self.code_num:
            repeats = math.ceil(self.code_num / count)
            latents = latents.repeat(repeats, 1)
            latents = latents + torch.randn_like(latents) * (0.01 / math.sqrt(self.code_dim))
        rows = latents[: self.code_num].contiguous()
        if _distributed():
            torch.distributed.broadcast(rows, src=0)
        return rows

    @torch.no_grad()
    def _initialise(self, latents: torch.Tensor) -> None:
        """First training batch: the codebook starts as (rank 0's) latents, each with count 1."""
        rows = self._random_rows(latents)
        self.codebook.copy_(rows)
        self.code_sum.copy_(rows)
        self.code_count.fill_(1.0)
        self.initialised.fill_(True)

    @torch.no_grad()
    def _update(self, latents: torch.Tensor, tokens: torch.Tensor) -> None:
        """One EMA step towards the batch means (all ranks' latents), resetting dead rows."""
        onehot = F.one_hot(tokens, self.code_num).to(latents.dtype)      # (M, code_num)
        batch_sum = onehot.t() @ latents                                   # (code_num, code_dim)
        batch_count = onehot.sum(0)
        if _distributed():
            torch.distributed.all_reduce(batch_sum)
            torch.distributed.all_reduce(batch_count)
        random_rows = self._random_rows(latents)
        self.code_sum.mul_(self.mu).add_(batch_sum, alpha=1 - self.mu)
        self.code_count.mul_(self.mu).add_(batch_count, alpha=1 - self.mu)
        used = (self.code_count >= 1.0).unsqueeze(1).to(latents.dtype)
        means = self.code_sum / self.code_count.clamp_min(1e-12).unsqueeze(1)
        self.codebook.copy_(used * means + (1 - used) * random_rows)

    def forward(self, latents: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(B, code_dim, N) latents -> (quantised (B, code_dim, N) with straight-through gradient,
        commitment loss (scalar), tokens (B, N) int64)."""
        batch, dim, count = latents.shape
        flat = latents.permute(0, 2, 1).reshape(-1, dim)
        if self.training and not bool(self.initialised):
            self._initialise(flat.detach())
        tokens = self.nearest(flat.detach())
        quantised = self.lookup(tokens)
        if self.training:
            self._update(flat.detach(), tokens)
        commitment = F.mse_loss(flat, quantised.detach())
        quantised = flat + (quantised - flat).detach()
        quantised = quantised.view(batch, count, dim).permute(0, 2, 1)
        return quantised, commitment, tokens.view(batch, count)


def _distributed() -> bool:
    return torch.distributed.is_available() and torch.distributed.is_initialized()


def codebook_usage(tokens: torch.Tensor | np.ndarray, code_num: int) -> dict[str, float]:
    """Perplexity (exp of the entropy of the token histogram) and number of distinct codes used."""
    tokens = torch.as_tensor(np.asarray(tokens) if isinstance(tokens, np.ndarray) else tokens)
    counts = torch.bincount(tokens.reshape(-1).long().cpu(), minlength=code_num).double()
    prob = counts / counts.sum().clamp_min(1.0)
    perplexity = torch.exp(-(prob * torch.log(prob + 1e-7)).sum()).item()
    return {"perplexity": perplexity, "used_codes": int((counts > 0).sum())}


# ----------------------------------------------------------------------------- the tokenizer

class MotionTokenizer(nn.Module):
    """MotionGPT's VQ-VAE with its normalisation statistics.

    ``encode(motion or (T, 263) features) -> (T // 4,) int64 tokens``;
    ``decode(tokens) -> Motion`` at 20 fps with 4 frames per token. Weights load from / save to a
    model folder (``from_pretrained`` / ``save_pretrained``).
    """

    def __init__(self, config: TokenizerConfig | None = None, normalizer: Normalizer | None = None):
        super().__init__()
        self.config = config or TokenizerConfig()
        self.encoder = Encoder(self.config)
        self.quantizer = Quantizer(self.config.code_num, self.config.code_dim)
        self.decoder = Decoder(self.config)
        if normalizer is None and self.config.nfeats == FEATURE_DIM:
            normalizer = Normalizer(np.zeros(FEATURE_DIM), np.ones(FEATURE_DIM), source="identity statistics")
        # The numpy / Motion API needs HumanML3D statistics; other nfeats use the tensor paths only.
        self.normalizer = normalizer

    # -- raw tensor paths (normalised features)
    def forward(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Training pass. features (B, T, nfeats) normalised, T a multiple of frames_per_token ->
        (reconstruction (B, T, nfeats), commitment loss, tokens (B, T / frames_per_token))."""
        latents = self.encoder(features.permute(0, 2, 1))
        quantised, commitment, tokens = self.quantizer(latents)
        reconstruction = self.decoder(quantised).permute(0, 2, 1)
        return reconstruction, commitment, tokens

    @torch.no_grad()
    def encode_normalized(self, features: torch.Tensor) -> torch.Tensor:
        """(B, T, nfeats) normalised features -> (B, T // frames_per_token) int64 tokens."""
        latents = self.encoder(features.permute(0, 2, 1))
        batch, dim, count = latents.shape
        tokens = self.quantizer.nearest(latents.permute(0, 2, 1).reshape(-1, dim))
        return tokens.view(batch, count)

    @torch.no_grad()
    def decode_normalized(self, tokens: torch.Tensor) -> torch.Tensor:
        """(B, N) int64 tokens -> (B, N * frames_per_token, nfeats) normalised features."""
        rows = self.quantizer.lookup(tokens).permute(0, 2, 1)
        return self.decoder(rows).permute(0, 2, 1)

    @property
    def device(self) -> torch.device:
        return self.quantizer.codebook.device

    # -- numpy / Motion API
    def _features_of(self, item: Motion | np.ndarray, name: str) -> np.ndarray:
        """Un-normalised (T, nfeats) features of a Motion or a feature array, cut to whole tokens."""
        if isinstance(item, Motion):
            with np.errstate(invalid="ignore", divide="ignore"):   # a degenerate pose: refused just below
                features = item.to_features()
            if not np.isfinite(features).all():
                frame = int(np.argwhere(~np.isfinite(features))[0][0])
                raise MotionError(f"{name}: its features are not finite (first at frame {frame}): the pose cannot "
                                  "be turned into features (a degenerate skeleton: joints at one point, or hips and "
                                  "shoulders that give no facing direction)")
        else:
            array = np.asarray(item)
            if array.ndim != 2 or array.shape[1] != self.config.nfeats:
                raise MotionError(f"{name}: expected an engine.Motion or a (T, {self.config.nfeats}) "
                                  f"feature array, got shape {array.shape}")
            features = validate_features(array, name) if self.config.nfeats == FEATURE_DIM else array
        step = self.config.frames_per_token
        usable = len(features) // step * step
        if usable == 0:
            raise MotionError(f"{name}: {len(features)} feature frames is too short; at least {step} are "
                              f"needed for one token")
        return np.asarray(features[:usable], dtype=np.float32)

    def _check_tokens(self, tokens: np.ndarray | Sequence[int] | torch.Tensor, name: str) -> np.ndarray:
        if isinstance(tokens, torch.Tensor):
            tokens = tokens.detach().cpu().numpy()
        array = np.asarray(tokens)
        if array.ndim != 1 or array.size == 0:
            raise MotionError(f"{name}: expected a non-empty 1-D sequence of tokens, got shape {array.shape}")
        if array.dtype.kind not in "iu":
            if array.dtype.kind == "f" and np.isfinite(array).all() and (array == np.round(array)).all():
                array = array.astype(np.int64)
            else:
                raise MotionError(f"{name}: tokens must be integers, got dtype {array.dtype}")
        bad = (array < 0) | (array >= self.config.code_num)
        if bad.any():
            index = int(np.argmax(bad))
            raise MotionError(f"{name}: token {int(array[index])} at position {index} is outside the "
                              f"codebook [0, {self.config.code_num - 1}]")
        return array.astype(np.int64)

    def encode(self, motion: Motion | np.ndarray) -> np.ndarray:
        """A Motion, or un-normalised (T, 263) features, -> (T // 4,) int64 tokens.

        A Motion is turned into features first (T - 1 rows at 20 fps). Trailing frames beyond a
        multiple of 4 are dropped, as in MotionGPT's data pipeline.
        """
        return self.encode_batch([motion])[0]

    def encode_batch(self, motions: Sequence[Motion | np.ndarray]) -> list[np.ndarray]:
        """Encode several clips of any lengths; returns one int64 token array per clip.

        Clips are grouped by length so that the result equals encoding each clip alone (zero
        padding would leak into the convolutions' edges).
        """
        if isinstance(motions, (Motion, np.ndarray)) or len(motions) == 0:
            raise MotionError("encode_batch expects a non-empty list of Motions or feature arrays")
        self._require_normalizer()
        features = [self._features_of(item, f"motion {i}") for i, item in enumerate(motions)]
        results: list[np.ndarray | None] = [None] * len(features)
        self.eval()
        for length, indices in _group_by_length([len(f) for f in features]).items():
            batch = np.stack([self.normalizer.normalize(features[i]) for i in indices])
            tokens = self.encode_normalized(torch.from_numpy(batch).to(self.device, self._dtype()))
            for row, i in zip(tokens.cpu().numpy(), indices):
                results[i] = row.astype(np.int64)
        return results  # type: ignore[return-value]

    def decode_features(self, tokens: np.ndarray | Sequence[int]) -> np.ndarray:
        """(N,) tokens -> un-normalised (4N, 263) float32 features."""
        return self.decode_features_batch([tokens])[0]

    def decode_features_batch(self, token_lists: Sequence[np.ndarray | Sequence[int]]) -> list[np.ndarray]:
        """Several token sequences (any lengths) -> one (4N, 263) feature array each."""
        if isinstance(token_lists, np.ndarray) and token_lists.ndim == 1 or len(token_lists) == 0:
            raise MotionError("decode_batch expects a non-empty list of token sequences")
        self._require_normalizer()
        checked = [self._check_tokens(t, f"tokens {i}") for i, t in enumerate(token_lists)]
        results: list[np.ndarray | None] = [None] * len(checked)
        self.eval()
        for length, indices in _group_by_length([len(t) for t in checked]).items():
            batch = torch.from_numpy(np.stack([checked[i] for i in indices])).to(self.device)
            features = self.decode_normalized(batch).float().cpu().numpy()
            for row, i in zip(features, indices):
                results[i] = self.normalizer.denormalize(row)
        return results  # type: ignore[return-value]

    def decode(self, tokens: np.ndarray | Sequence[int]) -> Motion:
        """(N,) int64 tokens -> Motion of 4N frames at 20 fps."""
        return self.decode_batch([tokens])[0]

    def decode_batch(self, token_lists: Sequence[np.ndarray | Sequence[int]]) -> list[Motion]:
        """Several token sequences (any lengths) -> one Motion each (4N frames, 20 fps)."""
        return [Motion.from_features(f, MODEL_FPS) for f in self.decode_features_batch(token_lists)]

    def _require_normalizer(self) -> None:
        if self.normalizer is None:
            raise MotionError(f"this tokenizer has nfeats {self.config.nfeats} and no HumanML3D statistics; "
                              "use encode_normalized / decode_normalized")

    def _dtype(self) -> torch.dtype:
        return self.quantizer.codebook.dtype

    @staticmethod
    def weight_shapes(config: TokenizerConfig, source: str = "tokenizer config") -> dict[str, tuple[int, ...]]:
        """key -> shape of the weights a tokenizer of ``config`` has (built on the meta device);
        MotionError naming ``source`` when they are more than MAX_PARAMETERS values."""
        shapes = meta_shapes(lambda: MotionTokenizer(config), source)
        check_parameter_count(shapes, source, f"code_num {config.code_num}, code_dim {config.code_dim}, width "
                                              f"{config.width}, depth {config.depth}, down_t {config.down_t}")
        return shapes

    # -- model folders
    @classmethod
    def from_pretrained(cls, path: str | Path = "default", device: str | torch.device | None = None
                        ) -> "MotionTokenizer":
        """Load a model folder (config.json, model.safetensors, mean.npy, std.npy); "default" is the
        bundled ``assets/models/default/tokenizer``. Runs on CUDA when present unless ``device``."""
        from .checkpoint import load_safetensors

        device = resolve_device(device)
        if str(path) == "default":
            folder = DEFAULT_FOLDER
            if not (folder / WEIGHTS_NAME).is_file():
                raise MotionError(f"the default motion tokenizer is not built yet: {folder} has no "
                                  f"{WEIGHTS_NAME} (train one with `python -m engine.training tokenizer` or "
                                  f"convert the official model with `python -m engine convert-motiongpt`)")
        else:
            folder = Path(path)
        if not folder.is_dir():
            raise MotionError(f"{folder}: tokenizer folder does not exist")
        config_path, weights_path = folder / CONFIG_NAME, folder / WEIGHTS_NAME
        for required in (config_path, weights_path):
            if not required.is_file():
                raise MotionError(f"{required}: missing file (a tokenizer folder needs {CONFIG_NAME}, "
                                  f"{WEIGHTS_NAME}, mean.npy and std.npy)")
        config = TokenizerConfig.from_dict(read_config(config_path), source=str(config_path))
        check_layout(safetensors_layout(weights_path), cls.weight_shapes(config, str(config_path)), str(weights_path))
        normalizer = Normalizer.load(folder)
        if normalizer.mean.shape[0] != config.nfeats:
            raise MotionError(f"{folder}/mean.npy: {normalizer.mean.shape[0]} channels, config says "
                              f"nfeats {config.nfeats}")
        state = load_safetensors(weights_path)
        model = cls(config, normalizer)
        model.load_weights(state, source=str(weights_path))
        model.to(device).eval()
        return model

    def load_weights(self, state: dict[str, torch.Tensor], source: str = "state_dict") -> None:
        """Copy a state_dict (keys as ``state_dict()``; float32, float16 or bfloat16) into the model,
        exactly: missing, unexpected or wrongly shaped entries, other dtypes and NaN or infinite
        values are a MotionError naming ``source`` and the key."""
        expected = {key: tuple(value.shape) for key, value in self.state_dict().items()}
        check_layout(tensor_layout(state), expected, source)
        check_finite(state, source)
        self.load_state_dict({k: v.float() for k, v in state.items()}, strict=True)

    def save_pretrained(self, path: str | Path, dtype: torch.dtype = torch.float32) -> Path:
        """Write config.json, model.safetensors (float32, or float16 for shipping) and mean/std."""
        from safetensors.torch import save_file

        folder = Path(path)
        folder.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().to("cpu", dtype).contiguous() for k, v in self.state_dict().items()}
        save_file(state, str(folder / WEIGHTS_NAME), metadata={"format": "pt"})
        config = self.config.to_dict()
        config["torch_dtype"] = str(dtype).removeprefix("torch.")
        (folder / CONFIG_NAME).write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
        if self.normalizer is not None:
            self.normalizer.save(folder)
        return folder


def _group_by_length(lengths: Sequence[int]) -> dict[int, list[int]]:
    groups: dict[int, list[int]] = {}
    for index, length in enumerate(lengths):
        groups.setdefault(length, []).append(index)
    return groups


def resolve_device(device: str | torch.device | None = None) -> torch.device:
    """``device`` checked against this machine: "cpu"; "cuda" or "cuda:N" where torch has CUDA and
    N is below the GPU count; "mps" on Apple GPUs. None: CUDA when available, else the CPU.
    Anything else ("meta", "nonsense", "cuda" without a GPU) is a MotionError that lists the
    devices this machine has."""
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if not isinstance(device, (str, torch.device)):
        raise MotionError(f"device must be a name such as 'cpu' or 'cuda', got {type(device).__name__} {show(device)}")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        resolved = None
    if resolved is not None and resolved.type == "cpu":
        return torch.device("cpu")
    if resolved is not None and resolved.type == "cuda" and torch.cuda.is_available() \
            and (resolved.index or 0) < torch.cuda.device_count():
        return resolved
    if resolved is not None and resolved.type == "mps" and torch.backends.mps.is_available() and not resolved.index:
        return resolved
    reason = "is not a device name" if resolved is None else "is not available on this machine"
    if resolved is not None and resolved.type == "cuda" and not torch.cuda.is_available():
        reason += " (this torch has no CUDA)" if torch.version.cuda is None else " (no CUDA GPU found)"
    raise MotionError(f"device {show(str(device))} {reason}; this machine has: {', '.join(available_devices())}")


def available_devices() -> list[str]:
    """The device names ``resolve_device`` accepts here, e.g. ["cpu", "cuda", "cuda:0"]."""
    names = ["cpu"]
    if torch.cuda.is_available():
        names += ["cuda"] + [f"cuda:{index}" for index in range(torch.cuda.device_count())]
    if torch.backends.mps.is_available():
        names.append("mps")
    return names
