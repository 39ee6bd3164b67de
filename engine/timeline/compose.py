"""A timeline of prompts -> one ``engine.Motion`` (20 fps), with any model folder.

1. The whole-body rows are generated as one text-to-motion batch (row i with seed + i, so a
   timeline is reproducible and row i equals ``text_to_motion(text, seconds, seed + i)``).
   Layers whose length depends on the rows under them follow in a second batch.
2. The whole-body rows are put end to end: each starts where the one before ended, with its
   root position and heading carried over. Where two rows meet, ``SEAM_FRAMES`` frames on each
   side are replaced by the model's own in-between, which passes exactly through the frames
   kept on both sides; a gap between two rows is filled the same way. Before the first row the
   first pose is held.
3. A layer takes its part of the body from its own motion: "upper" puts spine3 and everything
   above it (neck, head, collars, arms), turned by the heading difference and moved onto the
   motion under it at spine3, so the legs, the root and the feet stay as they were; "lower" puts
   the root, the legs and the lower spine of its motion (placed where the layer starts) under
   the upper body of the motion around it. Each layer is blended in and out over
   ``LAYER_BLEND_FRAMES`` frames (raised cosine) where it does not start or end the motion.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from ..errors import MotionError
from ..model import check_seed, heading_angles, place_on, rotate_about_y
from ..motion import MODEL_FPS, Motion
from .segments import MAX_TIMELINE_SECONDS, Segment, check_segments, describe_plan

SEAM_FRAMES = 6          # frames replaced on each side of a seam (0.3 s each, 0.6 s in all)
LAYER_BLEND_FRAMES = 6   # frames over which a layer fades in and out (0.3 s)
SPINE3, NECK = 9, 12
# spine3 and up: neck, collars, head, shoulders, elbows, wrists (SMPL joint order).
UPPER_JOINTS = (12, 13, 14, 15, 16, 17, 18, 19, 20, 21)
LOWER_JOINTS = tuple(j for j in range(22) if j not in UPPER_JOINTS and j != SPINE3)


@dataclass
class ComposedTimeline:
    """What ``compose_timeline`` made: the motion, each row's span in frames (start, end) and a
    one-line description of the plan with the lengths used."""

    motion: Motion
    spans: list[tuple[int, int]]
    plan: str


def _fade(frames: int, at_start: bool, at_end: bool) -> np.ndarray:
    """(frames,) weights: 1 inside, rising over LAYER_BLEND_FRAMES from 0 unless at the motion's
    start, falling to 0 at the end unless at the motion's end."""
    weight = np.ones(frames)
    width = min(LAYER_BLEND_FRAMES, frames // 2)
    if width > 0:
        ramp = 0.5 - 0.5 * np.cos(np.pi * (np.arange(width) + 1) / (width + 1))
        if not at_start:
            weight[:width] = np.minimum(weight[:width], ramp)
        if not at_end:
            weight[-width:] = np.minimum(weight[-width:], ramp[::-1])
    return weight


def layer_upper_body(base: np.ndarray, donor: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """``base`` (T, 22, 3) with the upper body (spine3 and up) of ``donor`` (T, 22, 3), blended by
    ``weight`` (T,) in [0, 1]. The donor's upper body is taken relative to its spine3 and its
    heading, and put on the base's spine3 with the base's heading; legs and root are the base's."""
    turn = heading_angles(base) - heading_angles(donor)
    relative = rotate_about_y(donor[:, UPPER_JOINTS] - donor[:, SPINE3:SPINE3 + 1], turn)
    placed = relative + base[:, SPINE3:SPINE3 + 1]
    out = base.copy()
    w = weight[:, None, None]
    out[:, UPPER_JOINTS] = (1.0 - w) * base[:, UPPER_JOINTS] + w * placed
    return out


def _place_after(joints: np.ndarray, previous: np.ndarray, frames_between: int) -> np.ndarray:
    """``joints`` (a generated motion starting at the origin) turned and moved on the ground so
    that it continues ``previous`` (its last frame's heading; its root moved on at the last
    frame's ground velocity for ``frames_between`` + 1 frames)."""
    velocity = previous[-1, 0] - previous[-2, 0] if len(previous) > 1 else np.zeros(3)
    target = previous[-1].copy()
    target[:, [0, 2]] += velocity[[0, 2]] * (frames_between + 1)
    return place_on(joints, 0, target, floor=0.0)


def _join(model, pieces: list[np.ndarray], gaps: list[int], seeds: list[int | None]) -> np.ndarray:
    """Placed rows ``pieces`` end to end, ``gaps[k]`` frames between piece k and k + 1: at each
    seam the last/first SEAM_FRAMES frames of the two pieces (fewer for short rows) and the gap are
    refilled by the model's in-between, all seams in one batch (seam k with ``seeds[k]``)."""
    cuts = [(min(SEAM_FRAMES, max(0, (len(a) - 1) // 2)), min(SEAM_FRAMES, max(0, (len(b) - 1) // 2)))
            for a, b in zip(pieces, pieces[1:])]
    seams = [k for k, (gap, (cut_a, cut_b)) in enumerate(zip(gaps, cuts)) if gap + cut_a + cut_b > 0]
    fills = model.inbetween_many([(Motion(pieces[k][:len(pieces[k]) - cuts[k][0]].astype(np.float32), MODEL_FPS),
                                   Motion(pieces[k + 1][cuts[k][1]:].astype(np.float32), MODEL_FPS),
                                   gaps[k] + cuts[k][0] + cuts[k][1]) for k in seams],
                                 [seeds[k] for k in seams]) if seams else []
    fill_of = dict(zip(seams, (fill.joints.astype(np.float64) for fill in fills)))
    parts = []
    for k, piece in enumerate(pieces):
        first = cuts[k - 1][1] if k > 0 else 0
        last = len(piece) - (cuts[k][0] if k < len(cuts) else 0)
        parts.append(piece[first:last])
        if k in fill_of:
            parts.append(fill_of[k])
    return np.concatenate(parts)


def _generate(model, segments: list[Segment], indices: list[int], seconds: list[float | None],
              seed: int | None) -> dict[int, np.ndarray]:
    """Rows ``indices`` generated as one batch, row i with seed + i: {row index: (T, 22, 3)}."""
    if not indices:
        return {}
    seeds = [None if seed is None else seed + i for i in indices]
    motions = model.text_to_motion_batch([segments[i].text for i in indices], seconds, seed=seeds)
    return {i: m.joints.astype(np.float64) for i, m in zip(indices, motions)}


def compose_timeline(model, segments: Sequence[Segment], seed: int | None = None,
                     source: str = "timeline") -> ComposedTimeline:
    """Generate ``segments`` (see ``engine.timeline.segments``) with ``model`` (an
    ``engine.MotionGPT``) into one Motion at 20 fps; time 0 of the motion is time 0 of the
    timeline. Raises ``MotionError`` naming the row for bad rows and for a result past 60 s."""
    rows = check_segments(segments, source)
    seed = check_seed(seed)
    fps = MODEL_FPS
    whole = [i for i, s in enumerate(rows) if s.part == "whole"]
    layers = [i for i in range(len(rows)) if i not in whole]
    early = whole + [i for i in layers if rows[i].seconds is not None]
    generated = _generate(model, rows, early, [rows[i].seconds for i in early], seed)

    # whole-body rows end to end: placed one after another, then the seams filled in one batch
    spans: dict[int, tuple[int, int]] = {}
    pieces: list[np.ndarray] = []
    gaps: list[int] = []
    for i in whole:
        clip = generated[i]
        end = spans[whole[len(pieces) - 1]][1] if pieces else 0
        start = end if rows[i].start is None else int(round(rows[i].start * fps))
        if not pieces:
            pieces.append(np.concatenate([np.repeat(clip[:1], start, axis=0), clip]))   # the first pose held
        else:
            if start < end:
                raise MotionError(f"{source} row {i + 1}: starts at {start / fps:g} s, before the whole-body "
                                  f"row before it ends ({end / fps:g} s)")
            gaps.append(start - end)
            pieces.append(_place_after(clip, pieces[-1], gaps[-1]))
        spans[i] = (start, start + len(clip))
    joints = _join(model, pieces, gaps, [None if seed is None else seed + i for i in whole[1:]])
    if len(joints) > MAX_TIMELINE_SECONDS * fps + 1e-6:
        raise MotionError(f"{source}: the rows make {len(joints) / fps:.1f} s of motion, past the "
                          f"{MAX_TIMELINE_SECONDS:g} s limit; give shorter lengths")

    # layers: their spans, then the ones still to generate, then onto the motion
    for i in layers:
        owner = max((w for w in whole if w < i), default=whole[0])
        start = int(round(rows[i].start * fps)) if rows[i].start is not None else spans[owner][0]
        end = start + int(round(rows[i].seconds * fps)) if rows[i].seconds is not None else \
            next((e for s, e in (spans[w] for w in whole) if s <= start < e), len(joints))
        if end > len(joints) or end - start < 1:
            raise MotionError(f"{source} row {i + 1}: the {rows[i].part}-body layer ({start / fps:g}-{end / fps:g} s) "
                              f"is not over whole-body motion (which ends at {len(joints) / fps:g} s)")
        spans[i] = (start, end)
    late = [i for i in layers if i not in generated]
    generated.update(_generate(model, rows, late, [(spans[i][1] - spans[i][0]) / fps for i in late], seed))
    for i in layers:
        start, end = spans[i]
        donor = generated[i][:end - start]
        if len(donor) < end - start:         # a generated length a frame short of the span
            donor = np.concatenate([donor, np.repeat(donor[-1:], end - start - len(donor), axis=0)])
        weight = _fade(end - start, at_start=start == 0, at_end=end == len(joints))
        if rows[i].part == "upper":
            joints[start:end] = layer_upper_body(joints[start:end], donor, weight)
        else:
            under = place_on(donor, 0, joints[start], floor=0.0)
            lowered = layer_upper_body(under, joints[start:end], np.ones(end - start))
            w = weight[:, None, None]
            joints[start:end] = (1.0 - w) * joints[start:end] + w * lowered
    order = sorted(range(len(rows)), key=lambda i: spans[i])
    plan = describe_plan([rows[i] for i in order], [(spans[i][1] - spans[i][0]) / fps for i in order])
    return ComposedTimeline(Motion(joints.astype(np.float32), fps), [spans[i] for i in range(len(rows))], plan)


def text_to_motion_planned(model, text: str, seconds: float | None = None,
                           seed: int | None = None) -> tuple[Motion, str | None]:
    """Text to motion through the planner (``plan_prompt``): a prompt that is one action gives
    ``(model.text_to_motion(text, seconds, seed), None)``, exactly as without a planner; a
    compound one gives its composed timeline and the plan's description ("walks forward (6.2 s) |
    + upper body: waves (6.2 s)"). A ``seconds`` given for a compound prompt is shared equally by
    its whole-body rows that the prompt gives no length of their own."""
    from .planner import plan_prompt
    if not isinstance(text, str):
        raise MotionError(f"text must be a string, got {type(text).__name__}")
    rows = plan_prompt(text)
    if len(rows) == 1 and rows[0].seconds is None:
        return model.text_to_motion(text, seconds=seconds, seed=seed), None
    if seconds is not None:
        free = [i for i, row in enumerate(rows) if row.part == "whole" and row.seconds is None]
        left = seconds - sum(row.seconds for row in rows if row.part == "whole" and row.seconds is not None)
        if free and left > 0:
            rows = [Segment(row.text, row.start, left / len(free), row.part) if i in free else row
                    for i, row in enumerate(rows)]
    composed = compose_timeline(model, rows, seed, source=f"the plan of '{text}'")
    return composed.motion, composed.plan
