"""``engine.MotionGPT``: the four tasks of MotionGPT as plain methods.

    mg = MotionGPT.from_pretrained("default" | folder | "owner/repo")
    mg.text_to_motion("a person jumps", seconds=4, seed=0)    -> Motion (20 fps, canonical placement)
    mg.describe(motion)                                        -> str
    mg.predict(motion, seconds=2)                              -> the given frames + 2 s more
    mg.inbetween(before, after, frames=30, text=None)          -> exactly 30 new frames

A model folder holds ``tokenizer/`` (MotionTokenizer), ``lm/`` (T5 + text tokenizer with the
motion tokens), ``config.json`` (``MotionGPTConfig``) and ``MODEL_CARD.md``; the converted
official checkpoint (engine/convert.py) is such a folder too. ``from_pretrained`` checks the
device (``tokenizer.resolve_device``) and every config file of the folder (``check_model_folder``:
types, bounds, the total size; engine/configs.py) before anything is built, and each part's
weights against its config (engine/checkpoint.py). Motion inputs of every task pass ``as_motion``
(finite (T, 22, 3) joints, not a degenerate skeleton).

Geometry of predict / in-between. Decoded motion starts at the origin facing +Z. The context is
encoded from a window of ``4 L + 1`` frames that ends at the last frame before the gap (its
4 L feature rows give L codes); decoded frame ``4 L`` is then the model's version of that last
given frame (the "anchor"). The generated frames are turned about Y and moved on the ground so
that the anchor's heading and root position match the given pose, lifted to the given window's
floor, and the remaining per-joint difference at the anchor is added to the generated frames
with a weight falling from 1 to 0 (raised cosine over ``blend_frames``). In-between does this at
both ends (the after context's first frame is the second anchor) and cross-fades between the two
placements along the gap; the curve therefore passes exactly through both boundary poses.
"""
from __future__ import annotations

import json
import math
import os
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from .formats.bone_maps import assets_dir
from .configs import MAX_PARAMETERS, Rule, check_values, flag, integer, one_of, optional, read_config, show, text
from .errors import MotionError
from .lm import SAMPLING_RULES
from .motion import MODEL_FPS, Motion, check_skeleton

DEFAULT_MODEL = assets_dir() / "models" / "default"  # $MOTIONGPT_ASSETS moves it
CONFIG_NAME = "config.json"
MODEL_TYPE = "motiongpt"
REPO_ID_PATTERN = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
SHORT_GAP_FRAMES = 4  # gaps below one token (4 frames) are interpolated, not generated
MAX_SECONDS = 60.0    # longest text-to-motion clip, prediction or in-between gap (the add-on's limit too)
MAX_TOKENS = 1024     # bound of every token count in config.json (MotionGPT: 49 motion tokens, 256-token prompts)
MAX_SAMPLES = 64      # text_to_motion_samples: generations per request


@dataclass
class MotionGPTConfig:
    """What a model folder is and how it is prompted; written as the folder's config.json."""

    model_type: str = MODEL_TYPE
    prompt_style: str = "motiongpt"       # the prompts of MotionGPT (notes §4)
    name: str = "MotionGPT"
    fps: float = MODEL_FPS
    frames_per_token: int = 4
    max_motion_tokens: int = 49           # longest trained motion: 196 frames (9.8 s)
    min_motion_tokens: int = 2            # shortest free-length text-to-motion result (8 frames)
    predict_context_tokens: int = 10      # codes of the given motion shown to "Predict motion"
    inbetween_context_tokens: int = 8     # codes on each side shown to "Complete the masked motion"
    top_k: int = 50
    temperature: float = 1.0
    # temperature of the "Predict motion" steps (Continue, and the chained steps that lengthen a
    # clip past max_motion_tokens); None: ``temperature``. A continuation is judged against what
    # really followed, so it is sampled nearer the likeliest codes than a new motion is.
    predict_temperature: float | None = None
    caption_max_tokens: int = 40
    max_prompt_tokens: int = 256
    steered_inbetween: bool = False       # trained on our "... in which <caption>: " prompt
    blend_frames: int = 10                # frames over which boundary offsets fade out
    # text-to-motion samples per request; the one nearest the caption in the text side's
    # contrastive embedding is kept (MotionLanguageModel.closest_motions). 1, or no text side: one.
    text_to_motion_samples: int = 1

    def __post_init__(self) -> None:
        self.check(asdict(self), "config")

    @staticmethod
    def check(values: dict, source: str) -> None:
        """MotionError naming ``source``, the key and the value when a setting has the wrong type or
        is out of range (CONFIG_RULES), or the context tokens leave no room to generate."""
        if "model_type" in values and values["model_type"] != MODEL_TYPE:
            raise MotionError(f"{source}: model_type is {show(values['model_type'])}, expected {MODEL_TYPE!r}")
        if "prompt_style" in values and values["prompt_style"] != "motiongpt":
            raise MotionError(f"{source}: prompt_style {show(values['prompt_style'])} is not supported "
                              "(only 'motiongpt')")
        check_values(values, CONFIG_RULES, source)
        defaults = MotionGPTConfig.__dataclass_fields__
        maximum = values.get("max_motion_tokens", defaults["max_motion_tokens"].default)
        for key, factor in (("predict_context_tokens", 1), ("inbetween_context_tokens", 2)):
            context = values.get(key, defaults[key].default)
            if factor * context >= maximum:
                raise MotionError(f"{source}: {key} {context} must leave room for generated tokens: "
                                  f"{'2 x ' if factor == 2 else ''}{key} must be below max_motion_tokens {maximum}")

    def prediction_temperature(self) -> float:
        """The temperature of "Predict motion" steps: ``predict_temperature``, else ``temperature``."""
        return self.temperature if self.predict_temperature is None else self.predict_temperature

    @classmethod
    def from_dict(cls, values: dict, source: str = "config") -> "MotionGPTConfig":
        """Build from config.json's values, checked first (``check``: MotionError naming ``source``)."""
        if not isinstance(values, dict):
            raise MotionError(f"{source}: expected a JSON object")
        cls.check(values, source)
        return cls(**values)

    def save(self, folder: Path) -> None:
        (Path(folder) / CONFIG_NAME).write_text(json.dumps(asdict(self), indent=2) + "\n", encoding="utf-8")


