"""CMU motion-prediction exponential-map files (engine.formats.expmap): real takes and bad input.

Real takes are read in place from ../shared/data/cmu_prediction/cmu-prediction-subset.tar.xz
(two members, decompressed into memory once per module); those tests skip when the archive is
absent. The bad-input tests write small texts of their own to tmp_path.
"""
from __future__ import annotations

import io
import tarfile
from pathlib import Path

import numpy as np
import pytest

from engine import Motion, MotionError
from engine.formats.expmap import (CMU_PREDICTION_FPS, COLUMNS, iter_prediction_takes, parse_expmap, read_expmap,
                           take_name)
from engine.motion import JOINT_NAMES

DATA = Path(__file__).resolve().parents[3] / "shared" / "data"
ARCHIVE = DATA / "cmu_prediction" / "cmu-prediction-subset.tar.xz"
CMU_02_01_BVH = DATA / "cmu" / "02_01.bvh"
WALK = "train/walking/walking_1.txt"      # CMU trial 02_01
JUMP = "train/jumping/jumping_1.txt"
J = {name: i for i, name in enumerate(JOINT_NAMES)}
FEET = [J["left_ankle"], J["right_ankle"], J["left_foot"], J["right_foot"]]


@pytest.fixture(scope="module")
def texts() -> dict[str, str]:
    """The members WALK and JUMP of the real archive, as text (member name -> text)."""
    if not ARCHIVE.is_file():
        pytest.skip(f"the CMU motion-prediction archive is absent ({ARCHIVE})")
    found: dict[str, str] = {}
    with tarfile.open(ARCHIVE, "r:xz") as tar:
        for member in tar:
            short = member.name.split("/", 1)[-1]
            if member.isfile() and short in (WALK, JUMP):
                found[short] = tar.extractfile(member).read().decode("utf-8")
                if len(found) == 2:
                    break
    assert sorted(found) == sorted([WALK, JUMP])
    return found


@pytest.fixture(scope="module")
def walk(texts) -> Motion:
    return read_expmap(texts[WALK], source=WALK)


@pytest.fixture(scope="module")
def jump(texts) -> Motion:
    return read_expmap(texts[JUMP], source=JUMP)


def heading(joints: np.ndarray) -> np.ndarray:
    """(T, 3) unit forward directions: up x (right hip - left hip)."""
    across = joints[:, J["right_hip"]] - joints[:, J["left_hip"]]
    forward = np.cross([0.0, 1.0, 0.0], across)
    return forward / np.linalg.norm(forward, axis=1, keepdims=True)


# ----------------------------------------------------------------------------- real takes

def test_walk_is_upright_grounded_metres(walk):
    joints = walk.joints.astype(np.float64)
    assert walk.fps == CMU_PREDICTION_FPS == 120.0
    assert len(walk) == 343                      # 344 rows, the rest-pose first row dropped
    head_above_pelvis = joints[:, J["head"], 1] - joints[:, 0, 1]
    assert (head_above_pelvis > 0.3).all() and 0.35 < head_above_pelvis.mean() < 0.7
    assert 0.85 < joints[:, 0, 1].mean() < 1.1                      # pelvis height, metres
    lowest = joints[:, FEET, 1].min(axis=1)
    assert -0.03 < lowest.min() < 0.05 and np.median(lowest) < 0.1   # feet on the floor at y = 0
    leg = np.linalg.norm(joints[:, J["left_knee"]] - joints[:, J["left_hip"]], axis=1) \
        + np.linalg.norm(joints[:, J["left_ankle"]] - joints[:, J["left_knee"]], axis=1)
    assert 0.75 < leg.mean() < 0.95                                 # an adult's hip-to-ankle


