"""Is this motion a walk, a wave, a bow ...? Judged from the joints alone, as a person watching would.

No model is asked (a caption from our own describe shares its training labels). Each check takes
joints (T, 22, 3) in metres, Y up, SMPL order, at 20 fps (``engine.Motion`` resampled) and returns
True when the motion shows the action. Thresholds are calibrated on real takes of Bandai Namco
dataset 1 (``python bench/motion_checks.py`` prints the table: each check on takes of each action).

Directions: the facing of a pose comes from its hips and shoulders (``engine.model.heading_angles``:
0 = facing +Z, growing when the person turns to their left).
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

FPS = 20.0
PELVIS, L_FOOT, R_FOOT, NECK, HEAD = 0, 10, 11, 12, 15
L_ANKLE, R_ANKLE = 7, 8
L_SHOULDER, R_SHOULDER, L_WRIST, R_WRIST = 16, 17, 20, 21


def heading(joints: np.ndarray) -> np.ndarray:
    """(T,) unwrapped yaw of the facing, radians (left turns increase it)."""
    from engine.model import heading_angles
    return np.unwrap(heading_angles(joints))


def facing(joints: np.ndarray) -> np.ndarray:
    """(T, 2) unit facing directions on the ground (x, z)."""
    angle = heading(joints)
    return np.stack([np.sin(angle), np.cos(angle)], axis=-1)


def ground_velocity(joints: np.ndarray) -> np.ndarray:
    """(T-1, 2) root velocity on the ground, m/s."""
    return np.diff(joints[:, PELVIS][:, [0, 2]], axis=0) * FPS


def speed(joints: np.ndarray) -> float:
    """Mean ground speed of the root over the clip, m/s (net displacement / time)."""
    if len(joints) < 2:
        return 0.0
    return float(np.linalg.norm(joints[-1, PELVIS, [0, 2]] - joints[0, PELVIS, [0, 2]]) / ((len(joints) - 1) / FPS))


def forward_share(joints: np.ndarray) -> float:
    """Share of the ground travel along the facing (1: all forward, -1: all backward)."""
    velocity = ground_velocity(joints)
    along = (velocity * facing(joints)[:-1]).sum(-1)
    total = np.linalg.norm(velocity, axis=-1).sum()
    return float(along.sum() / total) if total > 1e-9 else 0.0


def floor_height(joints: np.ndarray) -> float:
    return float(joints[:, [L_ANKLE, R_ANKLE, L_FOOT, R_FOOT], 1].min())


def turned(joints: np.ndarray) -> float:
    """Net change of facing over the clip, degrees (left positive), from the first to the last 0.25 s."""
    angle = np.degrees(heading(joints))
    edge = max(1, min(5, len(angle) // 4))
    return float(angle[-edge:].mean() - angle[:edge].mean())


WALK_SPEED, RUN_SPEED = 0.35, 1.6    # m/s; real walks 0.37-1.89 (median 1.17), runs 1.18-4.33 (median 2.8)


def walks(joints: np.ndarray) -> bool:
    return WALK_SPEED <= speed(joints) < RUN_SPEED and forward_share(joints) > 0.5


def runs(joints: np.ndarray) -> bool:
    return speed(joints) >= RUN_SPEED and forward_share(joints) > 0.5


def walks_backward(joints: np.ndarray) -> bool:
    return speed(joints) >= 0.25 and forward_share(joints) < -0.5


def turns_left(joints: np.ndarray) -> bool:
    return turned(joints) >= 45.0


def turns_right(joints: np.ndarray) -> bool:
    return turned(joints) <= -45.0


def bows(joints: np.ndarray) -> bool:
    """The trunk (pelvis -> neck) leans 30 degrees or more from upright, with the head lowered."""
    trunk = joints[:, NECK] - joints[:, PELVIS]
    lean = np.degrees(np.arccos(np.clip(trunk[:, 1] / np.linalg.norm(trunk, axis=-1), -1, 1)))
    head_drop = (joints[:, HEAD, 1] - joints[:, PELVIS, 1]).max() - (joints[:, HEAD, 1] - joints[:, PELVIS, 1]).min()
    return bool(lean.max() >= 30.0 and head_drop >= 0.1)


def _wrist_above_shoulder(joints: np.ndarray, wrist: int, shoulder: int, margin: float = 0.0) -> np.ndarray:
    return joints[:, wrist, 1] > joints[:, shoulder, 1] + margin


def _sideways_swings(joints: np.ndarray, wrist: int, up: np.ndarray, amplitude: float = 0.04) -> int:
    """Direction changes (of at least ``amplitude`` m) of the wrist across the body, counted while
    it is up (``up`` frames), in the body's own frame."""
    across = joints[:, 2] - joints[:, 1]
    across = across[:, [0, 2]] / np.maximum(np.linalg.norm(across[:, [0, 2]], axis=-1, keepdims=True), 1e-9)
    side = ((joints[:, wrist] - joints[:, NECK])[:, [0, 2]] * across).sum(-1)[up]
    if len(side) < 3:
        return 0
    swings, direction, anchor = 0, 0, side[0]
    for value in side[1:]:
        if direction >= 0 and value < anchor - amplitude:
            swings, direction, anchor = swings + (direction > 0), -1, value
        elif direction <= 0 and value > anchor + amplitude:
            swings, direction, anchor = swings + (direction < 0), 1, value
        elif (direction > 0 and value > anchor) or (direction < 0 and value < anchor):
            anchor = value
    return swings