def _tokens(low: int = 1) -> Rule:
    return integer(low, MAX_TOKENS)


# The type and range of every MotionGPTConfig field (model_type and prompt_style are checked by name).
CONFIG_RULES = {
    "model_type": one_of(MODEL_TYPE), "prompt_style": one_of("motiongpt"), "name": text(),
    "fps": Rule(f"{MODEL_FPS:g} (the engine's frame rate)",
                lambda v: isinstance(v, (int, float)) and not isinstance(v, bool) and v == MODEL_FPS),
    "frames_per_token": integer(1, 64), "max_motion_tokens": _tokens(2), "min_motion_tokens": _tokens(),
    "predict_context_tokens": _tokens(), "inbetween_context_tokens": _tokens(),
    **SAMPLING_RULES, "predict_temperature": optional(SAMPLING_RULES["temperature"]),
    "caption_max_tokens": _tokens(), "max_prompt_tokens": integer(1, 4096), "steered_inbetween": flag(),
    "blend_frames": integer(1, int(MAX_SECONDS * MODEL_FPS)), "text_to_motion_samples": integer(1, MAX_SAMPLES),
}


# ----------------------------------------------------------------------------- geometry

def heading_angles(joints: np.ndarray) -> np.ndarray:
    """Yaw (radians about +Y) of the facing of each pose of joints (..., 22, 3), from the hips
    and shoulders; 0 = facing +Z, growing as the person turns to their left. Shape (...)."""
    joints = np.asarray(joints, dtype=np.float64)
    across = (joints[..., 2, :] - joints[..., 1, :]) + (joints[..., 17, :] - joints[..., 16, :])
    return np.arctan2(across[..., 2], -across[..., 0])          # forward = up x across = (az, 0, -ax)


def heading_angle(pose: np.ndarray) -> float:
    """Yaw (radians about +Y) of a (22, 3) pose's facing direction; 0 = facing +Z."""
    return float(heading_angles(pose))


def rotate_about_y(points: np.ndarray, angle) -> np.ndarray:
    """Turn (..., 3) points by ``angle`` radians about +Y (a heading of 0 becomes ``angle``); an
    array of angles turns each leading index by its own ((T,) angles for (T, J, 3) points)."""
    angle = np.asarray(angle, dtype=np.float64)
    angle = angle.reshape(angle.shape + (1,) * (np.ndim(points) - 1 - angle.ndim))
    c, s = np.cos(angle), np.sin(angle)
    out = np.array(points, dtype=np.float64, copy=True)
    x, z = out[..., 0].copy(), out[..., 2].copy()
    out[..., 0] = c * x + s * z
    out[..., 2] = -s * x + c * z
    return out


def place_on(joints: np.ndarray, anchor: int, target: np.ndarray, floor: float) -> np.ndarray:
    """Yaw + ground-plane move of ``joints`` (T, 22, 3) so that frame ``anchor`` has ``target``'s
    heading and root X/Z; Y is lifted by ``floor`` (decoded motion stands on y = 0)."""
    turn = heading_angle(target) - heading_angle(joints[anchor])
    pivot = joints[anchor, 0] * np.array([1.0, 0.0, 1.0])
    placed = rotate_about_y(joints - pivot, turn)
    placed[..., 0] += target[0, 0]
    placed[..., 2] += target[0, 2]
    placed[..., 1] += floor
    return placed


def raised_cosine(offsets: np.ndarray, width: int) -> np.ndarray:
    """1 at offset 0 falling smoothly to 0 at ``width`` and beyond."""
    x = np.clip(np.asarray(offsets, dtype=np.float64) / max(width, 1), 0.0, 1.0)
    return 0.5 * (1.0 + np.cos(np.pi * x))


def smoothstep(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3.0 - 2.0 * x)