def test_walk_goes_forward_at_walking_speed(walk):
    joints = walk.joints.astype(np.float64)
    travel = joints[-1, 0] - joints[0, 0]
    speed = np.linalg.norm(travel[[0, 2]]) / walk.duration
    assert 1.0 < speed < 1.5
    facing = heading(joints).mean(axis=0)
    facing /= np.linalg.norm(facing)
    assert facing[2] > 0.95                                         # faces +Z, like the engine
    assert np.dot(travel[[0, 2]] / np.linalg.norm(travel[[0, 2]]), facing[[0, 2]]) > 0.95
    left = joints[:, J["left_hip"]] - joints[:, J["right_hip"]]
    assert left[:, 0].mean() > 0.1                                  # facing +Z, the left is +X


def test_measured_fps_gives_a_normal_walking_cadence(walk):
    """The stride period (autocorrelation of the fore-aft ankle gap) at CMU_PREDICTION_FPS gives
    1.6-2.2 steps/s, a normal cadence; 60 fps would give half that."""
    joints = walk.joints.astype(np.float64)
    gap = np.einsum("ti,ti->t", joints[:, J["left_ankle"]] - joints[:, J["right_ankle"]], heading(joints))
    gap -= gap.mean()
    correlation = np.correlate(gap, gap, "full")[len(gap) - 1:]
    first_negative = int(np.argmax(correlation < 0))
    stride = first_negative + int(np.argmax(correlation[first_negative:]))
    steps_per_second = 2 * CMU_PREDICTION_FPS / stride
    assert 1.6 < steps_per_second < 2.2


def test_walk_matches_the_cmu_bvh_of_the_same_trial(walk):
    """walking_1 is CMU 02_01: frame for frame the cgspeed BVH (1/120 s a frame) read by engine.formats.bvh."""
    if not CMU_02_01_BVH.is_file():
        pytest.skip(f"{CMU_02_01_BVH} is absent")
    from engine.formats.bvh import read_bvh
    bvh = read_bvh(CMU_02_01_BVH, bone_map="cmu")
    assert bvh.fps == pytest.approx(CMU_PREDICTION_FPS, rel=1e-3)
    assert len(bvh) == len(walk)
    assert np.abs(bvh.joints - walk.joints).max() < 0.02


def test_jump_has_flight_frames(jump):
    lowest = jump.joints[:, FEET, 1].astype(np.float64).min(axis=1)
    floor = np.percentile(lowest, 5)
    flight = lowest > floor + 0.10
    assert flight.sum() >= 10                                       # both feet off the ground
    assert (lowest.max() - floor) > 0.15


def test_bytes_text_and_path_agree(texts, tmp_path):
    path = tmp_path / "walking_1.txt"
    path.write_text(texts[WALK])
    from_path = read_expmap(path)
    assert np.array_equal(from_path.joints, read_expmap(texts[WALK].encode()).joints)
    assert read_expmap(path, fps=60).fps == 60.0


# ----------------------------------------------------------------------------- the archive

def test_take_names():
    assert take_name("cmu-prediction-subset/train/walking_extra/walking_17.txt") == \
        ("cmupred_train_walking_17", "walking", "train")
    assert take_name("cmu-prediction-subset/test/basketball_signal/basketball_signal_2.txt") == \
        ("cmupred_test_basketball_signal_2", "basketball_signal", "test")
    assert take_name("cmu-prediction-subset/README.md") is None


def _archive(tmp_path: Path, members: dict[str, str]) -> Path:
    path = tmp_path / "subset.tar.xz"
    with tarfile.open(path, "w:xz") as tar:
        for name, text in members.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def _rows(count: int) -> str:
    """``count`` valid rows: a pose standing 17 units up, moving forward along +Z."""
    rows = []
    for i in range(count):
        values = [0.0] * COLUMNS
        values[1], values[2] = 17.0, 0.2 * i
        rows.append(",".join(f"{v:g}" for v in values))
    return "\n".join(rows) + "\n"


def test_iter_prediction_takes_one_pass(tmp_path):
    archive = _archive(tmp_path, {
        "cmu-prediction-subset/test/walking_extra/walking_9.txt": _rows(5),
        "cmu-prediction-subset/README.md": "not a take",
        "cmu-prediction-subset/train/jumping/jumping_3.txt": _rows(4),
    })
    takes = list(iter_prediction_takes(archive))
    assert [(n, label, split, len(m)) for n, label, split, m in takes] == [
        ("cmupred_test_walking_9", "walking", "test", 5), ("cmupred_train_jumping_3", "jumping", "train", 4)]
    assert all(m.fps == CMU_PREDICTION_FPS for *_, m in takes)


