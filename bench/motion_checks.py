"""Is this motion a walk, a wave, a bow ...? Judged from the joints alone, as a person watching would.

No model is asked (a caption from our own describe shares its training labels). Each check takes
joints (T, 22, 3) in metres, Y up, SMPL order, at 20 fps (``engine.Motion`` resampled) and returns
True when the motion shows the action. Thresholds are calibrated on real takes of Bandai Namco
dataset 1 (``python bench/motion_checks.py`` prints the table: each check on takes of each action).
``PHYSICAL_CHECKS`` (below) adds the everyday actions of issue 17 (sit, squat, lie down, kneel,
crawl, climb, ...), calibrated on Bandai, HDM05 and CMU takes (``bench/bench_physical.py``).

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
    from engine.formats.bvh import read_bvh
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


# --------------------------------------------------------------------------------------------
# Everyday actions (issue 17, ``bench/bench_physical.py``): one check per action key, calibrated
# on real takes of Bandai, HDM05 and CMU (``physical_takes``). The checks above keep their
# behaviour (``CHECKS``, used by bench_timeline); ``PHYSICAL_CHECKS`` holds every action's check.
# --------------------------------------------------------------------------------------------
L_HIP, R_HIP, L_KNEE, R_KNEE = 1, 2, 4, 5
FEET = [L_ANKLE, R_ANKLE, L_FOOT, R_FOOT]


def _runs_of(flags: np.ndarray) -> list[tuple[int, int]]:
    """[(start, end)) of each run of True frames."""
    flags = np.asarray(flags, dtype=bool)
    edges = np.diff(np.concatenate([[0], flags.astype(np.int8), [0]]))
    return list(zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)))


def _longest(flags: np.ndarray) -> float:
    """The longest run of True frames, seconds."""
    return max((b - a for a, b in _runs_of(flags)), default=0) / FPS


def leg_length(joints: np.ndarray) -> float:
    """Hip -> knee -> ankle, metres (median over frames, both legs averaged)."""
    legs = [np.linalg.norm(joints[:, h] - joints[:, k], axis=-1) + np.linalg.norm(joints[:, k] - joints[:, a], axis=-1)
            for h, k, a in ((L_HIP, L_KNEE, L_ANKLE), (R_HIP, R_KNEE, R_ANKLE))]
    return float(np.median(np.concatenate(legs)))


STAND_RATIO = 1.12     # pelvis height above the floor standing / leg length (real walks: median 1.1x)


def pelvis_height(joints: np.ndarray) -> np.ndarray:
    """(T,) pelvis height above the clip's floor as a share of the standing pelvis height (leg
    length x ``STAND_RATIO``): ~1 standing, ~0.5 seated on a chair, ~0.15 lying."""
    return (joints[:, PELVIS, 1] - floor_height(joints)) / (leg_length(joints) * STAND_RATIO)


def trunk_lean(joints: np.ndarray) -> np.ndarray:
    """(T,) angle of the trunk (pelvis -> neck) from upright, degrees (90: horizontal, 180: upside down)."""
    trunk = joints[:, NECK] - joints[:, PELVIS]
    return np.degrees(np.arccos(np.clip(trunk[:, 1] / np.maximum(np.linalg.norm(trunk, axis=-1), 1e-9), -1, 1)))


def body_frame(joints: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(T, 3) forward and (T, 3) left unit vectors on the ground, from the hips."""
    left = joints[:, L_HIP] - joints[:, R_HIP]
    left[:, 1] = 0
    left /= np.maximum(np.linalg.norm(left, axis=-1, keepdims=True), 1e-9)
    forward = np.cross(left, np.array([0.0, 1.0, 0.0]))
    return forward, left


def height(joints: np.ndarray, joint) -> np.ndarray:
    """Height of a joint (or the lowest of several) above the clip's floor, metres."""
    values = joints[:, joint, 1]
    if values.ndim > 1:
        values = values.min(axis=1)
    return values - floor_height(joints)


def lies_down(joints: np.ndarray) -> bool:
    """Head within 0.5 m of the floor and pelvis below 0.35 m for 0.5 s or more."""
    flat = (height(joints, HEAD) < 0.5) & (height(joints, PELVIS) < 0.35)
    return _longest(flat) >= 0.5