def resample_curve(joints: np.ndarray, start: float, stop: float, count: int) -> np.ndarray:
    """``count`` evenly spaced samples (linear interpolation) of ``joints`` between fractional
    frame indices ``start`` and ``stop``, both ends included."""
    times = np.linspace(start, stop, count)
    lower = np.clip(np.floor(times).astype(int), 0, len(joints) - 1)
    upper = np.clip(lower + 1, 0, len(joints) - 1)
    weight = (times - lower)[:, None, None]
    return joints[lower] * (1.0 - weight) + joints[upper] * weight


def hermite_gap(before: np.ndarray, after: np.ndarray, frames: int) -> np.ndarray:
    """Cubic Hermite interpolation of every joint from before[-1] to after[0] with the contexts'
    end velocities (zero for a one-frame context). Returns frames + 2 samples, ends included."""
    start, end = before[-1].astype(np.float64), after[0].astype(np.float64)
    v0 = before[-1] - before[-2] if len(before) > 1 else np.zeros_like(start)
    v1 = after[1] - after[0] if len(after) > 1 else np.zeros_like(end)
    span = frames + 1
    s = np.linspace(0.0, 1.0, frames + 2)[:, None, None]
    h00, h10 = 2 * s ** 3 - 3 * s ** 2 + 1, s ** 3 - 2 * s ** 2 + s
    h01, h11 = -2 * s ** 3 + 3 * s ** 2, s ** 3 - s ** 2
    return h00 * start + h10 * span * v0 + h01 * end + h11 * span * v1


# ----------------------------------------------------------------------------- argument checks

def as_motion(value, name: str) -> Motion:
    """A Motion at 20 fps from a Motion or a (T, 22, 3) joint array of numbers (taken as 20 fps),
    checked for every task: finite (``Motion``) and not degenerate (``check_skeleton``: joints at
    one point, zero-length bones). The one check of the motion inputs describe, predict and
    in-between share."""
    if isinstance(value, Motion):
        motion = value.resample(MODEL_FPS)
    elif isinstance(value, np.ndarray):
        if value.ndim != 3 or value.shape[1:] != (22, 3):
            raise MotionError(f"{name}: expected an engine.Motion or (T, 22, 3) joints, got an array of shape "
                              f"{value.shape}")
        if value.dtype.kind not in "fiu":
            raise MotionError(f"{name}: joints must be numbers, got an array of {value.dtype}")
        motion = Motion(value, MODEL_FPS)
    else:
        raise MotionError(f"{name}: expected an engine.Motion, got {type(value).__name__}")
    check_skeleton(motion.joints, name)
    return motion


def frames_of(seconds, name: str = "seconds", fps: float = MODEL_FPS) -> int:
    """A duration in seconds (0 < seconds <= MAX_SECONDS) -> frames at ``fps`` (rounded, at least 1)."""
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float, np.integer, np.floating)):
        raise MotionError(f"{name} must be a number of seconds, got {type(seconds).__name__} {seconds!r}")
    if not math.isfinite(float(seconds)) or float(seconds) <= 0:
        raise MotionError(f"{name} must be a positive number of seconds, got {seconds!r}")
    if float(seconds) > MAX_SECONDS:
        raise MotionError(f"{name} {seconds!r} is longer than the limit of {MAX_SECONDS:g} seconds")
    frames = int(round(float(seconds) * fps))
    if frames < 1:
        raise MotionError(f"{name} {seconds!r} is shorter than one frame at {fps:g} fps")
    return frames


def check_seed(seed, name: str = "seed") -> int | None:
    if seed is None:
        return None
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise MotionError(f"{name} must be a non-negative integer or None, got {seed!r}")
    return int(seed)


def derived_seed(seed: int | None, step: int) -> int | None:
    """The seed of the ``step``-th generation call made for one request (steps from
    SAMPLE_STEP on: the further text-to-motion samples of ``text_to_motion_samples``)."""
    return None if seed is None else (seed + 7919 * step) % (2 ** 62)


SAMPLE_STEP = 1000      # sample j > 0 of a request is seeded with derived_seed(seed, SAMPLE_STEP + j)


# ----------------------------------------------------------------------------- the model