def test_iter_prediction_takes_bad_member_and_archive(tmp_path):
    bad = _rows(3).replace(",", ";", 1)
    archive = _archive(tmp_path, {"top/train/soccer/soccer_2.txt": bad})
    with pytest.raises(MotionError, match=r"subset\.tar\.xz:top/train/soccer/soccer_2\.txt: line 1"):
        list(iter_prediction_takes(archive))
    broken = tmp_path / "broken.tar.xz"
    broken.write_bytes(b"\xfd7zXZ\0 not really")
    with pytest.raises(MotionError, match="broken.tar.xz"):
        list(iter_prediction_takes(broken))
    with pytest.raises(MotionError, match="not found"):
        list(iter_prediction_takes(tmp_path / "absent.tar.xz"))


# ----------------------------------------------------------------------------- bad input

def _replace(text: str, line: int, column: int, token: str) -> str:
    lines = text.splitlines()
    values = lines[line - 1].split(",")
    values[column] = token
    lines[line - 1] = ",".join(values)
    return "\n".join(lines) + "\n"


GOOD = _rows(6)
BAD_TEXTS = {
    "too_few_columns": ("\n".join(GOOD.splitlines()[:3] + [",".join(["0"] * 116)]) + "\n", 4, "116"),
    "too_many_columns": ("\n".join(GOOD.splitlines()[:2] + [",".join(["0"] * 118)]) + "\n", 3, "118"),
    "not_a_number": (_replace(GOOD, 5, 40, "abc"), 5, "not a number"),
    "nan": (_replace(GOOD, 2, 7, "nan"), 2, "NaN"),
    "infinite": (_replace(GOOD, 6, 0, "-inf"), 6, "NaN or infinite"),
    "out_of_range": (_replace(GOOD, 3, 1, "1e300"), 3, "out of range"),
    "empty": ("", 1, "empty"),
    "blank_lines": ("\n  \n\n", 1, "empty"),
    "one_frame": (_rows(1), 1, "only 1 motion frame"),
    "rest_and_one_frame": ("\n".join([GOOD.splitlines()[0]] * 2) + "\n", 2, "only 1 motion frame"),
    "semicolons": (GOOD.replace(",", ";"), 1, "1 comma-separated"),
}


@pytest.mark.parametrize("case", sorted(BAD_TEXTS))
def test_bad_files_name_file_and_line(case, tmp_path):
    text, line, words = BAD_TEXTS[case]
    path = tmp_path / f"{case}.txt"
    path.write_text(text)
    with pytest.raises(MotionError) as caught:
        read_expmap(path)
    message = str(caught.value)
    assert str(path) in message and f"line {line}:" in message and words in message, message


def test_other_bad_inputs_are_motion_errors(tmp_path):
    binary = tmp_path / "binary.txt"
    binary.write_bytes(b"1,2,3\n\xff\xfe\0\0")
    with pytest.raises(MotionError, match=r"binary\.txt: line 2"):
        read_expmap(binary)
    latin = tmp_path / "latin.txt"
    latin.write_bytes(GOOD.encode() + b"caf\xe9\n")
    with pytest.raises(MotionError, match=r"latin\.txt: line 7"):
        read_expmap(latin)
    with pytest.raises(MotionError, match="does not exist"):
        read_expmap(tmp_path / "absent.txt")
    with pytest.raises(MotionError, match="folder"):
        read_expmap(tmp_path)
    with pytest.raises(MotionError, match="fps"):
        read_expmap(GOOD, fps=0)
    with pytest.raises(MotionError, match="expected a path"):
        read_expmap(12)
    with pytest.raises(MotionError, match="<string>: line 2"):
        parse_expmap(_replace(GOOD, 2, 3, "x"))
    assert len(read_expmap(GOOD)) == 6      # zero root rotation but moving root: not a rest row
