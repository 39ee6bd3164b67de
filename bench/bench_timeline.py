"""Compound prompts and timelines (engine.timeline) with the bundled model, judged from the joints.

- Prompts: tests/data/compound_prompts_blind.tsv (40) and compound_prompts_heldout.tsv (36), both
  written by helpers who never saw the planner (the planner was developed looking at the first
  set; the second was only ever measured). Each row names the actions in order and the layer.
- For every prompt x 3 seeds: the plan has the right shape (rows in order, the layer on the right
  row), and each part's motion passes its joint check (bench/motion_checks.py) over the frames the
  plan puts it on. The same rows generated alone (one prompt each, same seed and length) are
  judged too, to tell what the model cannot do from what the timeline loses.
- Seams: the largest per-frame joint step inside a seam vs the largest inside the two rows it
  joins (seam frames left out); the target is <= 1.5x.
- Layers: foot skating (engine.eval.foot_skating_ratio) of the walk with the wave layered on it vs
  the walk alone; the README demo prompt "a person walks forward and waves" on seeds 0-2: root
  travel >= 1 m and a wrist above its shoulder swinging sideways >= 2 times.
- Time: a 4-row, 12 s timeline vs generating its rows alone (one batch), best of 2.
"""
from __future__ import annotations

import csv
import sys
import time
from pathlib import Path

import numpy as np

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path.insert(0, str(BENCH))

import motion_checks  # noqa: E402

SETS = {"blind": REPO / "tests" / "data" / "compound_prompts_blind.tsv",
        "heldout": REPO / "tests" / "data" / "compound_prompts_heldout.tsv"}
SEEDS = (0, 1, 2)
DEMO = "a person walks forward and waves"


def read_set(path: Path) -> list[dict]:
    return list(csv.DictReader(path.open(encoding="utf-8"), delimiter="\t"))


def expected_parts(row: dict) -> tuple[list[str], tuple[str, int] | None]:
    """(whole-body labels in order, (layer label, 0-based row it is on) or None)."""
    sequence = row["sequence"].split(" > ")
    layer = None
    if row["layer"].strip():
        label, on = row["layer"].strip().split("@")
        layer = (label, int(on) - 1)
    return sequence, layer


def plan_shape(plan) -> tuple[list[int], dict[int, int]]:
    """(indices of whole-body rows, {index of an upper layer: position of the whole row it is on})."""
    whole, layers = [], {}
    for i, segment in enumerate(plan):
        if segment.part == "whole":
            whole.append(i)
        else:
            layers[i] = len(whole) - 1
    return whole, layers


def step_sizes(joints: np.ndarray) -> np.ndarray:
    """(T-1,) largest joint displacement of each frame step, metres."""
    return np.linalg.norm(np.diff(joints, axis=0), axis=-1).max(axis=1)


def seam_ratios(joints: np.ndarray, spans: list[tuple[int, int]], whole: list[int], seam: int) -> list[float]:
    """For each seam between consecutive whole-body rows: largest step inside the seam / largest
    step inside the two rows (seam frames excluded)."""
    steps = step_sizes(joints)
    ratios = []
    for a, b in zip(whole, whole[1:]):
        cut = spans[b][0]
        inside = steps[max(0, cut - seam - 1): cut + seam]
        rows = np.concatenate([steps[spans[a][0]: max(spans[a][0], cut - seam - 1)],
                               steps[cut + seam: max(cut + seam, spans[b][1] - 1)]])
        if len(rows) and rows.max() > 1e-9:
            ratios.append(float(inside.max() / rows.max()))
    return ratios