class MotionGPT:
    """Text-to-motion, captioning, prediction and in-between with one T5 + the motion tokenizer."""

    def __init__(self, tokenizer, lm, config: MotionGPTConfig | None = None, folder: Path | None = None):
        self.tokenizer, self.lm = tokenizer, lm
        self.config = config or MotionGPTConfig()
        self.folder = folder
        if tokenizer.config.frames_per_token != self.config.frames_per_token:
            raise MotionError(f"{folder}: the tokenizer has {tokenizer.config.frames_per_token} frames per token, "
                              f"config.json says {self.config.frames_per_token}")

    # -- loading and saving
    @classmethod
    def from_pretrained(cls, source: str | Path = "default", device=None,
                        quantize: str | bool | None = None) -> "MotionGPT":
        """Load "default" (assets/models/default), a model folder, or a hub repo id (downloaded
        with huggingface_hub into its cache; HF_HUB_OFFLINE=1 uses the cache only).

        ``quantize`` (motion generation on the CPU, engine/decoding.py): "auto" (default; int8
        weights where the model's layers are big enough for int8 to be faster, e.g. flan-t5-base
        size; the bundled model stays float32), "int8" (always), "none" / False (float32, tokens
        identical to transformers' generate). None reads $MOTIONGPT_QUANTIZE, else "auto"."""
        from .decoding import resolve_quantize
        from .lm import MotionLanguageModel
        from .tokenizer import MotionTokenizer, resolve_device

        folder = resolve_model_folder(source)
        device = resolve_device(device)
        resolve_quantize(quantize)
        config = check_model_folder(folder)
        tokenizer = MotionTokenizer.from_pretrained(folder / "tokenizer", device=device)
        lm = MotionLanguageModel.from_pretrained(folder / "lm", tokenizer.config.code_num, device=device,
                                                 quantize=quantize)
        lm.max_prompt_tokens = config.max_prompt_tokens
        return cls(tokenizer, lm, config, folder)

    def save_pretrained(self, folder: str | Path, half: bool = False, model_card: str | None = None) -> Path:
        """Write tokenizer/, lm/, config.json and MODEL_CARD.md (float16 weights with ``half``)."""
        import torch
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        dtype = torch.float16 if half else torch.float32
        self.tokenizer.save_pretrained(folder / "tokenizer", dtype=dtype)
        self.lm.save_pretrained(folder / "lm", dtype=dtype)
        self.config.save(folder)
        (folder / "MODEL_CARD.md").write_text(model_card or default_model_card(self), encoding="utf-8")
        return folder

    # -- text to motion
    def read_as(self, text: str) -> str:
        """The caption as the model reads it: with a pretrained text side, after the lexicon's
        rewrites of unknown words (``engine.text.lexicon``: "a man perambulates" -> "a man walks") and,
        when unknown words remain, as its nearest label (``engine.text.reading``: "a cowboy walks into
        the saloon" -> "a person walks forward"); otherwise ``text`` itself."""
        side = self.lm.text_side
        return side.normalise(text) if side is not None else text

    def reading_of(self, texts: str | Sequence[str]):
        """How the model reads a prompt (a list: each prompt, judged as one batch): an
        ``engine.text.reading.Reading`` with the caption as read (``read_as``), the words that carry its
        action, their best label score and, when the model knows no such motion, its ``notice``
        ("this model knows no motion for 'crawls on all fours'; generated 'a person walks
        backward', its nearest"). Official weights (no text side) judge nothing: no notice."""
        from .text.reading import Reading
        many = not isinstance(texts, str)
        texts = list(texts) if many else [texts]
        side = self.lm.text_side
        readings = side.readings_of(texts) if side is not None else [Reading(t, t, t) for t in texts]
        return readings if many else readings[0]

    def unknown_action(self, text: str) -> str | None:
        """The one-line notice for a prompt whose action this model does not know, else None."""
        return self.reading_of(text).notice

    def text_to_motion(self, text: str, seconds: float | None = None, seed: int | None = None) -> Motion:
        """Motion (20 fps, starting at the origin facing +Z) for a caption; ``seconds`` fixes the
        length (frames = round(seconds * 20), at most MAX_SECONDS = 60 s); longer than 9.8 s is
        continued with "Predict motion". Any language works (the text tokenizer is byte-level). A
        caption too long for the prompt (``max_prompt_tokens``, 256 tokens) is cut at a token
        boundary with a ``UserWarning`` saying how much was kept; an empty one is a MotionError."""
        return self.text_to_motion_batch([text], seconds, seed)[0]

    def text_to_motion_batch(self, texts: Sequence[str], seconds: float | Sequence[float | None] | None = None,
                             seed: int | Sequence[int | None] | None = None) -> list[Motion]:
        """One Motion per caption, generated as one batch. Row i is sampled with seed ``seed + i``,
        so it equals ``text_to_motion(texts[i], seconds, seed + i)``; ``seed`` may also be a list
        of one seed (or None) per row. With a text side and ``config.text_to_motion_samples`` > 1,
        each row is sampled that many times (the first as
        with one sample) and the sample nearest its caption is kept (``closest_motions``)."""
        from .lm import T2M_LENGTH_PROMPT, T2M_PROMPT, clean_caption

        if isinstance(texts, str) or not isinstance(texts, Sequence) or len(texts) == 0:
            raise MotionError("texts must be a non-empty list of captions")
        captions = [clean_caption(t, f"text {i}" if len(texts) > 1 else "text") for i, t in enumerate(texts)]
        if isinstance(seconds, str):
            raise MotionError(f"seconds must be a number of seconds, got the string {seconds!r}")
        durations = list(seconds) if isinstance(seconds, Sequence) else [seconds] * len(captions)
        if len(durations) != len(captions):
            raise MotionError(f"seconds: {len(durations)} durations for {len(captions)} texts")
        if isinstance(seed, Sequence) and not isinstance(seed, str):
            if len(seed) != len(captions):
                raise MotionError(f"seed: {len(seed)} seeds for {len(captions)} texts")
            row_seeds = [check_seed(s, f"seed[{i}]") for i, s in enumerate(seed)]
        else:
            seed = check_seed(seed)
            row_seeds = [None if seed is None else seed + i for i in range(len(captions))]
        config, step = self.config, self.config.frames_per_token
        frames = [None if s is None else frames_of(s, f"seconds[{i}]" if len(captions) > 1 else "seconds")
                  for i, s in enumerate(durations)]
        prompts, low, high, seeds = [], [], [], []
        for i, (caption, count) in enumerate(zip(captions, frames)):
            name = f"text {i}" if len(captions) > 1 else "text"
            if count is None:
                prompts.append(self.lm.fit_prompt(T2M_PROMPT, caption, name))
                low.append(min(config.min_motion_tokens, config.max_motion_tokens))
                high.append(config.max_motion_tokens)
            else:
                codes = min(math.ceil(count / step), config.max_motion_tokens)
                prompts.append(self.lm.fit_prompt(T2M_LENGTH_PROMPT, caption, name, frames=min(count, codes * step)))
                low.append(codes)
                high.append(codes)
            seeds.append(derived_seed(row_seeds[i], 0))
        samples = config.text_to_motion_samples if self.lm.text_side is not None else 1
        if samples > 1:
            seeds = [one_sample_seed if j == 0 else derived_seed(row_seed, SAMPLE_STEP + j)
                     for one_sample_seed, row_seed in zip(seeds, row_seeds) for j in range(samples)]
            prompts, low, high = ([value for value in values for _ in range(samples)] for values in (prompts, low, high))
        with self.lm.remembering_captions():   # the captions are encoded once for both steps
            generated = self.lm.generate_motion(prompts, low, high, seeds, config.top_k, config.temperature)
            rows = [generated[i * samples:(i + 1) * samples] for i in range(len(captions))]
            kept = self.lm.closest_motions(captions, rows) if samples > 1 else [0] * len(rows)
        first = [row[index] for row, index in zip(rows, kept)]
        results = []
        for i, (codes, count) in enumerate(zip(first, frames)):
            if count is not None and len(codes) * step < count:
                codes = self._extend_codes(codes, math.ceil(count / step) - len(codes), row_seeds[i])
            # decoded one by one, so that row i is bit-equal to text_to_motion (a batched conv differs by ~1e-7)
            motion = self.tokenizer.decode(codes)
            results.append(motion if count is None else motion[:count])
        return results

    def _extend_codes(self, codes: np.ndarray, count: int, seed: int | None, first_step: int = 1) -> np.ndarray:
        """``codes`` followed by ``count`` more, chaining "Predict motion" on the last
        ``predict_context_tokens`` codes (each call adds at most max - context codes)."""
        from .lm import PREDICT_PROMPT

        config = self.config
        codes = np.asarray(codes, dtype=np.int64)
        target = len(codes) + count
        step = first_step
        while len(codes) < target:
            context = codes[-config.predict_context_tokens:]
            new = min(target - len(codes), config.max_motion_tokens - len(context))
            prompt = PREDICT_PROMPT.format(motion=self.lm.vocab.motion_string(context))
            generated = self.lm.generate_motion([prompt], [new], [new], [derived_seed(seed, step)],
                                                config.top_k, config.prediction_temperature())[0]
            codes = np.concatenate([codes, generated])
            step += 1
        return codes

    # -- motion to text
    def describe(self, motion: Motion) -> str:
        """A caption of a motion (its first 9.8 s at most), greedy, text tokens only."""
        from .lm import M2T_PROMPT

        joints = as_motion(motion, "motion").joints
        window = context_window(joints, self.config.max_motion_tokens, self.config.frames_per_token, at_end=False)
        codes = self.tokenizer.encode(Motion(window, MODEL_FPS))
        prompt = M2T_PROMPT.format(motion=self.lm.vocab.motion_string(codes))
        return self.lm.generate_text([prompt], self.config.caption_max_tokens)[0]

    # -- prediction
    def predict(self, motion: Motion, seconds: float, seed: int | None = None) -> Motion:
        """The given motion (at 20 fps, frames unchanged) followed by ``seconds`` of predicted motion
        (round(seconds * 20) new frames), placed to continue it (see the module docstring)."""
        count, seed = frames_of(seconds), check_seed(seed)        # the plain arguments first, then the motion
        given = as_motion(motion, "motion")
        new = self._continue(given.joints, count, seed)
        return Motion(np.concatenate([given.joints, new.astype(np.float32)]), MODEL_FPS)

    def _continue(self, joints: np.ndarray, count: int, seed: int | None) -> np.ndarray:
        """``count`` new frames (count, 22, 3) after ``joints``' last frame."""
        from .lm import PREDICT_PROMPT

        config, step = self.config, self.config.frames_per_token
        window = context_window(joints, config.predict_context_tokens, step, at_end=True)
        context = self.tokenizer.encode(Motion(window, MODEL_FPS))
        anchor = step * len(context)                       # decoded frame of joints[-1]
        needed = math.ceil((count + 1) / step)             # decoded frames anchor+1 .. anchor+count
        first = min(needed, config.max_motion_tokens - len(context))
        prompt = PREDICT_PROMPT.format(motion=self.lm.vocab.motion_string(context))
        generated = self.lm.generate_motion([prompt], [first], [first], [derived_seed(seed, 0)],
                                            config.top_k, config.prediction_temperature())[0]
        codes = np.concatenate([context, generated])
        if first < needed:
            codes = self._extend_codes(codes, needed - first, seed)
        decoded = self.tokenizer.decode(codes).joints.astype(np.float64)
        placed = place_on(decoded, anchor, joints[-1], floor=float(window[..., 1].min()))
        residual = joints[-1].astype(np.float64) - placed[anchor]
        fade = raised_cosine(np.arange(1, count + 1), config.blend_frames)[:, None, None]
        return placed[anchor + 1: anchor + 1 + count] + fade * residual

    # -- in-between
    def inbetween(self, before: Motion, after: Motion, frames: int, text: str | None = None,
                  seed: int | None = None, include_boundaries: bool = False) -> Motion:
        """Exactly ``frames`` new frames (20 fps) that lead from ``before``'s last frame to
        ``after``'s first (each context may be a single key pose).

        Guarantee: the fill is a curve whose first sample equals before[-1] and whose last equals
        after[0] (to float32 rounding); ``include_boundaries=True`` returns those two samples
        too (frames + 2). Concatenating [before, result, after] leaves the contexts untouched.
        Gaps under 4 frames (one token) are cubic Hermite interpolation with the contexts' end
        velocities; longer ones are generated ("Complete the masked motion"; with ``text`` our
        steered prompt) and placed at both ends; a gap too long for one generation first extends
        ``before`` with "Predict motion" and fills the rest.
        """
        from .lm import clean_caption

        if isinstance(frames, bool) or not isinstance(frames, (int, np.integer)) or frames < 1:
            raise MotionError(f"frames must be a positive integer number of new frames, got {frames!r}")
        if frames > MAX_SECONDS * MODEL_FPS:
            raise MotionError(f"frames {frames!r} is longer than the limit of {MAX_SECONDS:g} seconds "
                              f"({int(MAX_SECONDS * MODEL_FPS)} frames at 20 fps)")
        caption = None if text is None else clean_caption(text, "text")
        seed = check_seed(seed)
        before_joints = as_motion(before, "before").joints.astype(np.float64)   # after the plain arguments
        after_joints = as_motion(after, "after").joints.astype(np.float64)
        curve = self._fill(before_joints, after_joints, int(frames), caption, seed)
        curve = curve if include_boundaries else curve[1:-1]
        return Motion(curve.astype(np.float32), MODEL_FPS)

    def inbetween_many(self, gaps: Sequence[tuple], seeds: Sequence[int | None] | None = None) -> list[Motion]:
        """Several in-betweens without text, their generations in one batch: ``gaps`` is a list of
        ``(before, after, frames)`` as for ``inbetween``, gap i sampled with ``seeds[i]``. Returns one
        Motion of exactly ``frames`` new frames per gap, with ``inbetween``'s guarantee at both ends."""
        seeds = [None] * len(gaps) if seeds is None else [check_seed(s, f"seeds[{i}]") for i, s in enumerate(seeds)]
        if len(seeds) != len(gaps):
            raise MotionError(f"seeds: {len(seeds)} seeds for {len(gaps)} gaps")
        step, curves, batch = self.config.frames_per_token, [None] * len(gaps), []
        for i, (before, after, frames) in enumerate(gaps):
            if isinstance(frames, bool) or not isinstance(frames, (int, np.integer)) or not 1 <= frames <= MAX_SECONDS * MODEL_FPS:
                raise MotionError(f"gap {i}: frames must be a positive integer of at most {MAX_SECONDS:g} s, got {frames!r}")
            before = as_motion(before, f"gap {i} before").joints.astype(np.float64)
            after = as_motion(after, f"gap {i} after").joints.astype(np.float64)
            masked = max(1, round((frames + 1) / step))
            if frames < SHORT_GAP_FRAMES or masked > self.config.max_motion_tokens - 2 * self.config.inbetween_context_tokens:
                curves[i] = self._fill(before, after, int(frames), None, seeds[i])
            else:
                batch.append((i, before, after, int(frames), masked, self._gap_windows(before, after)))
        if batch:
            codes = self._generate_masked([w[2] for *_, w in batch], [m for *_, m, _ in batch],
                                          [w[3] for *_, w in batch], None, [seeds[i] for i, *_ in batch])
            for (i, before, after, frames, masked, windows), gap_codes in zip(batch, codes):
                curves[i] = self._place_gap(before, after, frames, masked, windows, gap_codes)
        return [Motion(curve[1:-1].astype(np.float32), MODEL_FPS) for curve in curves]

    def _fill(self, before: np.ndarray, after: np.ndarray, frames: int, caption: str | None,
              seed: int | None) -> np.ndarray:
        """(frames + 2, 22, 3): before[-1], the gap, after[0]."""
        config, step = self.config, self.config.frames_per_token
        if frames < SHORT_GAP_FRAMES:
            return hermite_gap(before, after, frames)
        masked = max(1, round((frames + 1) / step))
        context_tokens = config.inbetween_context_tokens
        room = config.max_motion_tokens - 2 * context_tokens
        if masked > room:  # predict the first part, fill the rest
            extra = frames - (room * step - 1)
            extension = self._continue(before, extra, derived_seed(seed, 100))
            rest = self._fill(np.concatenate([before, extension]), after, frames - extra, caption,
                              derived_seed(seed, 200))
            return np.concatenate([[before[-1]], extension, rest[1:]])
        windows = self._gap_windows(before, after)
        codes = self._generate_masked([windows[2]], [masked], [windows[3]], [caption], [seed])[0]
        return self._place_gap(before, after, frames, masked, windows, codes)

    def _gap_windows(self, before: np.ndarray, after: np.ndarray) -> tuple:
        """(window before, window after, their codes) shown to the model around a gap."""
        config, step = self.config, self.config.frames_per_token
        window_before = context_window(before, config.inbetween_context_tokens, step, at_end=True)
        window_after = context_window(after, config.inbetween_context_tokens, step, at_end=False)
        codes_before, codes_after = self.tokenizer.encode_batch([Motion(window_before, MODEL_FPS),
                                                                 Motion(window_after, MODEL_FPS)])
        return window_before, window_after, codes_before, codes_after

    def _place_gap(self, before: np.ndarray, after: np.ndarray, frames: int, masked: int, windows: tuple,
                   codes: np.ndarray) -> np.ndarray:
        """The generated codes of [before window, gap, after window] decoded and placed at both ends
        (see the module docstring): (frames + 2, 22, 3) from before[-1] to after[0]."""
        config, step = self.config, self.config.frames_per_token
        window_before, window_after, codes_before, _ = windows
        decoded = self.tokenizer.decode(codes).joints.astype(np.float64)
        first_anchor = step * len(codes_before)                      # decoded before[-1]
        last_anchor = step * (len(codes_before) + masked)            # decoded after[0]
        placed_start = place_on(decoded, first_anchor, before[-1], float(window_before[..., 1].min()))
        placed_end = place_on(decoded, last_anchor, after[0], float(window_after[..., 1].min()))
        curve_start = resample_curve(placed_start, first_anchor, last_anchor, frames + 2)
        curve_end = resample_curve(placed_end, first_anchor, last_anchor, frames + 2)
        s = np.linspace(0.0, 1.0, frames + 2)[:, None, None]
        curve = (1.0 - smoothstep(s)) * curve_start + smoothstep(s) * curve_end
        residual_start, residual_end = before[-1] - curve[0], after[0] - curve[-1]
        index = np.arange(frames + 2)
        width = min(config.blend_frames, frames + 1)
        fade_start = raised_cosine(index, width)[:, None, None]
        fade_end = raised_cosine(index[::-1], width)[:, None, None]
        curve = curve + fade_start * residual_start + fade_end * residual_end
        curve[0], curve[-1] = before[-1], after[0]   # equal already up to rounding; make it exact
        return curve

    def _generate_masked(self, before: Sequence[np.ndarray], masked: Sequence[int], after: Sequence[np.ndarray],
                         captions: Sequence[str | None] | None, seeds: Sequence[int | None]) -> list[np.ndarray]:
        """For each row, all codes of [before, masked new codes, after] (the known codes forced),
        the rows generated as one batch."""
        from .lm import INBETWEEN_PROMPT, STEERED_INBETWEEN_PROMPT

        captions = captions or [None] * len(before)
        prompts, totals = [], []
        for codes_before, count, codes_after, caption in zip(before, masked, after, captions):
            motion = self.lm.vocab.masked_string(codes_before, count, codes_after)
            prompts.append(INBETWEEN_PROMPT.format(motion=motion) if caption is None else
                           self.lm.fit_prompt(STEERED_INBETWEEN_PROMPT, caption, "text", motion=motion))
            totals.append(len(codes_before) + count + len(codes_after))
        return self.lm.generate_motion(prompts, totals, totals, [derived_seed(seed, 0) for seed in seeds],
                                       self.config.top_k, self.config.temperature, prefix_codes=list(before),
                                       suffix_codes=list(after))


