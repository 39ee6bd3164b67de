"""The joint checks of bench/motion_checks.py (bench physical) on a few real takes: each passes its
own action's check and fails clearly different ones. HDM05 members are unpacked from the archive
into a temporary folder; a Bandai walk and a CMU jump are read as they are."""
from __future__ import annotations

import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest

from engine.formats.asf import find_asf, read_asf_amc
from engine.formats.bvh import read_bvh

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
import motion_checks  # noqa: E402

HDM05 = {"squat": "train/10/HDM_bd_squat1Reps_001_120.amc",
         "lie_down": "train/7/HDM_bd_lieDownFloor_001_120.amc",
         "kick": "train/6/HDM_bd_kickLFront1Reps_001_120.amc",
         "hop": "train/4/HDM_bd_hopBothLegs1hops_001_120.amc",
         "elbow_to_knee": "train/2/HDM_bd_elbowToKnee1RepsLelbowStart_005_120.amc"}
# each take: its own check passes, these fail
MUST_FAIL = {
    "squat": ("lie_down", "walk", "jump", "kick", "sit", "stand_up", "crawl", "cartwheel", "spin"),
    "lie_down": ("squat", "walk", "raise_hands", "kneel", "sit", "crawl", "cartwheel", "jumping_jacks", "spin"),
    "kick": ("squat", "lie_down", "walk", "sit", "kneel", "crawl", "throw"),
    "hop": ("squat", "lie_down", "kick", "sit", "stand_up", "climb", "jumping_jacks"),
    "walk": ("run", "walk_backward", "jump", "squat", "lie_down", "sit", "kneel", "crawl", "climb", "spin", "sneak"),
    "jump": ("walk", "squat", "lie_down", "sit", "crawl", "cartwheel"),
}


@pytest.fixture(scope="module")
def takes(shared_data, tmp_path_factory) -> dict[str, np.ndarray]:
    out = tmp_path_factory.mktemp("hdm05")
    wanted = set(HDM05.values()) | {f"{Path(p).parent}/HDM_bd.asf" for p in HDM05.values()}
    with tarfile.open(shared_data / "hdm05" / "hdm05-subset.tar.xz") as tar:
        for member in tar.getmembers():
            name = member.name.split("hdm05/", 1)[-1]
            if member.isfile() and name in wanted:
                (out / name).parent.mkdir(parents=True, exist_ok=True)
                (out / name).write_bytes(tar.extractfile(member).read())
    joints = {action: read_asf_amc(find_asf(out / path), out / path).resample(20).joints.astype(np.float64)
              for action, path in HDM05.items()}
    walk = sorted((shared_data / "bandai" / "dataset-1" / "data").glob("*_walk_*.bvh"))[0]
    joints["walk"] = read_bvh(walk).resample(20).joints.astype(np.float64)
    joints["jump"] = read_bvh(shared_data / "cmu" / "02_04.bvh", bone_map="cmu").resample(20).joints.astype(np.float64)
    return joints


@pytest.mark.parametrize("action", list(MUST_FAIL))
def test_a_real_take_passes_its_check_and_fails_others(takes, action):
    checks = motion_checks.PHYSICAL_CHECKS
    joints = takes[action]
    assert checks[action](joints), f"a real {action} take fails its own check"
    passing = [other for other in MUST_FAIL[action] if checks[other](joints)]
    assert not passing, f"a real {action} take passes the checks of {passing}"


def test_a_knee_raised_to_the_elbow_is_not_a_kick(takes):
    """The kick check takes front and side kicks (the foot 0.7 m out from the pelvis); a knee raised
    to the opposite elbow keeps the foot closer and passes neither the kick nor the jump check."""
    joints = takes["elbow_to_knee"]
    assert not motion_checks.PHYSICAL_CHECKS["kick"](joints)
    assert not motion_checks.PHYSICAL_CHECKS["jump"](joints)


def test_every_action_of_the_blind_prompts_has_a_check():
    from bench_physical import HELD, NOT_HELD, PROMPTS_2, read_prompts
    assert set(HELD) | set(NOT_HELD) == set(motion_checks.PHYSICAL_CHECKS)
    assert not set(HELD) & set(NOT_HELD)
    first, second = read_prompts(), read_prompts(PROMPTS_2)   # a KeyError names an action without a check
    assert {a for a, _ in first} == set(HELD) | set(NOT_HELD)
    assert {a for a, _ in second} == set(HELD)


def test_standing_still_passes_nothing_that_moves(takes):
    still = np.repeat(takes["walk"][:1], 60, axis=0)
    passing = [name for name, check in motion_checks.PHYSICAL_CHECKS.items() if check(still)]
    assert passing == []


def _turned_about_y(joints: np.ndarray, angles: np.ndarray) -> np.ndarray:
    """Each frame rotated about the vertical through its pelvis by its angle (radians)."""
    centre = joints[:, :1]
    c, s = np.cos(angles)[:, None], np.sin(angles)[:, None]
    x, z = joints[..., 0] - centre[..., 0], joints[..., 2] - centre[..., 2]
    out = joints.copy()
    out[..., 0] = centre[..., 0] + c * x + s * z
    out[..., 2] = centre[..., 2] - s * x + c * z
    return out


def test_designed_checks_on_made_up_motions(takes):
    """The checks no real take shows: a standing pose turned a full circle spins; the same pose
    upside down for a few frames is a cartwheel (and neither is the other)."""
    checks = motion_checks.PHYSICAL_CHECKS
    still = np.repeat(takes["walk"][:1], 60, axis=0)
    spinning = _turned_about_y(still, np.linspace(0, 2 * np.pi, 60))
    assert checks["spin"](spinning) and not checks["cartwheel"](spinning)
    flipped = still.copy()
    pelvis_y = flipped[20:26, :1, 1]
    flipped[20:26, :, 1] = 2 * pelvis_y - flipped[20:26, :, 1]      # mirrored through the pelvis height
    assert checks["cartwheel"](flipped) and not checks["spin"](flipped)
