"""Sparse keys: reduce a densely sampled channel set to the fewest Bezier keys that stay within a
tolerance (plain numpy, no bpy; ``anim_compat.write_bezier_keys`` writes the result).

The curve is the one Blender evaluates for Bezier keys whose handles sit at 1/3 and 2/3 of each
segment in time: then the Bezier's x is linear in its parameter and y is exactly the cubic Hermite
through the two keys with the key tangents. Every key has one tangent shared by its left and right
handle (ALIGNED handles), so the curve is C1 and an animator can drag a key or a handle as usual.

Selection is a greedy split (Ramer-Douglas-Peucker-like): start with the first and last frame as
keys; while a segment's worst sample is off by more than the tolerance, make that sample a key.
A segment between two neighbouring frames has no samples in between, so it always ends. Tangents
are the dense samples' slopes (central differences) at the keys. Then (``refine``) each key's
tangent is refitted by least squares over its two segments (kept only where both stay within the
tolerance), and one pass drops every inner key whose two segments, merged, with the neighbours'
tangents refitted, still stay within the tolerance (on a real 10 s walk this takes the keys from
about 1/6 to about 1/9 of every frame). Every check is against every dense sample, so the result
is always within the tolerance (ending at every frame keyed for data with no smoothness).

Channels of one property are reduced together (one key set for all of them) and measured with the
property's error: ``quaternion`` (w, x, y, z) and ``axis_angle`` (angle, x, y, z) by the angle of
the re-normalised rotation, ``euler`` by the sum of the channels' errors (an upper bound on the
rotation angle), ``location`` (and anything else) by the Euclidean distance. Tolerances are in
radians for rotations and in the channels' own units otherwise.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

ROTATION_KINDS = ("quaternion", "axis_angle", "euler")


@dataclass
class BezierKeys:
    """Keys of C channels: frames (K,), values (K, C), handles as (frame, value) pairs:
    left / right (K, C, 2). ``index`` (K,) are the keys' positions in the dense samples."""

    index: np.ndarray
    frames: np.ndarray
    values: np.ndarray
    left: np.ndarray
    right: np.ndarray

    @property
    def count(self) -> int:
        return int(self.frames.shape[0])


def _normalised(q: np.ndarray) -> np.ndarray:
    norm = np.linalg.norm(q, axis=-1, keepdims=True)
    out = np.zeros_like(q)
    np.divide(q, norm, out=out, where=norm > 1e-12)
    out[..., 0] = np.where(norm[..., 0] > 1e-12, out[..., 0], 1.0)
    return out


def _axis_angle_to_quaternion(values: np.ndarray) -> np.ndarray:
    angle = values[..., 0]
    axis = values[..., 1:]
    norm = np.linalg.norm(axis, axis=-1, keepdims=True)
    axis = np.where(norm > 1e-12, axis / np.maximum(norm, 1e-12), 0.0)
    half = angle[..., None] / 2.0
    return np.concatenate([np.cos(half), np.sin(half) * axis], axis=-1)


