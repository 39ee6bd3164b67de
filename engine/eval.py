"""Measured quality: our own text-motion evaluator and the HumanML3D-style metrics.

MotionGPT, MoMask and their peers report text-to-motion with a pretrained text-motion evaluator
(Guo et al. 2022): R-precision, FID, MM-Dist, Diversity and MultiModality; captioning with
R-precision and the caption metrics BLEU, ROUGE-L, CIDEr and BERTScore; prediction and in-between
with ADE, FDE and FID. HumanML3D's evaluator is trained on data we cannot ship, so this module
builds its own the same way, on our data, and computes every number the same way:

    python -m engine.eval train --data cache/dataset --out assets/evaluator     # ~12 min, 1 CPU thread
    python -m engine.eval evaluate --model default                             # the quality table

Read top to bottom:

1. metrics on embeddings (numpy): ``frechet_distance``, ``r_precision``, ``matching_score``,
   ``diversity``, ``multimodality``;
2. metrics on joints (metres, 20 fps, Y up): ``ade_fde``, ``foot_skating_ratio``, ``linear_inbetween``;
3. caption metrics: ``bleu``, ``rouge_l``, ``cider`` (CIDEr-D), ``bert_score``;
4. the evaluator ``TextMotionEvaluator``: a small motion encoder over normalised 263-d features and
   a small head on the frozen MiniLM sentence embedding (``engine.text.encoder``), both to unit
   vectors of ``embed_dim``; saved as config.json + model.safetensors + mean.npy/std.npy;
5. ``train_evaluator``: symmetric InfoNCE on the training split;
6. ``evaluate``: the table rows for one model folder on a fixed subset of the validation split,
   with real-data reference rows computed by the same code, and ``format_table``.

The evaluator's embeddings are unit vectors, so distances lie in [0, 2]: MM-Dist, Diversity,
MultiModality and FID have another scale than the HumanML3D evaluator's (unnormalised 512-d,
Diversity ~9.5). Read each model number against the real-data row next to it.
"""
from __future__ import annotations

import argparse
import json
import math
import re
import sys
import time
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from .formats.bone_maps import assets_dir
from .configs import MAX_WIDTH, Rule, check_parameter_count, check_values, integer, number, one_of, read_config, text
from .errors import MotionError
from .motion import FEATURE_DIM, MODEL_FPS, Motion, Normalizer, validate_features
from .text.encoder import HIDDEN_SIZE

DEFAULT_EVALUATOR = assets_dir() / "evaluator"   # $MOTIONGPT_ASSETS moves it
MODEL_TYPE = "motiongpt_text_motion_evaluator"
CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"

MAX_FRAMES = 196           # HumanML3D's longest motion (9.8 s at 20 fps); longer clips are cut here
R_PRECISION_BATCH = 32     # one true caption and 31 mismatched ones per ranking
DIVERSITY_PAIRS = 300
MULTIMODALITY_PAIRS = 10
FOOT_JOINTS = (10, 11)     # SMPL left_foot, right_foot (the toes' base)
FOOT_HEIGHT = 0.05         # m above the clip's lowest foot point: the foot is on the floor
FOOT_SPEED = 0.5           # m/s horizontal (2.5 cm per frame at 20 fps): faster on the floor is skating
FOOT_SPEED_WINDOW = 5      # frames of the moving average that must exceed FOOT_SPEED too


# ----------------------------------------------------------------------------- 1. embedding metrics

def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """FID of two sets of embeddings a (N, D) and b (M, D): the Fréchet distance of the Gaussians
    fitted to them, |mu_a - mu_b|^2 + tr(C_a + C_b - 2 (C_a C_b)^(1/2)).

    tr (C_a C_b)^(1/2) is computed as the sum of the square roots of the eigenvalues of the
    symmetric C_a^(1/2) C_b C_a^(1/2), which has the same eigenvalues as C_a C_b (both covariances
    are positive semi-definite): exact, and much faster than a general matrix square root."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1] or min(len(a), len(b)) < 2:
        raise MotionError(f"frechet_distance: need two (N>=2, D) sets of the same D, got {a.shape} and {b.shape}")
    mu_a, mu_b = a.mean(0), b.mean(0)
    cov_a, cov_b = np.atleast_2d(np.cov(a, rowvar=False)), np.atleast_2d(np.cov(b, rowvar=False))
    values, vectors = np.linalg.eigh(cov_a)
    root_a = (vectors * np.sqrt(np.clip(values, 0.0, None))) @ vectors.T
    product = root_a @ cov_b @ root_a
    trace_root = np.sqrt(np.clip(np.linalg.eigvalsh((product + product.T) / 2), 0.0, None)).sum()
    return float(max(0.0, np.sum((mu_a - mu_b) ** 2) + np.trace(cov_a) + np.trace(cov_b) - 2.0 * trace_root))


def _distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(N, M) Euclidean distances between the rows of a (N, D) and b (M, D)."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    squared = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * a @ b.T
    return np.sqrt(np.maximum(squared, 0.0))


def r_precision(text_emb: np.ndarray, motion_emb: np.ndarray, batch: int = R_PRECISION_BATCH,
                top_k: int = 3) -> np.ndarray:
    """(top_k,) R-precision, the HumanML3D way: row i of text_emb (N, D) describes row i of
    motion_emb (N, D); in consecutive batches of ``batch`` pairs each text ranks the batch's
    motions by Euclidean distance, and entry k-1 is the share of texts whose own motion is among
    the k nearest. Rows past the last whole batch are dropped (a set smaller than one batch is
    ranked as one batch). A motion at exactly the true one's distance does not push it down."""
    ranks = true_motion_ranks(text_emb, motion_emb, batch)
    return np.array([(ranks < k).mean() for k in range(1, top_k + 1)])


def true_motion_ranks(text_emb: np.ndarray, motion_emb: np.ndarray, batch: int = R_PRECISION_BATCH) -> np.ndarray:
    """(N',) int: for each text row of ``r_precision``'s whole batches (N' = N rounded down to a
    multiple of ``batch``), how many of its batch's motions are strictly nearer than its own; 0
    is a top-1 hit, and a subset of the rows (one data source) gives that subset's share."""
    text_emb, motion_emb = np.asarray(text_emb), np.asarray(motion_emb)
    if text_emb.shape != motion_emb.shape or text_emb.ndim != 2:
        raise MotionError(f"r_precision: text and motion embeddings differ in shape: {text_emb.shape} vs {motion_emb.shape}")
    size = min(batch, len(text_emb))
    count = len(text_emb) // size * size
    ranks = np.zeros(count, dtype=np.int64)
    for start in range(0, count, size):
        d = _distances(text_emb[start:start + size], motion_emb[start:start + size])
        ranks[start:start + size] = (d < np.diag(d)[:, None]).sum(1)     # motions strictly nearer than the true one
    return ranks


def matching_score(text_emb: np.ndarray, motion_emb: np.ndarray) -> float:
    """MM-Dist: the mean Euclidean distance between each text and its own motion, rows paired."""
    return float(np.linalg.norm(np.asarray(text_emb, np.float64) - np.asarray(motion_emb, np.float64), axis=1).mean())


