"""Task quality of the bundled model on the validation split (the numbers issue 4 asks for).

- ``describe_action_accuracy`` / ``describe_style_accuracy``: ``MotionGPT.describe`` on validation
  Bandai clips; a caption counts when it names the clip's action (content label) / its style, by
  the keyword patterns below (a style of "normal" counts when no other style is named).
- ``t2m_describe_back_accuracy``: text-to-motion from each clip's first caption, then ``describe``
  on the result; counts when the description names the prompt's action.
- ``inbetween_mpjpe_mm`` vs ``linear_mpjpe_mm``: the middle second (20 frames) of each validation
  clip is cut out and filled by ``MotionGPT.inbetween(before, after, 20)`` and by linear
  interpolation of joint positions between the two boundary frames; mean joint error against the
  real frames (global positions, metres -> mm).

Clips: the first ``CLIPS`` Bandai validation clips in name order (mirrored ones included, with
left/right swapped in their labels), fixed seeds, so two runs give the same numbers.
"""
from __future__ import annotations

import os
import re
import time

import numpy as np

CLIPS = int(os.environ.get("MOTIONGPT_BENCH_CLIPS", 30))
GAP_FRAMES = 20  # 1 s at 20 fps

# The words that name each Bandai action in a caption.
ACTION_WORDS = {
    "walk": r"\bwalk", "run": r"\b(run|jog)", "dash": r"\b(sprint|dash|runs? .*fast)",
    "walk-back": r"\b(backward|backwards|steps? back)", "walk-left": r"\bleft", "walk-right": r"\bright",
    "walk-turn-left": r"\bturn.*left|left.*turn", "walk-turn-right": r"\bturn.*right|right.*turn",
    "bow": r"\bbow", "bye": r"(goodbye|bye|wav)", "byebye": r"(goodbye|bye|wav)",
    "guide": r"(guide|way|direction|point)", "respond": r"(respond|react|answer|response)",
    "call": r"(call|beckon)", "punch": r"\bpunch", "kick": r"\bkick", "slash": r"(slash|sword)",
    "dance-short": r"\bdanc", "dance-long": r"\bdanc",
    "wave-both-hands": r"wav.*both", "wave-left-hand": r"wav.*left", "wave-right-hand": r"wav.*right",
    "raise-up-both-hands": r"(rais|lift).*both", "raise-up-left-hand": r"(rais|lift).*left",
    "raise-up-right-hand": r"(rais|lift).*right",
}


def _style_pattern(style: str) -> str:
    from engine.data import BANDAI_STYLE
    adverb, adjective = BANDAI_STYLE[style]
    words = {w for w in re.findall(r"[a-z]+", f"{adverb} {adjective}") if len(w) > 3 and w not in {"like", "with", "without", "person", "way"}}
    return "|".join(sorted(words))


def _labels(name: str) -> tuple[str, str]:
    from engine.data import mirror_caption
    mirrored = name.startswith("M")
    _, content, style, _ = (name[1:] if mirrored else name).split("_")
    if mirrored:
        content = mirror_caption(content.replace("-", " ")).replace(" ", "-")
    return content, style


def _names_action(caption: str, content: str) -> bool:
    return re.search(ACTION_WORDS[content], caption.lower()) is not None


def _names_style(caption: str, style: str) -> bool:
    from engine.data import BANDAI_STYLE
    text = caption.lower()
    if style == "normal":
        return not any(re.search(_style_pattern(s), text) for s in BANDAI_STYLE if s != "normal" and _style_pattern(s))
    return re.search(_style_pattern(style), text) is not None


def run() -> dict:
    from engine import Motion, MotionGPT
    from engine.data import default_dataset_dir, load_split
    from engine.eval import linear_inbetween

    dataset = default_dataset_dir()
    if not (dataset / "val.txt").is_file():
        raise RuntimeError(f"{dataset}: build the dataset first (python -m engine.data build)")
    model = MotionGPT.from_pretrained("default")
    clips = [c for c in load_split(dataset, "val") if "dataset-" in c.name][:CLIPS]

    started = time.perf_counter()
    action_hits, style_hits, back_hits = [], [], []
    gap_errors, linear_errors = [], []
    examples = []
    for index, clip in enumerate(clips):
        content, style = _labels(clip.name)
        motion = Motion.from_features(clip.features)
        caption = model.describe(motion)
        action_hits.append(_names_action(caption, content))
        style_hits.append(_names_style(caption, style))

        generated = model.text_to_motion(clip.captions[0], seed=index)
        back = model.describe(generated)
        back_hits.append(_names_action(back, content))
        if index < 5:
            examples.append({"clip": clip.name, "describe": caption, "prompt": clip.captions[0], "describe_back": back})

        joints = motion.joints
        if len(joints) >= GAP_FRAMES + 20:
            start = (len(joints) - GAP_FRAMES) // 2
            before, truth, after = joints[:start], joints[start:start + GAP_FRAMES], joints[start + GAP_FRAMES:]
            filled = model.inbetween(Motion(before), Motion(after), GAP_FRAMES, seed=index).joints
            linear = linear_inbetween(before[-1], after[0], GAP_FRAMES)
            gap_errors.append(np.linalg.norm(filled - truth, axis=-1).mean())
            linear_errors.append(np.linalg.norm(linear - truth, axis=-1).mean())

    return {
        "clips": len(clips),
        "describe_action_accuracy": round(float(np.mean(action_hits)), 3),
        "describe_style_accuracy": round(float(np.mean(style_hits)), 3),
        "t2m_describe_back_accuracy": round(float(np.mean(back_hits)), 3),
        "inbetween_clips": len(gap_errors),
        "inbetween_mpjpe_mm": round(float(np.mean(gap_errors)) * 1000, 1),
        "linear_mpjpe_mm": round(float(np.mean(linear_errors)) * 1000, 1),
        "seconds": round(time.perf_counter() - started, 1),
        "examples": examples,
    }