def run() -> dict:
    from engine.eval import foot_skating_ratio
    from engine.model import MotionGPT
    from engine.timeline import Segment, compose_timeline, plan_prompt
    from engine.timeline.compose import SEAM_FRAMES

    model = MotionGPT.from_pretrained("default", device="cpu")
    model.text_to_motion("a person walks", seed=0)           # warm-up (readings, WordNet)
    checks = motion_checks.CHECKS
    results: dict = {}
    table = motion_checks.calibration_table(REPO.parent / "shared" / "data")
    results.update(motion_checks.calibration_summary(table))

    all_ratios: list[float] = []
    for name, path in SETS.items():
        rows = read_set(path)
        shape_right = 0
        counts = {"sequence": [0, 0], "layer": [0, 0], "sequence_alone": [0, 0], "layer_alone": [0, 0]}
        prompts_right = 0
        for row in rows:
            plan = plan_prompt(row["prompt"])
            labels, layer = expected_parts(row)
            whole, layers = plan_shape(plan)
            right_shape = len(whole) == len(labels) and (
                (layer is None and not layers) or (layer is not None and list(layers.values()) == [layer[1]]))
            shape_right += right_shape
            for seed in SEEDS:
                composed = compose_timeline(model, plan, seed=seed)
                joints = composed.motion.joints.astype(np.float64)
                all_ratios += seam_ratios(joints, composed.spans, whole, SEAM_FRAMES)
                passed = right_shape
                for k, label in enumerate(labels):
                    ok = right_shape and bool(checks[label](joints[slice(*composed.spans[whole[k]])]))
                    counts["sequence"][0] += ok
                    counts["sequence"][1] += 1
                    passed = passed and ok
                    if right_shape and seed == SEEDS[0]:
                        start, end = composed.spans[whole[k]]
                        alone = model.text_to_motion(plan[whole[k]].text, (end - start) / 20.0, seed=seed + whole[k])
                        counts["sequence_alone"][0] += bool(checks[label](alone.joints.astype(np.float64)))
                        counts["sequence_alone"][1] += 1
                if layer is not None:
                    index = next(iter(layers), None) if right_shape else None
                    ok = index is not None and bool(checks[layer[0]](joints[slice(*composed.spans[index])]))
                    counts["layer"][0] += ok
                    counts["layer"][1] += 1
                    passed = passed and ok
                    if index is not None and seed == SEEDS[0]:
                        start, end = composed.spans[index]
                        alone = model.text_to_motion(plan[index].text, (end - start) / 20.0, seed=seed + index)
                        counts["layer_alone"][0] += bool(checks[layer[0]](alone.joints.astype(np.float64)))
                        counts["layer_alone"][1] += 1
                prompts_right += passed
        results[f"{name}_prompts"] = len(rows)
        results[f"{name}_plan_shape_right_pct"] = 100.0 * shape_right / len(rows)
        for key, (good, total) in counts.items():
            results[f"{name}_{key}_parts_right_pct"] = 100.0 * good / max(total, 1)
        results[f"{name}_prompt_x_seed_all_parts_right_pct"] = 100.0 * prompts_right / (len(rows) * len(SEEDS))
    ratios = np.array(all_ratios)
    results["seams"] = len(ratios)
    results["seam_step_ratio_median"] = float(np.median(ratios))
    results["seam_step_ratio_max"] = float(ratios.max())
    results["seams_within_1_5x_pct"] = 100.0 * float((ratios <= 1.5).mean())

    # the README demo: walks AND waves; the walk's feet kept
    demo_passes, skating_layered, skating_alone = 0, [], []
    for seed in SEEDS:
        composed = compose_timeline(model, plan_prompt(DEMO), seed=seed)
        joints = composed.motion.joints.astype(np.float64)
        travel = float(np.linalg.norm(joints[-1, 0, [0, 2]] - joints[0, 0, [0, 2]]))
        swings = motion_checks.wave_swings(joints)
        results[f"demo_seed{seed}_travel_m"] = travel
        results[f"demo_seed{seed}_wave_swings"] = swings
        demo_passes += travel >= 1.0 and motion_checks.waves(joints)
        walk = plan_prompt(DEMO)[0]           # row 0: generated alone it is the same walk (seed + 0)
        alone = model.text_to_motion(walk.text, walk.seconds, seed=seed).joints.astype(np.float64)
        skating_layered.append(foot_skating_ratio(joints))
        skating_alone.append(foot_skating_ratio(alone))
    results["demo_seeds_walk_and_wave"] = f"{demo_passes}/{len(SEEDS)}"
    results["demo_foot_skating_layered"] = float(np.mean(skating_layered))
    results["demo_foot_skating_walk_alone"] = float(np.mean(skating_alone))

    # time: 4 rows of 3 s vs the rows alone in one batch
    rows = [Segment("a person walks forward", None, 3.0), Segment("a person turns left", None, 3.0),
            Segment("a person runs", None, 3.0), Segment("a person bows", None, 3.0)]
    timeline_s, alone_s = [], []
    for _ in range(2):
        started = time.perf_counter()
        compose_timeline(model, rows, seed=0)
        timeline_s.append(time.perf_counter() - started)
        started = time.perf_counter()
        model.text_to_motion_batch([r.text for r in rows], [r.seconds for r in rows], seed=0)
        alone_s.append(time.perf_counter() - started)
    results["timeline_4_rows_12s_s"] = min(timeline_s)
    results["rows_alone_batch_s"] = min(alone_s)
    results["timeline_vs_rows_alone_x"] = min(timeline_s) / min(alone_s)
    return results