def _seated(joints: np.ndarray) -> np.ndarray:
    """Pelvis below 65 % of its standing height, head 0.35 m or more above it, trunk within 45
    degrees of upright (seated, squatting, kneeling low; not lying, not crawling)."""
    return (pelvis_height(joints) < 0.65) & (joints[:, HEAD, 1] - joints[:, PELVIS, 1] > 0.35) & (trunk_lean(joints) < 45)


def sits(joints: np.ndarray) -> bool:
    """Seated (``_seated``: low pelvis, head above it) for 1 s or more, without lying down, and
    not squatting: the pelvis 0.3 m or more behind the ankles (a chair) or below 0.45 of standing
    (the ground)."""
    pelvis = joints[:, PELVIS]
    forward, _ = body_frame(joints)
    ankles = joints[:, [L_ANKLE, R_ANKLE]].mean(axis=1)
    behind = ((ankles - pelvis) * forward).sum(-1)
    seat = _seated(joints) & ((behind > 0.3) | (pelvis_height(joints) < 0.45))
    return _longest(seat) >= 1.0 and not lies_down(joints)


def squats(joints: np.ndarray) -> bool:
    """Pelvis down below 65 % of standing for 0.2 s or more and back up above 85 % after it,
    starting from standing; feet planted (neither ankle travels 0.3 m over the clip)."""
    level = pelvis_height(joints)
    low = level < 0.65
    if not low.any() or level[0] < 0.85:
        return False
    first_low = int(np.argmax(low))
    back_up = level[first_low:] > 0.85
    planted = max(np.linalg.norm(joints[:, a, [0, 2]] - joints[0, a, [0, 2]], axis=-1).max() for a in (L_ANKLE, R_ANKLE)) < 0.3
    return bool(_longest(low) >= 0.2 and back_up.any() and planted and not lies_down(joints))


def stands_up(joints: np.ndarray) -> bool:
    """Low at the start (pelvis below 65 % of standing in the first 0.5 s) and standing (above
    85 %) for the last 0.5 s."""
    level = pelvis_height(joints)
    edge = max(1, int(0.5 * FPS))
    return bool((level[:edge] < 0.65).any() and (level[-edge:] > 0.85).all())


def kneels(joints: np.ndarray) -> bool:
    """A knee within 0.15 m of the floor with the pelvis below 80 % of standing and above the
    knees, trunk within 35 degrees of upright, for 0.5 s or more; not lying down."""
    knee = height(joints, [L_KNEE, R_KNEE])
    level = pelvis_height(joints)
    upright = trunk_lean(joints) < 35
    flag = (knee < 0.15) & (level < 0.8) & (height(joints, PELVIS) > knee + 0.25) & upright
    return _longest(flag) >= 0.5 and not lies_down(joints)


def crawls(joints: np.ndarray) -> bool:
    """Head below 0.8 m and trunk 50 degrees or more from upright for 1 s or more, with both
    wrists touching down (within 0.15 m of the floor) in that time and the pelvis travelling
    0.4 m or more while low; not lying down flat throughout."""
    low = (height(joints, HEAD) < 0.8) & (trunk_lean(joints) > 50) & (height(joints, PELVIS) > 0.25)
    for start, end in _runs_of(low):
        if (end - start) / FPS < 1.0:
            continue
        part = joints[start:end]
        touches = all((height(joints, w)[start:end] < 0.15).any() for w in (L_WRIST, R_WRIST))
        travel = np.linalg.norm(part[-1, PELVIS, [0, 2]] - part[0, PELVIS, [0, 2]])
        if touches and travel >= 0.4:
            return True
    return False


def picks_up(joints: np.ndarray) -> bool:
    """A wrist within 0.25 m of the floor, and standing again (pelvis above 80 %) at the end,
    feet planted, not crawling."""
    reach = height(joints, [L_WRIST, R_WRIST]) < 0.25
    level = pelvis_height(joints)
    edge = max(1, int(0.5 * FPS))
    return bool(reach.any() and (level[-edge:] > 0.8).all() and level[0] > 0.8 and not crawls(joints))