def quaternion_angle(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(...,) the rotation angle (radians) between quaternions a and b (..., 4), re-normalised
    (Blender normalises a bone's quaternion before posing it); accurate for small angles."""
    a = _normalised(np.asarray(a, dtype=np.float64))
    b = _normalised(np.asarray(b, dtype=np.float64))
    sign = np.where(np.sum(a * b, axis=-1) < 0.0, -1.0, 1.0)[..., None]
    chord = np.linalg.norm(a - sign * b, axis=-1)
    return 4.0 * np.arcsin(np.clip(chord / 2.0, 0.0, 1.0))


def channel_error(kind: str, original: np.ndarray, approx: np.ndarray) -> np.ndarray:
    """(M,) error of ``approx`` against ``original`` (M, C) for a property of ``kind``."""
    if kind == "quaternion":
        return quaternion_angle(original, approx)
    if kind == "axis_angle":
        return quaternion_angle(_axis_angle_to_quaternion(original), _axis_angle_to_quaternion(approx))
    if kind == "euler":
        return np.abs(approx - original).sum(axis=-1)
    return np.linalg.norm(approx - original, axis=-1)


def hermite(t: np.ndarray, t0: float, t1: float, y0: np.ndarray, y1: np.ndarray,
            m0: np.ndarray, m1: np.ndarray) -> np.ndarray:
    """(M, C) the cubic Hermite between (t0, y0, slope m0) and (t1, y1, slope m1) at times t (M,)."""
    h = t1 - t0
    s = ((np.asarray(t, dtype=np.float64) - t0) / h)[:, None]
    s2, s3 = s * s, s * s * s
    return ((2 * s3 - 3 * s2 + 1) * y0 + (s3 - 2 * s2 + s) * h * m0
            + (-2 * s3 + 3 * s2) * y1 + (s3 - s2) * h * m1)


def _segment_error(frames, values, kind, i, j, tangents) -> tuple[float, int]:
    """(worst error, its sample index) of the Hermite between keys i and j; (0, -1) when there are
    no samples in between."""
    if j - i < 2:
        return 0.0, -1
    inner = slice(i + 1, j)
    approx = hermite(frames[inner], frames[i], frames[j], values[i], values[j], tangents[i], tangents[j])
    error = channel_error(kind, values[inner], approx)
    worst = int(np.argmax(error))
    return float(error[worst]), i + 1 + worst


def _refit_tangent(frames, values, keys, k, tangents) -> np.ndarray:
    """Least-squares tangent of key ``keys[k]`` over its (one or two) segments, others fixed."""
    rows, targets = [], []
    key = keys[k]
    for a, b in ((keys[k - 1] if k > 0 else None, key), (key, keys[k + 1] if k + 1 < len(keys) else None)):
        if a is None or b is None or b - a < 2:
            continue
        t = frames[a + 1:b]
        h = frames[b] - frames[a]
        s = (t - frames[a]) / h
        s2, s3 = s * s, s * s * s
        base = ((2 * s3 - 3 * s2 + 1)[:, None] * values[a] + (-2 * s3 + 3 * s2)[:, None] * values[b])
        if a == key:                                   # the tangent is m0 of this segment
            coeff = (s3 - 2 * s2 + s) * h
            base = base + ((s3 - s2) * h)[:, None] * tangents[b]
        else:                                          # the tangent is m1
            coeff = (s3 - s2) * h
            base = base + ((s3 - 2 * s2 + s) * h)[:, None] * tangents[a]
        rows.append(coeff)
        targets.append(values[a + 1:b] - base)
    if not rows:
        return tangents[key]
    coeff = np.concatenate(rows)
    target = np.concatenate(targets)
    denom = float(coeff @ coeff)
    if denom <= 1e-12:
        return tangents[key]
    return (coeff @ target) / denom


def _within(frames, values, kind, tolerance, keys, ks, tangents) -> bool:
    """Whether the segments that start at positions ``ks`` of ``keys`` are within tolerance."""
    return all(_segment_error(frames, values, kind, keys[k], keys[k + 1], tangents)[0] <= tolerance
               for k in ks if 0 <= k < len(keys) - 1)


def _try_refit(frames, values, kind, tolerance, keys, k, tangents) -> bool:
    """Refit key ``keys[k]``'s tangent by least squares; kept only when its segments stay within
    tolerance. Whether it was kept."""
    key = keys[k]
    old = tangents[key].copy()
    tangents[key] = _refit_tangent(frames, values, keys, k, tangents)
    if _within(frames, values, kind, tolerance, keys, (k - 1, k), tangents):
        return True
    tangents[key] = old
    return False


def _drop_keys(frames, values, kind, tolerance, keys: list, tangents) -> np.ndarray:
    """One pass over the inner keys: drop a key when the merged segment (with its neighbours'
    tangents refitted) and the neighbours' other segments stay within tolerance."""
    k = 1
    while k < len(keys) - 1:
        trial = keys[:k] + keys[k + 1:]
        saved = tangents[[keys[k - 1], keys[k + 1]]].copy()
        for j in (k - 1, k):                       # the neighbours, now at k - 1 and k of trial
            tangents[trial[j]] = _refit_tangent(frames, values, trial, j, tangents)
        if _within(frames, values, kind, tolerance, trial, (k - 2, k - 1, k), tangents):
            keys = trial                          # the next candidate is now at k
        else:
            tangents[[keys[k - 1], keys[k + 1]]] = saved
            k += 1
    return np.asarray(keys)


def reduce_keys(frames: np.ndarray, values: np.ndarray, tolerance: float, kind: str = "location",
                refine: bool = True) -> BezierKeys:
    """The fewest-ish Bezier keys for the dense samples (frames (N,), values (N,) or (N, C)) whose
    curve stays within ``tolerance`` (see the module doc for ``kind`` and units) at every sample."""
    frames = np.asarray(frames, dtype=np.float64)
    values = np.asarray(values, dtype=np.float64)
    single = values.ndim == 1
    if single:
        values = values[:, None]
    n = frames.shape[0]
    if n == 0:
        raise ValueError("no samples to reduce")
    if values.shape[0] != n:
        raise ValueError(f"{n} frames but {values.shape[0]} values")
    if n > 1 and np.any(np.diff(frames) <= 0):
        raise ValueError("frames must increase")
    tangents = np.gradient(values, frames, axis=0) if n > 1 else np.zeros_like(values)

    keep = np.zeros(n, dtype=bool)
    keep[0] = keep[-1] = True
    stack = [(0, n - 1)] if n > 1 else []
    while stack:
        i, j = stack.pop()
        error, worst = _segment_error(frames, values, kind, i, j, tangents)
        if error > tolerance:
            keep[worst] = True
            stack.append((i, worst))
            stack.append((worst, j))
    keys = np.flatnonzero(keep)

    if refine and len(keys) > 1:
        for k in range(len(keys)):
            _try_refit(frames, values, kind, tolerance, keys, k, tangents)
        keys = _drop_keys(frames, values, kind, tolerance, list(keys), tangents)

    key_frames = frames[keys]
    key_values = values[keys]
    key_tangents = tangents[keys]
    if len(keys) > 1:
        gaps = np.diff(key_frames)
        before = np.concatenate([gaps[:1], gaps]) / 3.0       # handle reach in frames
        after = np.concatenate([gaps, gaps[-1:]]) / 3.0
    else:
        before = after = np.full(1, 1.0 / 3.0)
    c = values.shape[1]
    left = np.empty((len(keys), c, 2))
    right = np.empty((len(keys), c, 2))
    left[..., 0] = (key_frames - before)[:, None]
    left[..., 1] = key_values - key_tangents * before[:, None]
    right[..., 0] = (key_frames + after)[:, None]
    right[..., 1] = key_values + key_tangents * after[:, None]
    return BezierKeys(keys, key_frames, key_values[:, 0] if single else key_values,
                      left[:, 0] if single else left, right[:, 0] if single else right)


def evaluate(keys: BezierKeys, frames: np.ndarray) -> np.ndarray:
    """The Bezier curve of ``keys`` (handles at 1/3 and 2/3 of each segment) at ``frames`` within
    the keys' range; (M,) or (M, C) like the keys' values."""
    frames = np.asarray(frames, dtype=np.float64)
    values = keys.values if keys.values.ndim == 2 else keys.values[:, None]
    right = keys.right if keys.right.ndim == 3 else keys.right[:, None]
    left = keys.left if keys.left.ndim == 3 else keys.left[:, None]
    out = np.empty((frames.shape[0], values.shape[1]))
    if keys.count == 1:
        out[:] = values[0]
    else:
        seg = np.clip(np.searchsorted(keys.frames, frames, side="right") - 1, 0, keys.count - 2)
        for s in np.unique(seg):
            mask = seg == s
            t0, t1 = keys.frames[s], keys.frames[s + 1]
            m0 = (right[s, :, 1] - values[s]) / (right[s, :, 0] - t0)
            m1 = (values[s + 1] - left[s + 1, :, 1]) / (t1 - left[s + 1, :, 0])
            out[mask] = hermite(frames[mask], t0, t1, values[s], values[s + 1], m0, m1)
    return out if keys.values.ndim == 2 else out[:, 0]