def diversity(emb: np.ndarray, pairs: int = DIVERSITY_PAIRS, seed: int = 0) -> float:
    """Mean distance between ``pairs`` random pairs of rows of emb (N, D): two index lists drawn
    without replacement (with replacement when N < pairs; HumanML3D's test set is larger)."""
    emb = np.asarray(emb, dtype=np.float64)
    rng = np.random.default_rng(seed)
    replace = len(emb) < pairs
    first = rng.choice(len(emb), pairs, replace=replace)
    second = rng.choice(len(emb), pairs, replace=replace)
    return float(np.linalg.norm(emb[first] - emb[second], axis=1).mean())


def multimodality(emb_groups: np.ndarray, pairs: int = MULTIMODALITY_PAIRS, seed: int = 0) -> float:
    """Mean distance between generations of the same prompt: emb_groups (P prompts, G generations,
    D); for each prompt ``pairs`` distinct pairs (i < j) of its generations, drawn without
    replacement (fewer when G (G - 1) / 2 < pairs)."""
    emb_groups = np.asarray(emb_groups, dtype=np.float64)
    if emb_groups.ndim != 3 or emb_groups.shape[1] < 2:
        raise MotionError(f"multimodality: need (prompts, generations >= 2, D), got {emb_groups.shape}")
    rng = np.random.default_rng(seed)
    all_pairs = np.array([(i, j) for i in range(emb_groups.shape[1]) for j in range(i + 1, emb_groups.shape[1])])
    distances = []
    for group in emb_groups:
        chosen = all_pairs[rng.choice(len(all_pairs), min(pairs, len(all_pairs)), replace=False)]
        distances.append(np.linalg.norm(group[chosen[:, 0]] - group[chosen[:, 1]], axis=1))
    return float(np.concatenate(distances).mean())


# ----------------------------------------------------------------------------- 2. joint metrics

def ade_fde(pred_joints: np.ndarray, true_joints: np.ndarray) -> tuple[float, float]:
    """(ADE, FDE) in metres of predicted vs true joint positions (T, J, 3) or (N, T, J, 3): ADE is
    the mean joint distance over all frames and joints, FDE over the joints of the last frame."""
    pred, true = np.asarray(pred_joints, np.float64), np.asarray(true_joints, np.float64)
    if pred.shape != true.shape or pred.ndim < 3:
        raise MotionError(f"ade_fde: shapes differ or are not (..., T, J, 3): {pred.shape} vs {true.shape}")
    error = np.linalg.norm(pred - true, axis=-1)              # (..., T, J)
    return float(error.mean()), float(error[..., -1, :].mean())


def foot_skating_ratio(joints: np.ndarray, fps: float = MODEL_FPS) -> float:
    """Share of the T - 1 frame steps of joints (T, 22, 3) (metres, Y up) in which a foot skates:
    it is on the floor (below ``FOOT_HEIGHT`` = 5 cm above the clip's lowest foot point) at both
    ends of the step and moves horizontally faster than ``FOOT_SPEED`` = 0.5 m/s (2.5 cm per frame
    at 20 fps), in that step and on average over ``FOOT_SPEED_WINDOW`` = 5 steps around it. The
    thresholds are those of GMD (Karunratanakul et al. 2023), whose ratio MoMask-era papers report;
    GMD measures the height from y = 0, we from the lowest foot point (our motions may float)."""
    joints = np.asarray(joints, dtype=np.float64)
    if joints.ndim != 3 or len(joints) < 2:
        raise MotionError(f"foot_skating_ratio: need (T >= 2, 22, 3) joints, got {joints.shape}")
    feet = joints[:, list(FOOT_JOINTS)]                              # (T, 2, 3)
    height = feet[..., 1] - feet[..., 1].min()
    on_floor = (height[:-1] < FOOT_HEIGHT) & (height[1:] < FOOT_HEIGHT)   # (T-1, 2)
    speed = np.linalg.norm(np.diff(feet[..., [0, 2]], axis=0), axis=-1) * fps
    window = np.ones(FOOT_SPEED_WINDOW) / FOOT_SPEED_WINDOW
    average = np.stack([np.convolve(speed[:, foot], window, mode="same") for foot in range(2)], axis=1)
    skating = on_floor & (speed > FOOT_SPEED) & (average > FOOT_SPEED)
    return float(skating.any(axis=1).mean())


def linear_inbetween(before_last: np.ndarray, after_first: np.ndarray, frames: int) -> np.ndarray:
    """(frames, 22, 3): every joint moved in a straight line from before_last (22, 3) to after_first,
    the two boundary poses themselves excluded (the baseline an in-between model must beat)."""
    weights = (np.arange(1, frames + 1) / (frames + 1))[:, None, None]
    return np.asarray(before_last) * (1 - weights) + np.asarray(after_first) * weights


# ----------------------------------------------------------------------------- 3. caption metrics

def caption_tokens(text: str) -> list[str]:
    """Lower-case words, punctuation dropped (as the COCO caption tokenizer leaves them)."""
    return re.findall(r"[a-z0-9']+", text.lower())


def _ngrams(words: list[str], n: int) -> Counter:
    return Counter(tuple(words[i:i + n]) for i in range(len(words) - n + 1))


def bleu(candidates: Sequence[str], references: Sequence[Sequence[str]], n: int = 4) -> float:
    """Corpus BLEU-n (uniform weights over 1..n-grams), as the COCO caption evaluation computes it:
    candidate n-gram counts clipped by their most frequent count in any one reference, summed over
    the corpus, and a brevity penalty against the reference length closest to each candidate's."""
    clipped, total = np.zeros(n), np.zeros(n)
    candidate_length = reference_length = 0
    for candidate, refs in zip(candidates, references, strict=True):
        words, ref_words = caption_tokens(candidate), [caption_tokens(r) for r in refs]
        candidate_length += len(words)
        reference_length += min((abs(len(r) - len(words)), len(r)) for r in ref_words)[1]
        for k in range(1, n + 1):
            counts = _ngrams(words, k)
            most = Counter()
            for r in ref_words:
                most |= _ngrams(r, k)
            clipped[k - 1] += sum(min(c, most[g]) for g, c in counts.items())
            total[k - 1] += max(len(words) - k + 1, 0)
    if candidate_length == 0 or (clipped == 0).any():
        return 0.0
    penalty = 1.0 if candidate_length > reference_length else math.exp(1 - reference_length / candidate_length)
    return float(penalty * math.exp(np.mean(np.log(clipped / total))))


def _lcs(a: list[str], b: list[str]) -> int:
    row = [0] * (len(b) + 1)
    for x in a:
        previous = 0
        for j, y in enumerate(b, 1):
            previous, row[j] = row[j], previous + 1 if x == y else max(row[j], row[j - 1])
    return row[-1]