def arm_length(joints: np.ndarray) -> float:
    """Shoulder -> elbow -> wrist, metres (median over frames, both arms averaged)."""
    arms = [np.linalg.norm(joints[:, s] - joints[:, s + 2], axis=-1) + np.linalg.norm(joints[:, s + 2] - joints[:, s + 4], axis=-1)
            for s in (L_SHOULDER, R_SHOULDER)]
    return float(np.median(np.concatenate(arms)))


def reaches_up(joints: np.ndarray) -> bool:
    """A straight arm (wrist 85 % of the arm's length from the shoulder) with the wrist 0.05 m or
    more above its shoulder, standing (pelvis above 85 %), for 0.2 s or more; one hand is enough.
    (HDM05's "grab high" takes reach only 0.02-0.15 m above the shoulder: a high shelf, not the sky.)
    Or, as the issue words it, a wrist 0.1 m or more above the head for 0.2 s, standing."""
    arm = arm_length(joints)
    standing = pelvis_height(joints) > 0.85
    overhead = np.maximum(joints[:, L_WRIST, 1], joints[:, R_WRIST, 1]) - joints[:, HEAD, 1] >= 0.1
    if _longest(overhead & standing) >= 0.2:
        return True
    for wrist, shoulder in ((L_WRIST, L_SHOULDER), (R_WRIST, R_SHOULDER)):
        out = np.linalg.norm(joints[:, wrist] - joints[:, shoulder], axis=-1) >= 0.85 * arm
        up = joints[:, wrist, 1] - joints[:, shoulder, 1] >= 0.05
        if _longest(out & up & standing) >= 0.2:
            return True
    return False


def raises_hand(joints: np.ndarray) -> bool:
    """A wrist above the head for 0.3 s or more, standing (pelvis above 70 %: arms above the
    head lying on the floor are no raise). ``raises_hands`` asks for both: the Bandai label;
    prompts ask for one hand as often."""
    above = np.maximum(joints[:, L_WRIST, 1], joints[:, R_WRIST, 1]) > joints[:, HEAD, 1]
    return bool((above & (pelvis_height(joints) > 0.7)).sum() / FPS >= 0.3)


def throws(joints: np.ndarray) -> bool:
    """A release: the arm straightens (its shoulder-wrist distance growing at 0.65 m/s or more
    within 0.25 s) from bent (the wrist within 72 % of the arm's length of the shoulder in the
    0.6 s before) into a straight arm (85 %) with the wrist 0.1 m or more above its shoulder and
    in front of it; not an arm circle. Calibrated on HDM05's basketball throws (straightening at
    0.7-1.3 m/s from 47-80 %); a wave swings an arm already out, a raise lifts it straight, a
    punch ends at shoulder height."""
    if circles_arms(joints):
        return False
    forward, _ = body_frame(joints)
    arm = arm_length(joints)
    for wrist, shoulder in ((L_WRIST, L_SHOULDER), (R_WRIST, R_SHOULDER)):
        offset = joints[:, wrist] - joints[:, shoulder]
        distance = np.linalg.norm(offset, axis=-1)
        extension = np.diff(distance, prepend=distance[:1]) * FPS
        straight = (distance >= 0.85 * arm) & (offset[:, 1] >= 0.1) & ((offset * forward).sum(-1) > 0.05)
        for frame in np.flatnonzero(straight):
            if extension[max(0, frame - 5): frame + 1].max() >= 0.65 and \
                    distance[max(0, frame - 12): frame + 1].min() <= 0.72 * arm:
                return True
    return False


def air_phases(joints: np.ndarray, lift: float = 0.10, frames: int = 2) -> list[tuple[int, int]]:
    """Runs of ``frames`` or more frames with both feet ``lift`` m or more above the floor."""
    return [(a, b) for a, b in _runs_of(height(joints, FEET) >= lift) if b - a >= frames]


