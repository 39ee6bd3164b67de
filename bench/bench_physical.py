"""Does the motion do what the prompt asks? Judged from the joints alone (issue 17): no text model.

- Checks: ``bench/motion_checks.py`` ``PHYSICAL_CHECKS``, one per action key (walk, run, ...,
  sit, kneel, crawl, cartwheel, jumping_jacks, spin), each a rule a person watching would use
  (pelvis low with the head above it = seated; both feet 0.10 m up for 3 frames = a jump; ...).
- Calibration: the checks on real takes (``motion_checks.physical_takes``: up to ``PER_CLASS``
  takes of each Bandai action, each HDM05 class and the CMU trials named in ``CMU_CLASSES``). The
  confusion table (rows: take classes; columns: checks; share of the takes passing) is printed;
  the results keep per check the share of its own takes passing (``PHYSICAL_OWN``; none for the
  actions no real take shows: sit, stand_up, kneel, crawl, cartwheel, jumping_jacks, spin, whose
  checks are designed from body mechanics and only shown to fail on every other class) and the
  other class passing most (``RELATED`` actions and ``MIXED_CLASSES``, long many-action takes,
  left out). The joints are cached under the temporary folder (``CACHE``).
- Generations: every prompt of tests/data/physical_prompts_blind.tsv (``action<TAB>prompt``,
  written blind: by someone who saw neither the captions nor the lexicon) x ``SEEDS``, ``SECONDS``
  long, with the bundled model or the one named by ``--model DIR`` ($MOTIONGPT_BENCH_MODEL), judged
  with its action's check. Reported: the share passing overall, per action, and split into the
  actions the training data holds (``HELD``) and those it does not (``NOT_HELD``). The same for a
  second blind set, tests/data/physical_prompts_blind_2.tsv (held actions only, another writer),
  and the held share of both sets together.
- MOTIONGPT_BENCH_THREADS=N sets torch's CPU threads (default 2). MOTIONGPT_BENCH_PHYSICAL_SAVE=FILE.npz
  keeps the generated joints (keys ``set|action|seed|row``) to look at the failures.
"""
from __future__ import annotations

import csv
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path.insert(0, str(BENCH))

import motion_checks  # noqa: E402

PROMPTS = REPO / "tests" / "data" / "physical_prompts_blind.tsv"
# A second set, written blind by another writer (8 prompts for each held action): the share of the
# two together has a binomial standard error of ~1.4 points instead of ~2.
PROMPTS_2 = REPO / "tests" / "data" / "physical_prompts_blind_2.tsv"
DATA = REPO.parent / "shared" / "data"
SEEDS = (0, 1, 2)
SECONDS = 5.0
BATCH = 54                 # prompts generated per batch
PER_CLASS = 6              # real takes per class in the calibration
CACHE = Path(tempfile.gettempdir()) / f"motiongpt-physical-takes-{PER_CLASS}-v2.npz"

# Actions the training data holds (has takes of) and the common ones it does not: the lead adjusts
# this split when the training data changes.
HELD = ("walk", "run", "walk_backward", "turn_left", "turn_right", "bow", "wave", "raise_hands", "punch",
        "kick", "jump", "hop", "squat", "lie_down", "pick_up", "reach_up", "throw", "sneak", "arm_circles", "climb")
NOT_HELD = ("sit", "stand_up", "kneel", "crawl", "cartwheel", "jumping_jacks", "spin")


def read_prompts(path: Path = PROMPTS) -> list[tuple[str, str]]:
    """[(action, prompt)] of the blind prompt file (a KeyError names an action without a check)."""
    rows = [(row["action"].strip(), row["prompt"].strip())
            for row in csv.DictReader(path.open(encoding="utf-8"), delimiter="\t") if row.get("prompt")]
    unknown = sorted({a for a, _ in rows if a not in motion_checks.PHYSICAL_CHECKS})
    if unknown:
        raise KeyError(f"{path.name}: no check for the action(s) {', '.join(unknown)}")
    return rows


def load_takes() -> dict[str, list[np.ndarray]]:
    """``motion_checks.physical_takes`` (cached in ``CACHE``)."""
    if CACHE.is_file():
        try:
            with np.load(CACHE) as stored:
                takes: dict[str, list[np.ndarray]] = {}
                for key in sorted(stored.files, key=lambda k: (k.rsplit("|", 1)[0], int(k.rsplit("|", 1)[1]))):
                    takes.setdefault(key.rsplit("|", 1)[0], []).append(stored[key])
                return takes
        except (OSError, ValueError, KeyError):
            pass
    takes = motion_checks.physical_takes(DATA, per_class=PER_CLASS)
    try:
        np.savez(CACHE, **{f"{name}|{i}": joints for name, clips in takes.items() for i, joints in enumerate(clips)})
    except OSError:
        pass
    return takes