def rouge_l(candidates: Sequence[str], references: Sequence[Sequence[str]], beta: float = 1.2) -> float:
    """ROUGE-L as the COCO evaluation: per caption, the longest common subsequence with each
    reference gives precision and recall; the best of each over the references makes
    F = (1 + beta^2) P R / (R + beta^2 P); the mean over captions."""
    scores = []
    for candidate, refs in zip(candidates, references, strict=True):
        words = caption_tokens(candidate)
        lcs = [_lcs(words, caption_tokens(r)) for r in refs]
        precision = max(l / max(len(words), 1) for l in lcs)
        recall = max(l / max(len(caption_tokens(r)), 1) for l, r in zip(lcs, refs))
        scores.append(0.0 if precision == 0 or recall == 0 else
                      (1 + beta ** 2) * precision * recall / (recall + beta ** 2 * precision))
    return float(np.mean(scores))


def cider(candidates: Sequence[str], references: Sequence[Sequence[str]], n: int = 4, sigma: float = 6.0) -> float:
    """CIDEr-D (the COCO evaluation's "CIDEr"): each sentence becomes TF-IDF vectors of its 1..n-grams,
    with document frequencies counted over the reference sets of the whole corpus; the score is the
    cosine similarity to each reference with the candidate's weights clipped by the reference's, times
    a Gaussian penalty exp(-(length difference)^2 / (2 sigma^2)), averaged over n and references,
    times 10, averaged over the corpus."""
    token_refs = [[caption_tokens(r) for r in refs] for refs in references]
    frequency = Counter()
    for refs in token_refs:
        frequency.update({g for r in refs for k in range(1, n + 1) for g in _ngrams(r, k)})
    log_documents = math.log(float(len(token_refs)))

    def vectors(words):
        vecs, norms = [], []
        for k in range(1, n + 1):
            vec = {g: c * (log_documents - math.log(max(1.0, frequency[g]))) for g, c in _ngrams(words, k).items()}
            vecs.append(vec)
            norms.append(math.sqrt(sum(v * v for v in vec.values())))
        return vecs, norms, len(words)

    scores = []
    for candidate, refs in zip(candidates, token_refs, strict=True):
        c_vecs, c_norms, c_len = vectors(caption_tokens(candidate))
        total = np.zeros(n)
        for ref in refs:
            r_vecs, r_norms, r_len = vectors(ref)
            for k in range(n):
                dot = sum(min(w, r_vecs[k].get(g, 0.0)) * r_vecs[k].get(g, 0.0) for g, w in c_vecs[k].items())
                if c_norms[k] and r_norms[k]:
                    total[k] += dot / (c_norms[k] * r_norms[k]) * math.exp(-((c_len - r_len) ** 2) / (2 * sigma ** 2))
        scores.append(total.mean() / len(refs) * 10.0)
    return float(np.mean(scores))


def bert_score(candidates: Sequence[str], references: Sequence[Sequence[str]], encoder=None) -> float:
    """BERTScore F1 (no idf weights, no baseline rescaling): tokens are matched greedily by the cosine
    of their contextual embeddings, P = mean best match of the candidate's tokens, R = that of the
    reference's, F1 = 2PR / (P + R), the best over the references, the mean over the corpus.

    The token embeddings are all-MiniLM-L6-v2's last hidden states (``engine.text.encoder``, [CLS]
    and [SEP] left out), not roberta-large's layer 17 as in published BERTScore, so the values
    are not comparable with published ones (MiniLM's are higher for unrelated sentences too)."""
    from .text.encoder import PretrainedTextEncoder
    encoder = encoder or PretrainedTextEncoder.load("cpu")
    texts = sorted({t for t in candidates} | {r for refs in references for r in refs})
    tokens = {}
    for start in range(0, len(texts), 64):
        chunk = texts[start:start + 64]
        states, mask = encoder.encode(chunk, warn=False)
        states = F.normalize(states, dim=-1)
        for text, row, valid in zip(chunk, states, mask):
            length = int(valid.sum())
            tokens[text] = row[1:max(length - 1, 2)]          # without [CLS] and [SEP]
    scores = []
    for candidate, refs in zip(candidates, references, strict=True):
        best = 0.0
        for ref in refs:
            similarity = tokens[candidate] @ tokens[ref].T       # (candidate tokens, reference tokens)
            precision = similarity.max(1).values.mean().item()
            recall = similarity.max(0).values.mean().item()
            best = max(best, 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0)
        scores.append(best)
    return float(np.mean(scores))


# ----------------------------------------------------------------------------- 4. the evaluator

@dataclass
class EvaluatorConfig:
    """Sizes of the evaluator; written as the folder's config.json."""

    model_type: str = MODEL_TYPE
    feature_dim: int = FEATURE_DIM     # normalised HumanML3D features in
    width: int = 256                   # channels of the motion encoder and the text head
    embed_dim: int = 256               # the shared embedding (unit vectors)
    text_dim: int = 384                # all-MiniLM-L6-v2 sentence embedding
    max_frames: int = MAX_FRAMES       # longer motions are cut to their first max_frames frames
    temperature: float = 0.07          # InfoNCE temperature of training
    text_encoder: str = "sentence-transformers/all-MiniLM-L6-v2"
    text_encoder_sha256: str = ""      # of the MiniLM weights the head was trained on

    def __post_init__(self) -> None:
        check_values(asdict(self), EVALUATOR_RULES, "evaluator config")

    @classmethod
    def from_dict(cls, values: dict, source: str = "config") -> "EvaluatorConfig":
        """Build from config.json's values; unknown keys, wrong types and sizes out of bounds are a
        MotionError naming ``source``, the key and the value."""
        if not isinstance(values, dict) or values.get("model_type") != MODEL_TYPE:
            raise MotionError(f"{source}: not a text-motion evaluator config (model_type {MODEL_TYPE!r})")
        check_values(values, EVALUATOR_RULES, source)
        return cls(**values)


def _exactly(value: int, what: str) -> Rule:
    return Rule(f"{value} ({what})", lambda v: isinstance(v, int) and not isinstance(v, bool) and v == value)


# Bounds of the evaluator's config.json (the bundled one: width 256, embed_dim 256, 196 frames).
EVALUATOR_RULES = {
    "model_type": one_of(MODEL_TYPE), "feature_dim": _exactly(FEATURE_DIM, "HumanML3D features"),
    "width": integer(1, MAX_WIDTH), "embed_dim": integer(1, MAX_WIDTH),
    "text_dim": _exactly(HIDDEN_SIZE, "the MiniLM sentence embedding"), "max_frames": integer(1, 12_000),
    "temperature": number(0, 10, low_open=True), "text_encoder": text(), "text_encoder_sha256": text(),
}