def jump_phases(joints: np.ndarray) -> list[tuple[int, int]]:
    """Air phases of a jump: both feet 0.10 m or more above the floor for 3 frames or more, with
    the pelvis above 70 % of standing (legs lifted while lying or sitting are no jump), the floor
    being the lowest foot while standing (a foot pointed down while lying reaches lower)."""
    level = pelvis_height(joints)
    lowest = joints[:, FEET, 1].min(axis=1)
    standing = level > 0.7
    if not standing.any():
        return []
    air = (lowest - lowest[standing].min() >= 0.10) & standing     # the floor stood on, not lain on
    return [(a, b) for a, b in _runs_of(air) if b - a >= 3]


def physical_jumps(joints: np.ndarray) -> bool:
    """``jumps`` (both feet 0.10 m up for 3 frames), standing up (``jump_phases``)."""
    return bool(jump_phases(joints))


def hops(joints: np.ndarray) -> bool:
    """Short jumps (``jump_phases``) with little travel: the pelvis moves 0.8 m or less in each
    air phase, and the clip is no run (ground speed under 2 m/s)."""
    phases = jump_phases(joints)
    if not phases or speed(joints) >= 2.0:
        return False
    return all(np.linalg.norm(joints[b - 1, PELVIS, [0, 2]] - joints[a, PELVIS, [0, 2]]) <= 0.8 for a, b in phases)


def sneaks(joints: np.ndarray) -> bool:
    """A slow forward walk (0.15-1.0 m/s, 0.6 m or more of travel) crouched: the trunk leaning
    20 degrees or more (median; HDM05 sneaks 25-38, real walks 2-21), the pelvis lowered (median
    below 85 % of standing) or on tiptoe (both ankles 0.04 m above their lowest half the time); the wrists
    staying 0.35 m or more above the floor (not picking something up)."""
    level = np.median(pelvis_height(joints))
    ankles = joints[:, [L_ANKLE, R_ANKLE], 1] - floor_height(joints)
    tiptoe = (ankles > np.percentile(ankles, 10, axis=0) + 0.04).all(axis=1).mean() >= 0.5
    crouched = np.median(trunk_lean(joints)) >= 20 or level < 0.85 or tiptoe
    travel = np.linalg.norm(joints[-1, PELVIS, [0, 2]] - joints[0, PELVIS, [0, 2]])
    return bool(0.15 <= speed(joints) < 1.0 and travel >= 0.6 and forward_share(joints) > 0.5 and crouched
                and height(joints, [L_WRIST, R_WRIST]).min() >= 0.35)


def arm_circle_sweep(joints: np.ndarray) -> float:
    """The largest angle, degrees, that a wrist sweeps around its shoulder in the body's sagittal
    or frontal plane (only counting frames with the arm 0.25 m or more out from the shoulder)."""
    forward, left = body_frame(joints)
    up = np.array([0.0, 1.0, 0.0])
    best = 0.0
    for wrist, shoulder in ((L_WRIST, L_SHOULDER), (R_WRIST, R_SHOULDER)):
        arm = joints[:, wrist] - joints[:, shoulder]
        for axis in (forward, left):
            a, b = (arm * axis).sum(-1), arm @ up
            out = np.hypot(a, b) >= 0.25
            if out.sum() < 3:
                continue
            angle = np.degrees(np.unwrap(np.arctan2(b[out], a[out])))
            best = max(best, float(angle.max() - angle.min()))
    return best


def circles_arms(joints: np.ndarray) -> bool:
    """A wrist sweeps a full circle (330 degrees or more) around its shoulder."""
    return arm_circle_sweep(joints) >= 330.0


def climbs(joints: np.ndarray) -> bool:
    """The lower foot 0.3 m or more above the floor of the first half-second, for 0.5 s or more
    (up a step, a ladder, a rock; a jump is in the air for less)."""
    edge = max(1, int(0.5 * FPS))
    start = joints[:edge, FEET, 1].min()
    up = joints[:, FEET, 1].min(axis=1) - start >= 0.3
    return _longest(up) >= 0.5


def cartwheels(joints: np.ndarray) -> bool:
    """Upside down: the head 0.2 m or more below the pelvis with the ankles above the pelvis,
    for 2 frames or more."""
    inverted = (joints[:, PELVIS, 1] - joints[:, HEAD, 1] >= 0.2) & \
        (joints[:, [L_ANKLE, R_ANKLE], 1].mean(axis=1) > joints[:, PELVIS, 1])
    return _longest(inverted) >= 2 / FPS