def wave_swings(joints: np.ndarray) -> int:
    """The most sideways swings of a wrist while it is above its shoulder (either hand)."""
    return max(_sideways_swings(joints, wrist, _wrist_above_shoulder(joints, wrist, shoulder))
               for wrist, shoulder in ((L_WRIST, L_SHOULDER), (R_WRIST, R_SHOULDER)))


def waves(joints: np.ndarray) -> bool:
    """A wrist above its shoulder for 0.5 s or more, swinging sideways at least twice."""
    up = [_wrist_above_shoulder(joints, w, s).sum() / FPS for w, s in ((L_WRIST, L_SHOULDER), (R_WRIST, R_SHOULDER))]
    return bool(max(up) >= 0.5 and wave_swings(joints) >= 2)


def raises_hands(joints: np.ndarray) -> bool:
    """Both wrists above the head for 0.3 s or more."""
    both = (joints[:, L_WRIST, 1] > joints[:, HEAD, 1]) & (joints[:, R_WRIST, 1] > joints[:, HEAD, 1])
    return bool(both.sum() / FPS >= 0.3)


def punches(joints: np.ndarray) -> bool:
    """A wrist thrust 0.4 m or more in front of its shoulder, reached at 1.5 m/s or faster (within
    the 0.25 s before)."""
    face = facing(joints)
    for wrist, shoulder in ((L_WRIST, L_SHOULDER), (R_WRIST, R_SHOULDER)):
        reach = ((joints[:, wrist] - joints[:, shoulder])[:, [0, 2]] * face).sum(-1)
        velocity = np.diff(reach, prepend=reach[:1]) * FPS
        for frame in np.flatnonzero(reach >= 0.4):
            if velocity[max(0, frame - 5): frame + 1].max() >= 1.5:
                return True
    return False


def kicks(joints: np.ndarray) -> bool:
    """A foot 0.45 m or more above the floor, in front of the pelvis, while the other stays low."""
    floor = floor_height(joints)
    face = facing(joints)
    for foot, other in ((L_FOOT, R_FOOT), (R_FOOT, L_FOOT)):
        high = joints[:, foot, 1] - floor >= 0.45
        ahead = ((joints[:, foot] - joints[:, PELVIS])[:, [0, 2]] * face).sum(-1) > 0.1
        low = joints[:, other, 1] - floor < 0.2
        if (high & ahead & low).any():
            return True
    return False