class TextMotionEvaluator(nn.Module):
    """Motion (B, T, 263) normalised features -> (B, embed_dim) unit vectors; text -> the same space.

    Motion encoder: two stride-2 1-D convolutions (kernel 4) and one more (kernel 3), each with a
    LeakyReLU, so one step per 4 frames, then the masked mean and max over time, then an MLP.
    Text side: the frozen MiniLM sentence embedding (384-d) -> an MLP. ~1.1 M trained parameters.
    """

    def __init__(self, config: EvaluatorConfig | None = None, normalizer: Normalizer | None = None):
        super().__init__()
        self.config = config = config or EvaluatorConfig()
        self.normalizer = normalizer
        w = config.width
        self.motion_convs = nn.Sequential(
            nn.Conv1d(config.feature_dim, w, 4, stride=2, padding=1), nn.LeakyReLU(0.2),
            nn.Conv1d(w, w, 4, stride=2, padding=1), nn.LeakyReLU(0.2),
            nn.Conv1d(w, w, 3, padding=1), nn.LeakyReLU(0.2))
        self.motion_head = nn.Sequential(nn.Linear(2 * w, w), nn.LeakyReLU(0.2), nn.Linear(w, config.embed_dim))
        self.text_head = nn.Sequential(nn.Linear(config.text_dim, w), nn.LeakyReLU(0.2), nn.Linear(w, config.embed_dim))
        self._sentence_cache: dict[str, torch.Tensor] = {}

    # -- the two encoders
    def encode_motion(self, features: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """features (B, T, 263) normalised, zero-padded past each row's ``lengths`` (B,) -> (B, D) unit.
        T >= 4 (one step of the encoder); other shapes are a MotionError naming both shapes."""
        dim = self.config.feature_dim
        if not isinstance(features, torch.Tensor) or features.ndim != 3 or features.shape[0] < 1 \
                or features.shape[1] < 4 or features.shape[2] != dim:
            raise MotionError(f"encode_motion: features must be a tensor of shape (B >= 1, T >= 4, {dim}), got "
                              f"{_shape_of(features)}")
        if not isinstance(lengths, torch.Tensor) or tuple(lengths.shape) != (features.shape[0],) \
                or lengths.is_floating_point() or lengths.dtype == torch.bool:
            raise MotionError(f"encode_motion: lengths must be an integer tensor of shape ({features.shape[0]},), "
                              f"got {_shape_of(lengths)}")
        hidden = self.motion_convs(features.transpose(1, 2)).transpose(1, 2)     # (B, T // 4, W)
        steps = torch.clamp(lengths // 4, min=1, max=hidden.shape[1])
        mask = (torch.arange(hidden.shape[1], device=hidden.device)[None, :] < steps[:, None]).unsqueeze(-1)
        mean = (hidden * mask).sum(1) / steps[:, None]
        peak = hidden.masked_fill(~mask, float("-inf")).max(1).values
        return F.normalize(self.motion_head(torch.cat([mean, peak], dim=-1)), dim=-1)

    def encode_text(self, sentence_embeddings: torch.Tensor) -> torch.Tensor:
        """(B, 384) MiniLM sentence embeddings -> (B, D) unit vectors."""
        dim = self.config.text_dim
        if not isinstance(sentence_embeddings, torch.Tensor) or sentence_embeddings.ndim != 2 \
                or sentence_embeddings.shape[0] < 1 or sentence_embeddings.shape[1] != dim:
            raise MotionError(f"encode_text: sentence embeddings must be a tensor of shape (B >= 1, {dim}), got "
                              f"{_shape_of(sentence_embeddings)}")
        return F.normalize(self.text_head(sentence_embeddings), dim=-1)

    # -- numpy in, numpy out
    def sentence_embeddings(self, texts: Sequence[str]) -> torch.Tensor:
        """(B, 384) frozen MiniLM sentence embeddings, cached per text."""
        from .text.encoder import PretrainedTextEncoder
        missing = sorted({t for t in texts if t not in self._sentence_cache})
        if missing:
            encoder = PretrainedTextEncoder.load("cpu")
            for start in range(0, len(missing), 256):
                chunk = missing[start:start + 256]
                for text, row in zip(chunk, encoder.sentence_embeddings(chunk).cpu()):
                    self._sentence_cache[text] = row
        return torch.stack([self._sentence_cache[t] for t in texts])

    @torch.no_grad()
    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        """(B, D) float32 unit vectors for captions."""
        if isinstance(texts, str) or not isinstance(texts, Sequence) or len(texts) == 0 \
                or not all(isinstance(t, str) for t in texts):
            raise MotionError(f"embed_texts: expected a non-empty list of captions, got {_shape_of(texts)}")
        device = next(self.parameters()).device
        return self.encode_text(self.sentence_embeddings(list(texts)).to(device)).cpu().numpy()

    @torch.no_grad()
    def embed_features(self, feature_list: Sequence[np.ndarray], batch: int = 64) -> np.ndarray:
        """(B, D) float32 unit vectors for un-normalised (T_i, 263) feature arrays (first max_frames rows);
        a wrong shape or a NaN is a MotionError naming the array, the expected and the actual shape."""
        if not isinstance(feature_list, (Sequence, np.ndarray)) or isinstance(feature_list, np.ndarray) \
                and feature_list.ndim != 3 or len(feature_list) == 0:
            raise MotionError(f"embed_features: expected a non-empty list of (T, {FEATURE_DIM}) feature arrays, got "
                              f"{_shape_of(feature_list)}")
        checked = [validate_features(f, f"features {i}") for i, f in enumerate(feature_list)]
        device = next(self.parameters()).device
        rows = [self.normalizer.normalize(f[:self.config.max_frames]) for f in checked]
        out = []
        for start in range(0, len(rows), batch):
            chunk = rows[start:start + batch]
            lengths = torch.tensor([len(r) for r in chunk])
            padded = torch.zeros(len(chunk), max(int(lengths.max()), 4), self.config.feature_dim)
            for i, r in enumerate(chunk):
                padded[i, :len(r)] = torch.from_numpy(r)
            out.append(self.encode_motion(padded.to(device), lengths.to(device)).cpu().numpy())
        return np.concatenate(out)

    def embed_motions(self, motions: Sequence[Motion | np.ndarray], batch: int = 64) -> np.ndarray:
        """(B, D) float32 unit vectors for Motions or (T >= 2, 22, 3) joint arrays at 20 fps: their first
        max_frames + 1 frames -> ``Motion.to_features`` -> the motion encoder. Each is checked as the
        model's tasks check theirs (``engine.model.as_motion``)."""
        from .model import as_motion
        if isinstance(motions, (Motion, np.ndarray)) or not isinstance(motions, Sequence) or len(motions) == 0:
            raise MotionError(f"embed_motions: expected a non-empty list of Motions or (T, 22, 3) joint arrays, got "
                              f"{_shape_of(motions)}")
        features = []
        for i, m in enumerate(motions):
            motion = as_motion(m, f"motion {i}")
            features.append(motion[:self.config.max_frames + 1].to_features())
        return self.embed_features(features, batch)

    # -- model folders
    def save_pretrained(self, folder: str | Path, dtype: torch.dtype = torch.float16,
                        model_card: str | None = None) -> Path:
        """Write config.json, model.safetensors (float16 by default), mean.npy, std.npy [, MODEL_CARD.md]."""
        from safetensors.torch import save_file
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().to("cpu", dtype).contiguous() for k, v in self.state_dict().items()}
        save_file(state, str(folder / WEIGHTS_NAME), metadata={"format": "pt"})
        (folder / CONFIG_NAME).write_text(json.dumps(asdict(self.config), indent=2) + "\n", encoding="utf-8")
        self.normalizer.save(folder)
        if model_card is not None:
            (folder / "MODEL_CARD.md").write_text(model_card, encoding="utf-8")
        return folder

    @classmethod
    def from_pretrained(cls, folder: str | Path | None = None, device="cpu") -> "TextMotionEvaluator":
        """Load an evaluator folder (default: assets/evaluator), in eval mode."""
        from .checkpoint import check_finite, check_layout, load_safetensors, meta_shapes, tensor_layout
        from .tokenizer import resolve_device
        folder = Path(folder) if folder is not None else DEFAULT_EVALUATOR
        config_path, weights_path = folder / CONFIG_NAME, folder / WEIGHTS_NAME
        if not weights_path.is_file() or not config_path.is_file():
            raise MotionError(f"{folder}: no text-motion evaluator here (config.json and model.safetensors); "
                              "train one with `python -m engine.eval train`")
        device = resolve_device(device)
        config = EvaluatorConfig.from_dict(read_config(config_path), str(config_path))
        shapes = meta_shapes(lambda: cls(config), str(config_path))
        check_parameter_count(shapes, str(config_path), f"width {config.width}, embed_dim {config.embed_dim}")
        state = load_safetensors(weights_path)
        check_layout(tensor_layout(state), shapes, str(weights_path))
        check_finite(state, str(weights_path))
        model = cls(config, Normalizer.load(folder))
        model.load_state_dict({k: v.float() for k, v in state.items()}, strict=True)
        return model.to(device).eval()


def _shape_of(value) -> str:
    """How a wrong input looks in a message: "shape (2, 262)" for arrays, else its type."""
    shape = getattr(value, "shape", None)
    return f"shape {tuple(shape)}" if shape is not None else f"a {type(value).__name__}"


# ----------------------------------------------------------------------------- 5. training

class _Pick:
    """A stand-in random generator whose ``integers`` returns a fixed index (to enumerate every
    rephrasing ``engine.data.augment_caption`` can make)."""

    def __init__(self, index: int):
        self.index = index

    def integers(self, high: int) -> int:
        return self.index % high


def caption_variants(caption: str) -> list[str]:
    """The caption and every other-subject rephrasing of it (``engine.data.augment_caption``)."""
    from .data import CAPTION_SUBJECTS, augment_caption
    return sorted({caption} | {augment_caption(caption, _Pick(i)) for i in range(len(CAPTION_SUBJECTS))})


def random_crop(length: int, rng: np.random.Generator, shortest: int = 40, longest: int = MAX_FRAMES) -> tuple[int, int]:
    """(start, stop) of a random window of a clip of ``length`` rows: between ``shortest`` and
    ``longest`` rows long (the whole clip when it is shorter than ``shortest``)."""
    low, high = min(length, shortest), min(length, longest)
    size = int(rng.integers(low, high + 1))
    start = int(rng.integers(0, length - size + 1))
    return start, start + size


def validation_pairs(clips, seed: int = 0) -> tuple[list[np.ndarray], list[str]]:
    """The fixed real-data retrieval set: clips in a seeded random order, each with one of its
    captions (seeded), features cut to MAX_FRAMES rows."""
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(clips))
    features = [clips[i].features[:MAX_FRAMES] for i in order]
    captions = [clips[i].captions[int(rng.integers(len(clips[i].captions)))] for i in order]
    return features, captions