def does_jumping_jacks(joints: np.ndarray) -> bool:
    """Two or more small jumps (both feet 0.04 m up for 0.1-0.5 s), and twice or more both wrists
    above the head and the ankles 1.6 hip-widths or more apart."""
    hips = np.median(np.linalg.norm(joints[:, L_HIP] - joints[:, R_HIP], axis=-1))
    apart = np.linalg.norm(joints[:, L_ANKLE, [0, 2]] - joints[:, R_ANKLE, [0, 2]], axis=-1) >= 1.6 * hips
    up = (joints[:, L_WRIST, 1] > joints[:, HEAD, 1]) & (joints[:, R_WRIST, 1] > joints[:, HEAD, 1])
    hops = [(a, b) for a, b in air_phases(joints, 0.04, 2) if b - a <= 10]      # longer: the floor drifts
    return len(hops) >= 2 and len(_runs_of(apart)) >= 2 and len(_runs_of(up)) >= 2


def spin_angle(joints: np.ndarray) -> float:
    """The largest turn of the facing within the clip, degrees (max - min of the unwrapped heading)."""
    angle = np.degrees(heading(joints))
    return float(angle.max() - angle.min())


def spins(joints: np.ndarray) -> bool:
    """The facing turns 300 degrees or more (either way) within the clip, upright (trunk within
    40 degrees) in 80 % of the frames or more."""
    return bool(spin_angle(joints) >= 300.0 and (trunk_lean(joints) < 40).mean() >= 0.8)


def physical_walks(joints: np.ndarray) -> bool:
    """``walks`` (0.35-1.6 m/s, mostly forward) over 1.2 m or more of travel, with no jump."""
    travel = np.linalg.norm(joints[-1, PELVIS, [0, 2]] - joints[0, PELVIS, [0, 2]])
    return bool(walks(joints) and travel >= 1.2 and not jump_phases(joints))