def jumps(joints: np.ndarray) -> bool:
    """Both feet 0.10 m or more above the floor for three frames in a row."""
    floor = floor_height(joints)
    lowest = joints[:, [L_ANKLE, R_ANKLE, L_FOOT, R_FOOT], 1].min(axis=1) - floor
    air = lowest >= 0.10
    run = 0
    for flag in air:
        run = run + 1 if flag else 0
        if run >= 3:
            return True
    return False


# The Bandai actions that are each check's own takes (calibration).
OWN_TAKES = {
    "walk": ("walk", "walk-left", "walk-right", "walk-turn-left", "walk-turn-right"), "run": ("run", "dash"), "walk_backward": ("walk-back",),
    "turn_left": ("walk-turn-left",), "turn_right": ("walk-turn-right",), "bow": ("bow",),
    "wave": ("bye", "byebye", "wave-left-hand", "wave-right-hand", "wave-both-hands"),
    "raise_hands": ("raise-up-both-hands",), "punch": ("punch",), "kick": ("kick",), "jump": (),
}
CHECKS = {
    "walk": walks, "run": runs, "walk_backward": walks_backward, "turn_left": turns_left,
    "turn_right": turns_right, "bow": bows, "wave": waves, "raise_hands": raises_hands,
    "punch": punches, "kick": kicks, "jump": jumps,
}


def real_takes(data: Path) -> dict[str, list[np.ndarray]]:
    """{Bandai action: joints at 20 fps} of every take of dataset 1 and the first take of each
    style of dataset 2 (unpacked from its archive into a temporary folder), e.g. "walk-turn-left"."""
    import tarfile
    import tempfile
    from engine.bvh import read_bvh
    takes: dict[str, list[np.ndarray]] = {}
    with tempfile.TemporaryDirectory() as folder:
        with tarfile.open(data / "bandai" / "dataset-2.tar.xz") as archive:
            members = [m for m in archive.getmembers() if m.name.endswith("_001.bvh")]
            archive.extractall(folder, members=members, filter="data")
        paths = sorted((data / "bandai" / "dataset-1" / "data").glob("*.bvh")) + sorted(Path(folder).rglob("*.bvh"))
        for path in paths:
            takes.setdefault(path.stem.split("_")[1], []).append(read_bvh(path).resample(FPS).joints.astype(np.float64))
    return takes


def calibration_table(data: Path) -> dict[str, dict[str, float]]:
    """{Bandai action: {check: share of its takes passing}} (``real_takes``)."""
    return {action: {name: float(np.mean([check(j) for j in clips])) for name, check in CHECKS.items()}
            for action, clips in real_takes(data).items()}


def calibration_summary(table: dict[str, dict[str, float]]) -> dict[str, float]:
    """Per check: the share of its own takes passing (``OWN_TAKES``), and the highest share of
    another action's takes passing it (actions that hold several motions, e.g. the one dance
    take, are left out of the latter)."""
    mixed = {"dance-short", "kick", "punch", "slash"}      # single takes that do many things
    summary = {}
    for name, own in OWN_TAKES.items():
        if own:
            summary[f"calibration_{name}_own_takes"] = float(np.mean([table[a][name] for a in own if a in table]))
        others = [row[name] for action, row in table.items() if action not in own and action not in mixed]
        summary[f"calibration_{name}_other_takes_max"] = float(max(others))
    return summary


if __name__ == "__main__":
    table = calibration_table(Path(__file__).resolve().parents[2] / "shared" / "data")
    names = list(CHECKS)
    print(f"{'takes':<12}" + "".join(f"{n[:9]:>10}" for n in names))
    for action, row in table.items():
        print(f"{action:<12}" + "".join(f"{row[n]:>10.2f}" for n in names))