def label_ceiling(clips, seed: int = 0, batch: int = R_PRECISION_BATCH) -> float:
    """The top-1 R-precision of ``validation_pairs(clips, seed)`` that an evaluator reaches when it
    tells labels apart perfectly but not two clips with the same caption set (same label, or a
    mirror without sides), which it cannot: each text then finds its own motion among its k
    same-label motions of the batch with chance 1 / k."""
    rng = np.random.default_rng(seed)
    groups = [tuple(sorted(clips[i].captions)) for i in rng.permutation(len(clips))]
    count = len(groups) // batch * batch
    total = 0.0
    for start in range(0, count, batch):
        counts = Counter(groups[start:start + batch])
        total += sum(1.0 / counts[g] for g in groups[start:start + batch])
    return total / count


def train_evaluator(data_dir: str | Path, out: str | Path, minutes: float = 12.0, steps: int = 6000,
                    batch: int = 128, lr: float = 1e-3, augment: float = 0.5, seed: int = 0,
                    val_every: int = 200, log: Callable[[str], None] = print) -> dict:
    """Train the evaluator with symmetric InfoNCE and save the best one (by validation R-precision
    top-1 + top-3) to ``out``; returns its validation numbers.

    Each step takes ``batch`` training clips, a random window of 40-196 rows of each and one of its
    captions (with probability ``augment`` another subject, ``engine.data.augment_caption``). The
    logits are the cosines of every motion with every caption over the temperature; a pair of two
    clips with the same caption set (same label, or a mirror without sides) is no negative and is
    masked out. The learning rate follows a cosine over whichever ends first, ``steps`` or ``minutes``.
    The MiniLM embeddings of every caption and rephrasing are computed once, before the first step.
    """
    from .data import load_split
    from .text.encoder import PretrainedTextEncoder, weights_sha256

    started = time.perf_counter()
    data_dir = Path(data_dir)
    normalizer = Normalizer.load(data_dir)
    train, val = load_split(data_dir, "train"), load_split(data_dir, "val")
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)

    config = EvaluatorConfig(text_encoder_sha256=weights_sha256())
    model = TextMotionEvaluator(config, normalizer)
    train_rows = [normalizer.normalize(c.features) for c in train]
    groups = {}
    train_groups = np.array([groups.setdefault(tuple(sorted(c.captions)), len(groups)) for c in train])
    variants = {c: caption_variants(c) for clip in train for c in clip.captions}
    texts = sorted({v for vs in variants.values() for v in vs})
    index = {t: i for i, t in enumerate(texts)}
    encoder = PretrainedTextEncoder.load("cpu")
    sentences = torch.cat([encoder.sentence_embeddings(texts[i:i + 256]) for i in range(0, len(texts), 256)])
    log(f"evaluator: {len(train)} train / {len(val)} val clips, {len(texts)} caption variants embedded, "
        f"{sum(p.numel() for p in model.parameters()) / 1e6:.2f} M parameters, {time.perf_counter() - started:.0f} s")

    val_features, val_captions = validation_pairs(val, seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    best, best_state, history = None, None, []
    budget = minutes * 60.0
    train_started = time.perf_counter()
    step = 0
    while True:
        progress = max(step / steps, (time.perf_counter() - train_started) / budget)
        if progress >= 1.0:
            break
        for group in optimizer.param_groups:
            group["lr"] = lr * min(1.0, (step + 1) / 100) * 0.5 * (1 + math.cos(math.pi * progress))
        chosen = rng.choice(len(train), batch, replace=False)
        windows = [random_crop(len(train_rows[i]), rng) for i in chosen]
        lengths = torch.tensor([b - a for a, b in windows])
        padded = torch.zeros(batch, int(lengths.max()), FEATURE_DIM)
        rows = []
        for k, (i, (a, b)) in enumerate(zip(chosen, windows)):
            padded[k, :b - a] = torch.from_numpy(train_rows[i][a:b])
            caption = train[i].captions[int(rng.integers(len(train[i].captions)))]
            options = variants[caption]
            if rng.random() < augment:
                caption = options[int(rng.integers(len(options)))]
            rows.append(index[caption])
        model.train()
        motion = model.encode_motion(padded, lengths)
        text = model.encode_text(sentences[rows])
        logits = motion @ text.T / config.temperature
        same = torch.from_numpy(train_groups[chosen][:, None] == train_groups[chosen][None, :])
        logits = logits.masked_fill(same & ~torch.eye(batch, dtype=torch.bool), float("-inf"))
        target = torch.arange(batch)
        loss = 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        step += 1
        if step % val_every == 0 or (time.perf_counter() - train_started) >= budget or step >= steps:
            model.eval()
            top = r_precision(model.embed_texts(val_captions), model.embed_features(val_features))
            entry = {"step": step, "loss": round(loss.item(), 4), "val_top1": round(float(top[0]), 4),
                     "val_top3": round(float(top[2]), 4), "minutes": round((time.perf_counter() - started) / 60, 2)}
            history.append(entry)
            log(json.dumps(entry))
            if best is None or top[0] + top[2] > best["val_top1"] + best["val_top3"]:
                best = entry
                best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    model.load_state_dict(best_state)
    model.eval()
    top = r_precision(model.embed_texts(val_captions), model.embed_features(val_features))
    summary = {"steps": step, "best_step": best["step"], "val_top1": round(float(top[0]), 4),
               "val_top2": round(float(top[1]), 4), "val_top3": round(float(top[2]), 4),
               "val_top1_label_ceiling": round(label_ceiling(val, seed), 4),
               "parameters": sum(p.numel() for p in model.parameters()),
               "train_clips": len(train), "val_clips": len(val), "batch": batch, "sources": _dataset_sources(data_dir),
               "minutes": round((time.perf_counter() - started) / 60, 1)}
    model.save_pretrained(out, model_card=evaluator_model_card(config, summary))
    (Path(out) / "training.json").write_text(json.dumps({"summary": summary, "history": history}, indent=2) + "\n")
    log(f"evaluator saved to {out}: {json.dumps(summary)}")
    return summary


def _dataset_sources(data_dir: Path) -> list[str] | None:
    """The sources a built dataset folder was built from (its meta.json), None if not recorded."""
    try:
        sources = json.loads((data_dir / "meta.json").read_text())["sources"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return [str(source) for source in sources] if isinstance(sources, list) else None


def evaluator_model_card(config: EvaluatorConfig, summary: dict) -> str:
    return f"""# Text-motion evaluator (engine.eval)

The contrastive text-motion embedding that `python3 build.py bench quality` measures models with:
R-precision, FID, MM-Dist, Diversity and MultiModality as in the HumanML3D literature, but on our data.

- **Motion side:** normalised 263-d HumanML3D features (20 fps, the first {config.max_frames} rows) -> two
  stride-2 1-D convolutions and one more ({config.width} channels, LeakyReLU) -> masked mean and max over
  time -> MLP -> {config.embed_dim}-d unit vector. `mean.npy` / `std.npy` are the dataset's statistics.
- **Text side:** the frozen sentence embedding of {config.text_encoder} (`engine.text.encoder`, weights
  sha256 `{config.text_encoder_sha256[:16]}...`) -> MLP -> {config.embed_dim}-d unit vector.
- **Weights:** `model.safetensors`, float16, {summary['parameters'] / 1e6:.2f} M parameters.

## Data
The training split of `python -m engine.data build` ({summary['train_clips']} clips with left-right mirrors):
{_sources_text(summary.get('sources'))}.

## Training
`python -m engine.eval train --data cache/dataset --out assets/evaluator`: symmetric InfoNCE (temperature
{config.temperature}), batches of {summary['batch']} random 40-196-frame windows, one random caption per
clip (half of them with another subject: "a woman", "someone", ...), negatives with the same caption set
masked out; AdamW, cosine learning rate; {summary['steps']} steps in {summary['minutes']} min on the
CPU, best at step {summary['best_step']} by validation retrieval.

## Validation retrieval
Real validation motions ({summary['val_clips']} clips, first 9.8 s) against one of their own captions,
R-precision in batches of 32 (1 true + 31 other captions): top-1 {summary['val_top1']:.3f},
top-2 {summary['val_top2']:.3f}, top-3 {summary['val_top3']:.3f}. Many clips share a label caption (and a
mirror without sides shares its source's), so a batch often holds two motions with the same caption: an
evaluator that tells every label apart but cannot tell two clips of one label apart expects a top-1 of
{summary['val_top1_label_ceiling']:.3f} on this set.

## Licence
CC BY-NC 4.0 (non-commercial), because it is trained on the Bandai Namco data ("Bandai-Namco-Research-
Motiondataset" by Bandai Namco Research Inc., (c) 2022, CC BY-NC 4.0; converted to HumanML3D features).
{_credits_text(summary.get('sources'))}"""


EVALUATOR_SOURCES = {    # engine.data source -> what the evaluator card says of it
    "bandai1": "the Bandai Namco Research Motion dataset 1 (CC BY-NC 4.0)",
    "bandai2": "the Bandai Namco Research Motion dataset 2 (CC BY-NC 4.0)",
    "cmu": "the CMU Graphics Lab trials of subjects 01-09 with the CMU index descriptions",
    "hdm05": "the HDM05 subset (11 classes, CC BY-SA 3.0) with captions written from each class and its side",
    "cmupred": "the CMU motion-prediction subset (10 s windows) with captions written from each take's label",
}


def _sources_text(sources) -> str:
    """The data sentence of the evaluator card from the dataset's sources (meta.json)."""
    if not sources:
        return "sources not recorded"
    named = [EVALUATOR_SOURCES.get(source, source) for source in sources]
    text = named[0] if len(named) == 1 else ", ".join(named[:-1]) + " and " + named[-1]
    if any(source.startswith("bandai") for source in sources):
        text += "; Bandai captions are written from the content and style labels"
    return text


def _credits_text(sources) -> str:
    """The attributions the other training sources ask for (the README's "Licences and credits")."""
    lines = []
    if any(source in ("cmu", "cmupred") for source in sources or ()):
        lines.append("CMU: the data used in this project was obtained from mocap.cs.cmu.edu; the database was "
                     "created with funding from NSF EIA-0196217.")
    if "hdm05" in (sources or ()):
        lines.append("HDM05 (CC BY-SA 3.0): M. Müller, T. Röder, M. Clausen, B. Eberhardt, B. Krüger, A. Weber, "
                     "Documentation Mocap Database HDM05, Technical Report CG-2007-2, Universität Bonn, 2007.")
    return "".join(f"\n{line}\n" for line in lines)


# ----------------------------------------------------------------------------- 6. evaluation

@dataclass
class EvalSettings:
    """What ``evaluate`` measures on. Fixed seeds: two runs of one model give the same numbers."""

    clips: int = 160                   # validation clips measured (the rest are the FID reference)
    seed: int = 0
    mm_prompts: int = 20               # MultiModality: prompts x generations
    mm_generations: int = 10
    gaps_seconds: tuple = (0.25, 0.5, 1.0, 2.0)
    gap_context_frames: int = 10       # in-between: clips need this many frames on each side of the gap
    predict_context: float = 0.2       # prediction: the first 20 % of a clip is given (MotionGPT's protocol)
    predict_min_frames: int = 40       # clips shorter than this are not used for prediction
    by_source: bool = False            # also text-to-motion top-1 on every validation clip, per data source


def _fid_row(evaluator, motions, reference_emb):
    return frechet_distance(evaluator.embed_motions(motions), reference_emb)


def evaluate(model: str | Path = "default", data_dir: str | Path | None = None,
             evaluator: TextMotionEvaluator | str | Path | None = None, settings: EvalSettings | None = None,
             device: str = "cpu", log: Callable[[str], None] = print) -> dict:
    """The quality table of one model folder on the validation split; see ``format_table``.

    The validation clips are shuffled with ``settings.seed``; the first ``settings.clips`` are
    measured ("the subset", each with one of its captions, cut to 9.8 s) and the rest are the FID
    reference, so a real-data FID row (the subset's own motions vs the reference) has the same
    sample sizes as the model's. Returns {"rows": [...], "seconds": {task: s}, "settings": ...};
    a row is {"task", "metric", "model", "real", "better"} ("real" is the real-data or baseline
    value, None where there is none; "better" is "higher", "lower" or "closer to real").
    """
    from .data import default_dataset_dir, load_split
    from .model import MotionGPT

    settings = settings or EvalSettings()
    started = time.perf_counter()
    data_dir = Path(data_dir) if data_dir is not None else default_dataset_dir()
    val = load_split(data_dir, "val")
    if len(val) < 2 * R_PRECISION_BATCH:
        raise MotionError(f"{data_dir}: only {len(val)} validation clips; need at least {2 * R_PRECISION_BATCH}")
    evaluator_source = "in memory" if isinstance(evaluator, TextMotionEvaluator) else \
        str(evaluator if evaluator is not None else DEFAULT_EVALUATOR)
    if not isinstance(evaluator, TextMotionEvaluator):
        evaluator = TextMotionEvaluator.from_pretrained(evaluator, device=device)
    mg = MotionGPT.from_pretrained(model, device=device)
    rng = np.random.default_rng(settings.seed)
    order = rng.permutation(len(val))
    count = min(settings.clips, len(val) // 2)
    subset, rest = [val[i] for i in order[:count]], [val[i] for i in order[count:]]
    captions = [c.captions[int(rng.integers(len(c.captions)))] for c in subset]
    real = [Motion.from_features(c.features[:MAX_FRAMES]) for c in subset]
    frames = [len(m) for m in real]
    rest_real = [Motion.from_features(c.features[:MAX_FRAMES]) for c in rest]
    reference_emb = evaluator.embed_motions(rest_real)
    rows, seconds = [], {}

    def row(task, metric, value, real_value, better):
        rows.append({"task": task, "metric": metric, "model": None if value is None else float(value),
                     "real": None if real_value is None else float(real_value), "better": better})

    # real data, once: its own captions, two disjoint sets of real motions, its foot skating
    t0 = time.perf_counter()
    text_emb = evaluator.embed_texts(captions)
    real_emb = evaluator.embed_motions(real)
    real_top = r_precision(text_emb, real_emb)
    real_fid = frechet_distance(real_emb, reference_emb)
    real_mm_dist = matching_score(text_emb, real_emb)
    real_diversity = diversity(real_emb, seed=settings.seed)
    real_skate = float(np.mean([foot_skating_ratio(m.joints) for m in real]))
    seconds["real data"] = time.perf_counter() - t0
    log(f"quality: {count} clips, {len(rest)} reference clips; real data {seconds['real data']:.1f} s")

    # text to motion
    t0 = time.perf_counter()
    generated = []
    for start in range(0, count, 32):
        generated += mg.text_to_motion_batch(captions[start:start + 32], [n / MODEL_FPS for n in frames[start:start + 32]],
                                             seed=settings.seed + start)
    gen_emb = evaluator.embed_motions(generated)
    distinct = list(dict.fromkeys(captions))[:settings.mm_prompts]
    groups = []
    for p, caption in enumerate(distinct):
        seconds_p = frames[captions.index(caption)] / MODEL_FPS
        group = mg.text_to_motion_batch([caption] * settings.mm_generations, seconds_p, seed=10_000 + 100 * p)
        groups.append(evaluator.embed_motions(group))
    top = r_precision(text_emb, gen_emb)
    task = f"text-to-motion ({count} prompts)"
    for k in range(3):
        row(task, f"R-precision top-{k + 1}", top[k], real_top[k], "higher")
    row(task, "FID", frechet_distance(gen_emb, reference_emb), real_fid, "lower")
    row(task, "MM-Dist", matching_score(text_emb, gen_emb), real_mm_dist, "lower")
    row(task, "Diversity", diversity(gen_emb, seed=settings.seed), real_diversity, "closer to real")
    row(task, f"MultiModality ({len(groups)} x {settings.mm_generations})", multimodality(np.stack(groups), seed=settings.seed),
        None, "higher")
    row(task, "foot skating ratio", np.mean([foot_skating_ratio(m.joints) for m in generated]), real_skate, "lower")
    seconds[task] = time.perf_counter() - t0
    log(f"quality: {task} {seconds[task]:.1f} s")

    if settings.by_source:
        # every validation clip (the subset's generations reused), in batches of 32 that mix the
        # sources as the subset's do; each row counts for its clip's source, beside the real motions
        from .data import source_of_clip
        t0 = time.perf_counter()
        rest_captions = [c.captions[int(rng.integers(len(c.captions)))] for c in rest]
        rest_generated = []
        for start in range(0, len(rest), 32):
            rest_generated += mg.text_to_motion_batch(
                rest_captions[start:start + 32], [len(m) / MODEL_FPS for m in rest_real[start:start + 32]],
                seed=settings.seed + count + start)
        all_text = np.concatenate([text_emb, evaluator.embed_texts(rest_captions)])
        all_generated = np.concatenate([gen_emb, evaluator.embed_motions(rest_generated)])
        all_real = np.concatenate([real_emb, reference_emb])
        sources = np.array([source_of_clip(c.name) for c in subset + rest])
        model_hits = true_motion_ranks(all_text, all_generated) == 0
        real_hits = true_motion_ranks(all_text, all_real) == 0
        sources = sources[: len(model_hits)]
        task = f"text-to-motion by source ({len(model_hits)} clips)"
        row(task, "R-precision top-1, all sources", model_hits.mean(), real_hits.mean(), "higher")
        for source in dict.fromkeys(sorted(sources)):
            mine = sources == source
            row(task, f"R-precision top-1, {source} ({int(mine.sum())} clips)", model_hits[mine].mean(),
                real_hits[mine].mean(), "higher")
        seconds[task] = time.perf_counter() - t0
        log(f"quality: {task} {seconds[task]:.1f} s")

    # captioning: the model describes each real motion; references = all captions of the clip
    t0 = time.perf_counter()
    described = [mg.describe(m) for m in real]
    # references: the clip's captions other than the one the real row stands in with, for both rows
    references = [[r for r in c.captions if r != caption] or [caption] for c, caption in zip(subset, captions)]
    described_emb = evaluator.embed_texts(described)
    top = r_precision(described_emb, real_emb)
    task = f"captioning ({count} motions)"
    for k in range(3):
        row(task, f"R-precision top-{k + 1}", top[k], real_top[k], "higher")
    row(task, "MM-Dist", matching_score(described_emb, real_emb), real_mm_dist, "lower")
    row(task, "BLEU@1", bleu(described, references, 1), bleu(captions, references, 1), "higher")
    row(task, "BLEU@4", bleu(described, references, 4), bleu(captions, references, 4), "higher")
    row(task, "ROUGE-L", rouge_l(described, references), rouge_l(captions, references), "higher")
    row(task, "CIDEr", cider(described, references), cider(captions, references), "higher")
    row(task, "BERTScore F1 (MiniLM)", bert_score(described, references), bert_score(captions, references), "higher")
    seconds[task] = time.perf_counter() - t0
    log(f"quality: {task} {seconds[task]:.1f} s")

    # prediction: the first 20 % given, the rest predicted; baseline: the last given pose held still
    t0 = time.perf_counter()
    predicted, held, truths = [], [], []
    for i, m in enumerate(real):
        if len(m) < settings.predict_min_frames:
            continue
        given = max(8, round(settings.predict_context * len(m)))
        future = len(m) - given
        out = mg.predict(m[:given], future / MODEL_FPS, seed=settings.seed + i).joints
        predicted.append(out[:len(m)])
        held.append(np.concatenate([m.joints[:given], np.repeat(m.joints[given - 1:given], future, axis=0)]))
        truths.append((given, m.joints))
    task = f"prediction ({len(truths)} clips, first 20 % given)"
    errors = [ade_fde(p[g:], t[g:]) for p, (g, t) in zip(predicted, truths)]
    baseline = [ade_fde(h[g:], t[g:]) for h, (g, t) in zip(held, truths)]
    row(task, "ADE (m)", np.mean([e[0] for e in errors]), np.mean([e[0] for e in baseline]), "lower")
    row(task, "FDE (m)", np.mean([e[1] for e in errors]), np.mean([e[1] for e in baseline]), "lower")
    row(task, "FID", _fid_row(evaluator, predicted, reference_emb), _fid_row(evaluator, held, reference_emb), "lower")
    seconds[task] = time.perf_counter() - t0
    log(f"quality: {task} {seconds[task]:.1f} s")

    # in-between: a gap in the middle of each long-enough clip; baseline: linear interpolation
    for gap_seconds in settings.gaps_seconds:
        t0 = time.perf_counter()
        gap = round(gap_seconds * MODEL_FPS)
        filled, linear, errors, linear_errors = [], [], [], []
        for i, m in enumerate(real):
            if len(m) < gap + 2 * settings.gap_context_frames:
                continue
            joints = m.joints
            start = (len(joints) - gap) // 2
            before, truth, after = joints[:start], joints[start:start + gap], joints[start + gap:]
            fill = mg.inbetween(Motion(before), Motion(after), gap, seed=settings.seed + i).joints
            line = linear_inbetween(before[-1], after[0], gap)
            errors.append(ade_fde(fill, truth)[0])
            linear_errors.append(ade_fde(line, truth)[0])
            filled.append(np.concatenate([before, fill, after]))
            linear.append(np.concatenate([before, line, after]))
        task = f"in-between {gap_seconds:g} s ({len(errors)} clips)"
        row(task, "ADE (m)", np.mean(errors), np.mean(linear_errors), "lower")
        row(task, "FID", _fid_row(evaluator, filled, reference_emb), _fid_row(evaluator, linear, reference_emb), "lower")
        seconds[task] = time.perf_counter() - t0
        log(f"quality: {task} {seconds[task]:.1f} s")

    seconds["total"] = time.perf_counter() - started
    return {"model": str(model), "evaluator": evaluator_source, "data": str(data_dir),
            "clips": count, "reference_clips": len(rest), "settings": asdict(settings),
            "rows": rows, "seconds": {k: round(v, 1) for k, v in seconds.items()}}


BASELINE_NAMES = {"prediction": "last pose held", "in-between": "linear interpolation"}


def format_table(result: dict) -> str:
    """The rows of ``evaluate`` as one markdown table: task (with its seconds), metric, model, and
    the real-data value, or for prediction / in-between the simple baseline's."""
    lines = ["| task | metric | model | real data / baseline | better |", "|---|---|---|---|---|"]
    previous = None
    for r in result["rows"]:
        task = r["task"]
        first = task != previous
        previous = task
        kind = next((name for key, name in BASELINE_NAMES.items() if task.startswith(key)), "real data")
        label = f"{task}, {result['seconds'].get(task, 0):.0f} s" if first else ""
        reference = "—" if r["real"] is None else f"{_number(r['real'])}" + ("" if kind == "real data" else f" ({kind})")
        lines.append(f"| {label} | {r['metric']} | {_number(r['model'])} | {reference} | {r['better']} |")
    return "\n".join(lines) + "\n"


def _number(value) -> str:
    if value is None:
        return "—"
    return f"{value:.3f}" if abs(value) < 100 else f"{value:.1f}"


# ----------------------------------------------------------------------------- command line

def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m engine.eval", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    train = commands.add_parser("train", help="train the text-motion evaluator")
    train.add_argument("--data", type=Path, default=None, help="built dataset (default: cache/dataset)")
    train.add_argument("--out", type=Path, default=DEFAULT_EVALUATOR)
    train.add_argument("--minutes", type=float, default=12.0, help="wall-clock budget of the training steps")
    train.add_argument("--steps", type=int, default=6000)
    train.add_argument("--batch", type=int, default=128)
    train.add_argument("--lr", type=float, default=1e-3)
    train.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    train.add_argument("--seed", type=int, default=0)
    run = commands.add_parser("evaluate", help="print the quality table of a model folder")
    run.add_argument("--model", default="default")
    run.add_argument("--data", type=Path, default=None)
    run.add_argument("--evaluator", type=Path, default=None)
    run.add_argument("--clips", type=int, default=EvalSettings.clips)
    run.add_argument("--threads", type=int, default=None)
    args = parser.parse_args(argv)
    from .data import default_dataset_dir
    try:
        if args.threads:
            torch.set_num_threads(args.threads)
        if args.command == "train":
            train_evaluator(args.data or default_dataset_dir(), args.out, args.minutes, args.steps, args.batch,
                            args.lr, seed=args.seed)
        else:
            result = evaluate(args.model, args.data, args.evaluator, EvalSettings(clips=args.clips))
            print(format_table(result))
    except MotionError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