def _upright_ends(joints: np.ndarray) -> bool:
    edge = max(1, min(5, len(joints) // 4))
    lean = trunk_lean(joints)
    return bool(lean[:edge].max() < 40 and lean[-edge:].max() < 40)


def physical_turns_left(joints: np.ndarray) -> bool:
    """``turns_left`` (facing 45 degrees or more to the left), upright at the start and the end
    (trunk within 40 degrees: a body rolling over on the floor does not turn)."""
    return turns_left(joints) and _upright_ends(joints)


def physical_turns_right(joints: np.ndarray) -> bool:
    """``turns_right``, upright at the start and the end."""
    return turns_right(joints) and _upright_ends(joints)


def physical_punches(joints: np.ndarray) -> bool:
    """A wrist thrust 0.4 m or more in front of its shoulder near shoulder height (within 0.3 m),
    reached at 1.5 m/s or faster forward within the 0.25 s before, moving more forward than up or
    down (an arm circle passes the front moving vertically), from a bent arm (wrist within 70 %
    of the arm's length of the shoulder in the 0.4 s before: an arm circle stays straight)."""
    forward, _ = body_frame(joints)
    arm = arm_length(joints)
    for wrist, shoulder in ((L_WRIST, L_SHOULDER), (R_WRIST, R_SHOULDER)):
        offset = joints[:, wrist] - joints[:, shoulder]
        reach = (offset * forward).sum(-1)
        velocity = np.diff(reach, prepend=reach[:1]) * FPS
        vertical = np.abs(np.diff(joints[:, wrist, 1], prepend=joints[:1, wrist, 1])) * FPS
        thrust = (velocity >= 1.5) & (vertical < velocity)
        bent = np.linalg.norm(offset, axis=-1) < 0.7 * arm
        for frame in np.flatnonzero((reach >= 0.4) & (np.abs(offset[:, 1]) < 0.3)):
            if thrust[max(0, frame - 5): frame + 1].any() and bent[max(0, frame - 8): frame + 1].any():
                return True
    return False


def physical_kicks(joints: np.ndarray) -> bool:
    """A foot 0.45 m or more above the floor and 0.7 m or more out from the pelvis, in front or to
    the side (a front kick or a side kick; not behind), while the other foot stays below 0.2 m,
    standing (pelvis above 70 %). Real front kicks reach 0.78-1.07 m out, side kicks about 1 m; a
    knee raised to the elbow keeps the foot 0.46-0.63 m out."""
    floor = floor_height(joints)
    forward, _ = body_frame(joints)
    level = pelvis_height(joints) > 0.7
    for foot, other in ((L_FOOT, R_FOOT), (R_FOOT, L_FOOT)):
        offset = (joints[:, foot] - joints[:, PELVIS])[:, [0, 2]]
        high = joints[:, foot, 1] - floor >= 0.45
        out = (np.linalg.norm(offset, axis=-1) >= 0.7) & ((offset * forward[:, [0, 2]]).sum(-1) > -0.1)
        low = joints[:, other, 1] - floor < 0.2
        if (high & out & low & level).any():
            return True
    return False


def physical_bows(joints: np.ndarray) -> bool:
    """A bow in place: the trunk leans forward (twice as much as sideways: an elbow brought to the
    opposite knee twists) 22 degrees or more from upright (real bows: 23-64; the
    Bandai label's ``bows`` asks 30) with the head lowered 0.05 m or more relative to the pelvis,
    standing (pelvis above 80 %), both wrists 0.3 m or more above the floor (not picking up),
    both feet below 0.15 m (not a kick or a knee raise), 0.6 m of travel at most."""
    forward, left = body_frame(joints)
    spine = joints[:, NECK] - joints[:, PELVIS]
    ahead, aside = (spine * forward).sum(-1), np.abs((spine * left).sum(-1))
    trunk = np.where(ahead >= 2 * aside, trunk_lean(joints), 0.0)        # leaning forward, not sideways
    head = joints[:, HEAD, 1] - joints[:, PELVIS, 1]
    travel = np.linalg.norm(joints[-1, PELVIS, [0, 2]] - joints[0, PELVIS, [0, 2]])
    feet = joints[:, [L_FOOT, R_FOOT], 1] - floor_height(joints)            # each foot, not the lower
    ankles = joints[:, [L_ANKLE, R_ANKLE], 1] - floor_height(joints)
    return bool(trunk.max() >= 22 and head.max() - head.min() >= 0.05 and pelvis_height(joints).min() > 0.8
                and height(joints, [L_WRIST, R_WRIST]).min() > 0.3 and feet.max() < 0.15 and ankles.max() < 0.25
                and travel <= 0.6)


PHYSICAL_CHECKS = {
    "walk": physical_walks, "run": runs, "walk_backward": walks_backward, "turn_left": physical_turns_left,
    "turn_right": physical_turns_right, "bow": physical_bows, "wave": waves, "raise_hands": raises_hand,
    "punch": physical_punches, "kick": physical_kicks, "jump": physical_jumps, "hop": hops, "squat": squats, "lie_down": lies_down,
    "pick_up": picks_up, "reach_up": reaches_up, "throw": throws, "sneak": sneaks,
    "arm_circles": circles_arms, "sit": sits, "stand_up": stands_up, "kneel": kneels, "crawl": crawls,
    "climb": climbs, "cartwheel": cartwheels, "jumping_jacks": does_jumping_jacks, "spin": spins,
}

# Real take classes ("source:label") and the check they are own takes of. Classes not listed
# (dance, basketball, swordplay, the mixed playground takes) only count against checks.
PHYSICAL_OWN = {
    "walk": ("bandai:walk", "bandai:walk-left", "bandai:walk-right", "cmu:walk"),
    "run": ("bandai:run", "bandai:dash", "cmu:run", "hdm05:run_circle"),
    "walk_backward": ("bandai:walk-back",),
    "turn_left": ("bandai:walk-turn-left",), "turn_right": ("bandai:walk-turn-right",),
    "bow": ("bandai:bow",),
    "wave": ("bandai:bye", "bandai:byebye", "bandai:wave-left-hand", "bandai:wave-right-hand", "bandai:wave-both-hands"),
    "raise_hands": ("bandai:raise-up-both-hands", "bandai:raise-up-left-hand", "bandai:raise-up-right-hand"),
    "punch": ("bandai:punch", "cmu:punch"), "kick": ("bandai:kick", "hdm05:kick"),
    "jump": ("hdm05:hop", "cmu:jump"), "hop": ("hdm05:hop",), "squat": ("hdm05:squat",),
    "lie_down": ("hdm05:lie_down",), "pick_up": ("hdm05:pick_up", "cmu:pick_up"),
    "reach_up": ("hdm05:reach_up",), "throw": ("hdm05:throw",), "sneak": ("hdm05:sneak",),
    "arm_circles": ("hdm05:arm_circles",), "climb": ("cmu:climb",),
    "sit": (), "stand_up": (), "kneel": (), "crawl": (), "cartwheel": (), "jumping_jacks": (), "spin": (),
}
# Pairs of actions that share the motion that defines one of them (a walking turn is a walk, a
# hop is a jump, reaching up raises a hand, ...): another's takes passing are not counted as the
# check's worst confusion, but are shown in the table.
RELATED = {
    "walk": ("turn_left", "turn_right", "sneak"), "turn_left": ("walk", "run"), "turn_right": ("walk", "run"),
    "raise_hands": ("reach_up", "wave", "arm_circles", "throw"), "reach_up": ("raise_hands", "wave", "arm_circles", "throw"),
    "jump": ("hop", "throw"), "hop": ("jump", "throw"),   # HDM05's basketball throws are jump shots "run": ("turn_left", "turn_right"),
    "sneak": ("walk",), "pick_up": ("squat",), "squat": ("pick_up",), "bow": ("pick_up",),
    "wave": ("raise_hands",), "kick": ("jump",),
}
# Classes whose takes hold several actions each (left out of every check's worst confusion).
# Long takes that hold many actions (Bandai's kick and punch takes: 12 s of kicks, turns, steps;
# CMU trials of 15-40 s: "climb, hang, swing", "bend over, scoop up, rise, lift arm") are own takes
# of their check but do not count against the others either.
MIXED_CLASSES = {"bandai:dance-short", "bandai:dance-long", "bandai:slash", "bandai:call", "bandai:guide",
                 "bandai:respond", "bandai:kick", "bandai:punch", "cmu:dance", "cmu:basketball", "cmu:swordplay",
                 "cmu:playground", "cmu:climb", "cmu:pick_up", "cmu:punch", "cmu:jump"}

HDM05_CLASSES = {1: "pick_up", 2: "elbow_to_knee", 3: "reach_up", 4: "hop", 5: "run_circle", 6: "kick",
                 7: "lie_down", 8: "arm_circles", 9: "sneak", 10: "squat", 11: "throw"}
CMU_CLASSES = {
    "walk": ("02_01", "07_01", "08_02", "05_01"), "run": ("02_03", "09_01", "09_06"),
    "jump": ("01_01", "02_04"), "climb": ("01_02", "01_04"), "punch": ("02_05",), "pick_up": ("02_06",),
    "dance": ("05_02", "05_06"), "basketball": ("06_02", "06_14"), "swordplay": ("02_09",),
    "playground": ("01_06", "01_08"),
}


def _spread(items: list, count: int) -> list:
    """``count`` items spread evenly over the list (all of them when it is shorter)."""
    if len(items) <= count:
        return items
    return [items[int(i * len(items) / count)] for i in range(count)]


def physical_takes(data: Path, per_class: int = 6) -> dict[str, list[np.ndarray]]:
    """{"source:label": joints at 20 fps}: up to ``per_class`` takes of each Bandai action (spread
    over its styles), of each HDM05 class (spread over actors) and the CMU trials of ``CMU_CLASSES``."""
    import tarfile
    import tempfile
    from engine.formats.asf import find_asf, read_asf_amc
    from engine.formats.bvh import read_bvh
    takes: dict[str, list[np.ndarray]] = {}

    def add(name: str, motion) -> None:
        takes.setdefault(name, []).append(motion.resample(FPS).joints.astype(np.float64))

    with tempfile.TemporaryDirectory() as folder:
        with tarfile.open(data / "bandai" / "dataset-2.tar.xz") as archive:
            members = [m for m in archive.getmembers() if m.name.endswith("_001.bvh")]
            archive.extractall(folder, members=members, filter="data")
        paths = sorted((data / "bandai" / "dataset-1" / "data").glob("*.bvh")) + sorted(Path(folder).rglob("*.bvh"))
        by_label: dict[str, list[Path]] = {}
        for path in paths:
            by_label.setdefault(path.stem.split("_")[1], []).append(path)
        for label, group in by_label.items():
            for path in _spread(group, per_class):
                add(f"bandai:{label}", read_bvh(path))
    with tempfile.TemporaryDirectory() as folder:
        with tarfile.open(data / "hdm05" / "hdm05-subset.tar.xz") as archive:
            archive.extractall(folder, filter="data")
        for number, label in HDM05_CLASSES.items():
            group = sorted(Path(folder).glob(f"hdm05/*/{number}/*.amc"), key=lambda p: p.name)
            for path in _spread(group, per_class):
                add(f"hdm05:{label}", read_asf_amc(find_asf(path), path))
    wanted = {trial: label for label, trials in CMU_CLASSES.items() for trial in trials}
    with tempfile.TemporaryDirectory() as folder:
        with tarfile.open(data / "cmu" / "cmu-01-09-more.tar.xz") as archive:
            members = [m for m in archive.getmembers() if Path(m.name).stem in wanted and m.name.endswith(".bvh")]
            archive.extractall(folder, members=members, filter="data")
        paths = [p for p in sorted((data / "cmu").glob("*.bvh")) if p.stem in wanted] + sorted(Path(folder).rglob("*.bvh"))
        for path in sorted(paths, key=lambda p: p.stem):
            add(f"cmu:{wanted[path.stem]}", read_bvh(path, bone_map="cmu"))
    return takes


def physical_table(takes: dict[str, list[np.ndarray]]) -> dict[str, dict[str, float]]:
    """{take class: {check: share of its takes passing}} over ``PHYSICAL_CHECKS``."""
    return {name: {check: float(np.mean([bool(function(j)) for j in clips]))
                   for check, function in PHYSICAL_CHECKS.items()}
            for name, clips in sorted(takes.items())}


def physical_summary(table: dict[str, dict[str, float]]) -> dict[str, dict]:
    """Per check: {"own": share of its own takes passing (None without real takes), "worst_other":
    (class, share) of the other class passing most (``RELATED`` and ``MIXED_CLASSES`` left out)}."""
    summary = {}
    for check in PHYSICAL_CHECKS:
        own = [c for c in PHYSICAL_OWN.get(check, ()) if c in table]
        excluded = {c for other in RELATED.get(check, ()) for c in PHYSICAL_OWN.get(other, ())}
        others = [(c, row[check]) for c, row in table.items()
                  if c not in own and c not in excluded and c not in MIXED_CLASSES]
        summary[check] = {"own": float(np.mean([table[c][check] for c in own])) if own else None,
                          "worst_other": max(others, key=lambda item: item[1]) if others else (None, 0.0)}
    return summary


def format_physical_table(table: dict[str, dict[str, float]]) -> str:
    """The confusion table as text: a row per take class, a column per check (share passing)."""
    names = list(PHYSICAL_CHECKS)
    width = max(len(c) for c in table) + 2
    lines = [" " * width + "".join(f"{n[:6]:>7}" for n in names)]
    for name, row in table.items():
        lines.append(f"{name:<{width}}" + "".join(f"{row[n]:>7.2f}" if row[n] else f"{'.':>7}" for n in names))
    return "\n".join(lines)


if __name__ == "__main__":
    table = calibration_table(Path(__file__).resolve().parents[2] / "shared" / "data")
    names = list(CHECKS)
    print(f"{'takes':<12}" + "".join(f"{n[:9]:>10}" for n in names))
    for action, row in table.items():
        print(f"{action:<12}" + "".join(f"{row[n]:>10.2f}" for n in names))