def calibration() -> dict:
    table = motion_checks.physical_table(load_takes())
    print("calibration: share of each class's real takes passing each check")
    print(motion_checks.format_physical_table(table))
    summary = motion_checks.physical_summary(table)
    results = {}
    print(f"\n{'check':<14} {'own takes':>9}  worst other class")
    for check, entry in summary.items():
        own = entry["own"]
        worst, share = entry["worst_other"]
        own_text = "no takes" if own is None else f"{own:.2f}"
        worst_text = f"{worst} {share:.2f}" if share > 0 else "none (0 on every other class)"
        print(f"{check:<14} {own_text:>9}  {worst_text}")
        results[f"calibration_{check}_own"] = "no real takes" if own is None else round(own, 2)
        results[f"calibration_{check}_worst_other"] = worst_text
    print()
    return results


def share(passed: list[bool]) -> float:
    return round(100.0 * float(np.mean(passed)), 1) if passed else float("nan")


def generate_and_check(model, rows: list[tuple[str, str]], label: str,
                       kept: dict[str, np.ndarray]) -> dict[str, list[bool]]:
    """{action: [check passed per generation]} for ``rows`` x ``SEEDS`` (joints kept in ``kept``
    under ``label|action|seed|row``)."""
    started = time.perf_counter()
    passed: dict[str, list[bool]] = {}
    for seed in SEEDS:
        for start in range(0, len(rows), BATCH):
            chunk = rows[start:start + BATCH]
            motions = model.text_to_motion_batch([p for _, p in chunk], seconds=SECONDS,
                                                 seed=[1000 * seed + start + i for i in range(len(chunk))])
            for i, ((action, _), motion) in enumerate(zip(chunk, motions)):
                joints = motion.joints.astype(np.float64)
                passed.setdefault(action, []).append(bool(motion_checks.PHYSICAL_CHECKS[action](joints)))
                kept[f"{label}|{action}|{seed}|{start + i}"] = motion.joints
            done = [ok for values in passed.values() for ok in values]
            print(f"{label}: generated {len(done)}/{len(rows) * len(SEEDS)} ({time.perf_counter() - started:.0f} s): "
                  f"{share(done)} % pass so far", flush=True)
            if os.environ.get("MOTIONGPT_BENCH_PHYSICAL_SAVE"):
                np.savez(os.environ["MOTIONGPT_BENCH_PHYSICAL_SAVE"], **kept)
    return passed


def run() -> dict:
    import torch
    from engine.model import MotionGPT

    results: dict = calibration()
    if not torch.cuda.is_available():
        torch.set_num_threads(int(os.environ.get("MOTIONGPT_BENCH_THREADS", 2)))
    source = os.environ.get("MOTIONGPT_BENCH_MODEL") or "default"
    model = MotionGPT.from_pretrained(source)
    started = time.perf_counter()
    kept: dict[str, np.ndarray] = {}
    rows, second_rows = read_prompts(), read_prompts(PROMPTS_2)
    passed = generate_and_check(model, rows, "blind", kept)
    second = generate_and_check(model, second_rows, "blind2", kept)
    generation_s = time.perf_counter() - started

    def held(by_action: dict[str, list[bool]]) -> list[bool]:
        return [ok for a in HELD for ok in by_action.get(a, [])]

    not_held = [ok for a in NOT_HELD for ok in passed.get(a, [])]
    everything = [ok for values in passed.values() for ok in values]
    results["model"] = source
    results["prompts"] = len(rows)
    results["generations"] = len(everything)
    results["held_pass_pct"] = share(held(passed))
    results["not_held_pass_pct"] = share(not_held)
    results["all_pass_pct"] = share(everything)
    results["by_action_pass_pct"] = {a: share(v) for a, v in passed.items()}
    results["second_set_prompts"] = len(second_rows)
    results["second_set_held_pass_pct"] = share(held(second))
    results["second_set_by_action_pass_pct"] = {a: share(v) for a, v in second.items()}
    results["both_sets_held_pass_pct"] = share(held(passed) + held(second))
    results["generation_s"] = round(generation_s, 1)
    return results