def context_window(joints: np.ndarray, max_tokens: int, step: int, at_end: bool) -> np.ndarray:
    """The ``step * L + 1`` frames (L <= max_tokens codes) at the end (or start) of ``joints``;
    shorter contexts (under step + 1 frames, e.g. one key pose) are held still to step + 1 frames."""
    tokens = min(max_tokens, (len(joints) - 1) // step)
    if tokens < 1:
        pad = np.repeat(joints[:1] if at_end else joints[-1:], step + 1 - len(joints), axis=0)
        return np.concatenate([pad, joints] if at_end else [joints, pad])
    size = step * tokens + 1
    return joints[-size:] if at_end else joints[:size]


def check_model_folder(folder: Path) -> MotionGPTConfig:
    """Read and check every config file of a model folder before anything is built: config.json
    (``MotionGPTConfig``; the default one when it is absent, as in a converted official folder
    from before convert.py wrote it), tokenizer/config.json, lm/config.json and lm/text_side.json,
    each within its bounds, and the whole model under configs.MAX_PARAMETERS. Returns the
    MotionGPTConfig. A missing file inside tokenizer/ or lm/ is left to that part's loader to name."""
    from .configs import parameter_count
    from .lm import check_t5_config, t5_weight_shapes
    from .text.side import read_text_side_config
    from .tokenizer import CONFIG_NAME as TOKENIZER_CONFIG, MotionTokenizer, TokenizerConfig

    config_path = folder / CONFIG_NAME
    config = MotionGPTConfig.from_dict(read_config(config_path), str(config_path)) if config_path.exists() \
        else MotionGPTConfig(name="MotionGPT (official)")
    for part in ("tokenizer", "lm"):
        if not (folder / part).is_dir():
            raise MotionError(f"{folder}: not a MotionGPT model folder (no {part}/ inside)")
    total = 0
    tokenizer_path = folder / "tokenizer" / TOKENIZER_CONFIG
    if tokenizer_path.exists():
        tokenizer_config = TokenizerConfig.from_dict(read_config(tokenizer_path), str(tokenizer_path))
        total += parameter_count(MotionTokenizer.weight_shapes(tokenizer_config, str(tokenizer_path)))
    lm_path = folder / "lm" / "config.json"
    if lm_path.exists():
        total += parameter_count(t5_weight_shapes(check_t5_config(read_config(lm_path), str(lm_path)), str(lm_path)))
        side = read_text_side_config(folder / "lm")
        total += 0 if side is None else parameter_count(side.weight_shapes())
    if total > MAX_PARAMETERS:
        raise MotionError(f"{folder}: its tokenizer, language model and text side have {total / 1e9:.1f} billion "
                          f"parameters together, more than the limit of {MAX_PARAMETERS / 1e9:g} billion")
    return config


def resolve_model_folder(source: str | Path) -> Path:
    """"default", "official" (engine/official.py), a local folder, or a hub repo id -> a local folder."""
    if str(source) == "official":   # MotionGPT-base, converted once into HF_HOME/motiongpt-base
        from .official import ensure_official_model
        return ensure_official_model()
    if str(source) == "default":
        if not (DEFAULT_MODEL / CONFIG_NAME).is_file():
            raise MotionError(f"the bundled model is not built yet ({DEFAULT_MODEL / CONFIG_NAME} is missing); "
                              "train one (python -m engine.training lm) or pass a model folder")
        return DEFAULT_MODEL
    path = Path(source).expanduser()
    if path.is_dir():
        return path
    text = str(source)
    if path.exists() or not REPO_ID_PATTERN.match(text) or text.startswith((".", "/", "~")):
        raise MotionError(f"{text}: no such model folder (and not a hub repo id owner/name)")
    from huggingface_hub import snapshot_download
    try:
        return Path(snapshot_download(repo_id=text))
    except Exception as error:  # offline, missing repo, network: all end here
        offline = " (HF_HUB_OFFLINE is set and the model is not in the cache)" \
            if os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on") else ""
        raise MotionError(f"{text}: cannot download the model from the hub{offline}: "
                          f"{type(error).__name__}: {error}") from None


def known_actions(model) -> list[str]:
    """The actions a model knows, as the first caption of each of its readings (label captions;
    ``{hand}`` left out; each once): "a person walks forward", "a person bows", ... A MotionGPT or a
    model folder; [] for a model without readings (official weights)."""
    from .text.side import read_text_side_config
    if isinstance(model, MotionGPT):
        side = model.lm.text_side
        config = side.config if side is not None else None
    else:
        config = read_text_side_config(resolve_model_folder(model) / "lm")
    if config is None:
        return []
    return list(dict.fromkeys(captions[0].format(hand="") for captions in config.readings.values()))


def default_model_card(model: MotionGPT) -> str:
    t5 = model.lm.t5.config
    actions = known_actions(model)
    known = ("\n## Actions it knows\n\n"
             "A prompt of another action is generated as the nearest of these, with a notice saying so.\n\n"
             + "".join(f"- {action}\n" for action in actions)) if actions else ""
    return (f"# {model.config.name}\n\n"
            "A MotionGPT model folder for the engine (`engine.MotionGPT.from_pretrained(folder)`).\n\n"
            f"- tokenizer/: VQ-VAE, {model.tokenizer.config.code_num} codes, "
            f"{model.tokenizer.config.frames_per_token} frames per token, 20 fps\n"
            f"- lm/: T5 d_model {t5.d_model}, {t5.num_layers}+{t5.num_decoder_layers} layers, {t5.num_heads} heads, "
            f"d_ff {t5.d_ff}, vocabulary {t5.vocab_size} (motion tokens from id {model.lm.vocab.first_id})\n"
            f"- prompts: MotionGPT's; longest single generation {model.config.max_motion_tokens} tokens\n" + known)
