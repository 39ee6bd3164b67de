"""Acclaim ASF/AMC import (engine.formats.asf) on real HDM05 files, the conventions, the CLI hook, bad files.

The HDM05 subset (../shared/data/hdm05/hdm05-subset.tar.xz) is unpacked once per module into a
temporary folder, only the members used here. No CMU ASF/AMC is in the shared data (the CMU
folder holds only the cgspeed BVH conversion), so the CMU comparison is of the SMPL skeleton's
proportions, not of the same trial.
"""
from __future__ import annotations

import random
import tarfile
from pathlib import Path

import numpy as np
import pytest

from engine import Motion, MotionError
from engine import __main__ as cli
from engine.formats.asf import (AmcMotion, find_asf, forward_kinematics, parse_asf, read_amc, read_asf, read_asf_amc,
                        asf_amc_to_motion)
from engine.formats.bvh import read_bvh, write_bvh
from engine.motion import JOINT_NAMES
from engine.motion import PARENTS as _PARENTS

PARENTS = np.array(_PARENTS)

ACTORS = ("bd", "bk", "dg", "mm", "tr")
JOG = {"bd": "train/5/HDM_bd_jogLeftCircle4StepsRstart_001_120.amc",
       "bk": "train/5/HDM_bk_jogLeftCircle4StepsRstart_003_120.amc",
       "dg": "train/5/HDM_dg_jogLeftCircle4StepsRstart_008_120.amc",
       "mm": "test/5/HDM_mm_jogLeftCircle4StepsRstart_011_120.amc",
       "tr": "test/5/HDM_tr_jogLeftCircle4StepsRstart_014_120.amc"}
LATIN1_AMC = "test/1/HDM_tr_depositFloorR_027_120.amc"
# Takes of lying down on the floor: the body is flat for most of each take, head along +Z in
# bd_003 and bk_010 (which a median of the body's direction alone took for a Z-up file), along -Z
# in bd_001.
LIE_DOWN = {"bd_001": "train/7/HDM_bd_lieDownFloor_001_120.amc", "bd_003": "train/7/HDM_bd_lieDownFloor_003_120.amc",
            "bk_010": "train/7/HDM_bk_lieDownFloor_010_120.amc"}
J = {name: i for i, name in enumerate(JOINT_NAMES)}
FEET = [J["left_ankle"], J["right_ankle"], J["left_foot"], J["right_foot"]]


@pytest.fixture(scope="module")
def hdm05(shared_data, tmp_path_factory) -> Path:
    """The HDM05 files these tests use, unpacked from the archive into a temporary folder."""
    archive = shared_data / "hdm05" / "hdm05-subset.tar.xz"
    wanted = set(JOG.values()) | {LATIN1_AMC} | {f"{Path(p).parent}/HDM_{a}.asf" for a, p in JOG.items()}
    wanted |= {"test/1/HDM_tr.asf"} | set(LIE_DOWN.values()) | {"train/7/HDM_bd.asf", "train/7/HDM_bk.asf"}
    out = tmp_path_factory.mktemp("hdm05")
    with tarfile.open(archive) as tar:
        members = [m for m in tar.getmembers() if m.isfile() and m.name.split("hdm05/", 1)[-1] in wanted]
        assert len(members) == len(wanted), sorted(wanted - {m.name.split("hdm05/", 1)[-1] for m in members})
        for member in members:
            target = out / member.name.split("hdm05/", 1)[-1]
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(tar.extractfile(member).read())
    return out


@pytest.fixture(scope="module")
def jogs(hdm05) -> dict[str, Motion]:
    return {actor: read_asf_amc(find_asf(hdm05 / path), hdm05 / path) for actor, path in JOG.items()}


@pytest.fixture(scope="module")
def lie_downs(hdm05) -> dict[str, Motion]:
    return {take: read_asf_amc(find_asf(hdm05 / path), hdm05 / path) for take, path in LIE_DOWN.items()}


# ----------------------------------------------------------------------------- real data

@pytest.mark.parametrize("take", sorted(LIE_DOWN))
def test_hdm05_lying_down_takes_stay_y_up(lie_downs, take):
    """A take that lies flat for most of its frames is not turned as if it were Z-up: standing at
    the start (head 1.4 m or more above the floor), lying at the end (head and pelvis within
    0.3 m of it), the floor the same in both (the lowest foot or body point)."""
    motion = lie_downs[take]
    joints = motion.joints
    floor = joints[:, :, 1].min()
    half_second = int(motion.fps // 2)
    start, end = joints[:half_second].mean(axis=0), joints[-half_second:].mean(axis=0)
    assert start[J["head"], 1] - floor >= 1.4
    assert start[J["head"], 1] - start[FEET, 1].min() >= 1.4
    assert end[J["head"], 1] - floor <= 0.3 and end[J["pelvis"], 1] - floor <= 0.3
    assert abs(start[FEET, 1].min() - joints[-1, :, 1].min()) <= 0.12


def test_lying_down_survives_a_bvh_round_trip(lie_downs, tmp_path):
    """The same take written as BVH (Y up) and read back: still standing, then lying."""
    motion = lie_downs["bd_003"]
    write_bvh(motion, tmp_path / "lie.bvh")
    back = read_bvh(tmp_path / "lie.bvh")
    np.testing.assert_allclose(back.joints, motion.joints, atol=0.02)


def test_a_z_up_lying_down_take_is_turned_y_up(lie_downs):
    """The same real take turned to Z up, its rest pose (the standing first frame) with it: the
    body lies along Y for most frames, the rest pose and the floor say Z, and it comes back Y up."""
    from engine.formats.bvh import _to_y_up
    joints = lie_downs["bd_003"].joints.astype(np.float64)
    z_up = np.stack([joints[..., 0], -joints[..., 2], joints[..., 1]], axis=-1)
    np.testing.assert_allclose(_to_y_up(z_up, z_up[0]), joints, atol=1e-9)
    np.testing.assert_allclose(_to_y_up(joints, joints[0]), joints, atol=0)


@pytest.mark.parametrize("actor", ACTORS)
def test_hdm05_jog_is_a_human_jogging(jogs, actor):
    motion = jogs[actor]
    joints = motion.joints.astype(np.float64)
    assert motion.fps == 120 and joints.shape[1:] == (22, 3) and np.isfinite(joints).all()
    # Human size: the head joint (top of the neck) 1.3-1.8 m above the lowest foot joint in frame 0,
    # so a stature of about 1.4-2.0 m; the pelvis about 0.8-1.1 m up.
    head = joints[0, J["head"], 1] - joints[0, FEET, 1].min()
    assert 1.3 < head < 1.8, head
    assert 0.8 < joints[0, 0, 1] < 1.15
    # Feet on the floor (Y up, floor at 0 in HDM05): toes touch within a few cm, never far below.
    assert -0.05 < joints[:, FEET, 1].min() < 0.08
    assert (joints[:, J["head"], 1] > joints[:, 0, 1] + 0.3).all()
    # Rigid bones: the skeleton's bone lengths do not change over the clip.
    bones = np.linalg.norm(joints[:, 1:] - joints[:, PARENTS[1:]], axis=-1)
    assert bones.std(axis=0).max() < 1e-3
    # It travels (4 jogging steps, 2.6-3.4 m), forwards: the body faces where the pelvis goes.
    velocity = np.diff(joints[:, 0, [0, 2]], axis=0)
    assert np.linalg.norm(velocity.sum(axis=0)) > 1.5
    left = joints[:-1, J["left_hip"]] - joints[:-1, J["right_hip"]]
    forward = np.cross(left, [0.0, 1.0, 0.0])[:, [0, 2]]
    norms = np.linalg.norm(forward, axis=-1) * np.linalg.norm(velocity, axis=-1)
    cosine = (forward * velocity).sum(-1) / (norms + 1e-9)
    assert cosine.mean() > 0.7, cosine.mean()


def test_hdm05_proportions_match_the_cmu_bvh_preset(jogs, shared_data):
    """Same SMPL joint placement as the CMU (cgspeed BVH) preset: each SMPL bone, as a fraction of the
    leg length, agrees with CMU subjects 02, 07, 08 within 0.07; the trunk bones within 0.15. The
    spine3 -> neck bone is longer from the ASF (0.28 vs 0.11 of the leg; 23 cm vs 9 cm, SMPL's is
    22 cm): the cgspeed BVH appears to drop one ~2-unit trunk bone (the thorax: its spine has five
    non-zero offsets where the ASF has six bones, and Neck has OFFSET 0 on Spine1), so its neck sits
    about 12 cm lower than in the ASF data."""
    def ratios(motion: Motion) -> np.ndarray:
        first = motion.joints[0].astype(np.float64)
        lengths = np.linalg.norm(first[1:] - first[PARENTS[1:]], axis=-1)
        return lengths / (lengths[J["left_knee"] - 1] + lengths[J["left_ankle"] - 1])
    hdm = np.mean([ratios(m) for m in jogs.values()], axis=0)
    cmu = np.mean([ratios(read_bvh(shared_data / "cmu" / f"{n}.bvh")) for n in ("02_01", "07_01", "08_01")], axis=0)
    trunk = {J[n] - 1 for n in ("spine1", "spine2", "spine3", "neck", "head", "left_collar", "right_collar",
                                "left_shoulder", "right_shoulder")}
    for k, (a, b) in enumerate(zip(hdm, cmu)):
        if JOINT_NAMES[k + 1] == "neck":
            assert 0.1 < a - b < 0.25, (a, b)
        else:
            assert abs(a - b) < (0.15 if k in trunk else 0.07), (JOINT_NAMES[k + 1], a, b)


def test_latin1_header_is_read(hdm05):
    amc = hdm05 / LATIN1_AMC
    raw = amc.read_bytes()
    with pytest.raises(UnicodeDecodeError):
        raw.decode("utf-8")
    motion = read_asf_amc(find_asf(amc), amc)
    assert motion.num_frames > 100


def test_length_and_angle_units(hdm05, tmp_path, jogs):
    """`length 1.0` (implausible as inches) falls back to the inferred CMU unit; `angle rad` with radian
    AMC values gives the same motion as degrees."""
    asf = hdm05 / "train/5/HDM_bd.asf"
    amc = hdm05 / JOG["bd"]
    text = asf.read_text(encoding="latin-1")
    assert "length 0.45" in text
    (tmp_path / "unit.asf").write_text(text.replace("length 0.45", "length 1.0"), encoding="latin-1")
    same = read_asf_amc(tmp_path / "unit.asf", amc)
    np.testing.assert_allclose(same.joints, jogs["bd"].joints, atol=1e-4)

    skeleton = read_asf(asf)
    lines = []
    for line in text.splitlines():
        tokens = line.split()
        if tokens[:1] == ["angle"]:
            line = "  angle rad"
        elif tokens[:1] in (["axis"], ["orientation"]) and len(tokens) >= 4:
            line = " ".join([tokens[0]] + [repr(np.radians(float(t))) for t in tokens[1:4]] + tokens[4:])
        lines.append(line)
    (tmp_path / "rad.asf").write_text("\n".join(lines), encoding="latin-1")
    out = []
    for line in amc.read_text(encoding="latin-1").splitlines():
        tokens = line.split()
        if tokens[:1] == [":DEGREES"]:
            continue
        if len(tokens) > 1 and tokens[0] in skeleton.bones:
            dof = skeleton.dof(tokens[0])
            tokens = [tokens[0]] + [repr(np.radians(float(v)) if d.lower().startswith("r") else float(v))
                                    for d, v in zip(dof, tokens[1:])]
            line = " ".join(tokens)
        out.append(line)
    (tmp_path / "rad.amc").write_text("\n".join(out), encoding="latin-1")
    radians = read_asf_amc(tmp_path / "rad.asf", tmp_path / "rad.amc")
    np.testing.assert_allclose(radians.joints, jogs["bd"].joints, atol=1e-4)


SMALL_ASF = """:version 1.10
:name test
:units
  length 1.0
  angle deg
:root
  order TX TY TZ RX RY RZ
  axis XYZ
  position 0 0 0
  orientation 0 0 0
:bonedata
  begin
    name a
    direction 0 1 0
    length 1
    axis 0 0 90 XYZ
    dof {dof}
  end
  begin
    name b
    direction 1 0 0
    length 1
    axis 0 0 0 XYZ
  end
  begin
    name c
    direction 0 1 0
    length 1
    axis 0 0 0 XYZ
  end
:hierarchy
  begin
    root a
    a b
    b c
  end
"""


RX90 = np.array([[1.0, 0, 0], [0, 0, -1], [0, 1, 0]])
RZ90 = np.array([[0.0, -1, 0], [1, 0, 0], [0, 0, 1]])


@pytest.mark.parametrize("dof, values, motion", [
    ("rx", "90", RX90),
    # dof order: the first listed axis is applied first: rx ry rz = Rz @ Ry @ Rx.
    ("rx rz", "90 90", RZ90 @ RX90),
    ("rz rx", "90 90", RX90 @ RZ90),
])
def test_forward_kinematics_conventions(dof, values, motion):
    """W_a = C @ M @ C^-1 with C = Rz(90) (a's axis); b starts at a's end, c at b's end."""
    skeleton = parse_asf(SMALL_ASF.format(dof=dof).splitlines(), "small.asf")
    amc = AmcMotion("small.amc", 1, {"root": np.array([[0, 0, 0, 0, 0, 0.0]]),
                                     "a": np.radians(np.array([[float(v) for v in values.split()]]))})
    starts = forward_kinematics(skeleton, amc)
    world = RZ90 @ motion @ RZ90.T
    np.testing.assert_allclose(starts["b"][0], world @ [0, 1, 0], atol=1e-9)
    np.testing.assert_allclose(starts["c"][0], world @ [0, 1, 0] + world @ [1, 0, 0], atol=1e-9)
    if dof == "rx":  # a turn of 90 degrees about world y: a stays up, b's +x goes to -z
        np.testing.assert_allclose(starts["c"][0], (0, 1, -1), atol=1e-9)


def test_root_translation_and_rotation():
    skeleton = parse_asf(SMALL_ASF.format(dof="rx").splitlines(), "small.asf")
    amc = AmcMotion("small.amc", 1, {"root": np.array([[1.0, 2.0, 3.0, 0, 0, np.pi / 2]]),
                                     "a": np.zeros((1, 1))})
    starts = forward_kinematics(skeleton, amc)
    np.testing.assert_allclose(starts["a"][0], (1, 2, 3))
    np.testing.assert_allclose(starts["b"][0], (0, 2, 3), atol=1e-9)  # Rz(90): a's +y -> -x


# ----------------------------------------------------------------------------- CLI

def test_cli_info_and_features_on_amc(hdm05, capsys, tmp_path):
    amc = hdm05 / JOG["bd"]
    assert cli.main(["info", str(amc)]) == 0
    out = capsys.readouterr().out
    assert "frames    244" in out and "fps       120" in out and "HDM_bd.asf" in out
    assert "left_knee      <- ltibia" in out
    assert cli.main(["info", str(amc), "--asf", str(hdm05 / "train/5/HDM_bk.asf"), "--fps", "60"]) == 0
    out = capsys.readouterr().out
    assert "HDM_bk.asf" in out and "fps       60" in out
    assert cli.main(["features", str(amc), "--out", str(tmp_path / "f.npy")]) == 0
    assert np.load(tmp_path / "f.npy").shape == (40, 263)
    motion = cli.read_motion_file(amc)
    assert motion.num_frames == 244
    # describe / predict read the .amc (and --asf) before they load the model
    assert cli.main(["describe", str(amc), "--model", str(tmp_path / "no-model")]) == 2
    assert "no-model" in capsys.readouterr().err
    assert cli.main(["predict", str(amc), "--asf", str(tmp_path / "no.asf"), "--seconds", "1",
                     "--out", str(tmp_path / "p.bvh"), "--model", str(tmp_path / "no-model")]) == 2
    assert "ASF file" in capsys.readouterr().err


@pytest.mark.parametrize("args, words", [
    (["info", "{asf}"], ["skeleton without motion", "--asf"]),
    (["info", "{lonely}"], ["needs its ASF", "--asf"]),
    (["info", "{bvh}", "--asf", "{asf}"], ["--asf is for Acclaim"]),
])
def test_cli_errors(hdm05, shared_data, tmp_path, capsys, args, words):
    lonely = tmp_path / "walk.amc"
    lonely.write_text("1\nroot 0 0 0 0 0 0\n")
    names = {"asf": hdm05 / "train/5/HDM_bd.asf", "lonely": lonely, "bvh": shared_data / "cmu" / "02_01.bvh"}
    assert cli.main([a.format(**names) for a in args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and all(w in err for w in words), err


# ----------------------------------------------------------------------------- bad files

def _line_of(text: str, needle: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), 1) if needle in line)


ASF_CASES = [  # (old, new, words in the message, the line named: the line of `new`, or None)
    (":bonedata", ":bonedatum", "no :bonedata section", None),
    ("    lfemur ltibia", "    lfemur lshin", "unknown bone 'lshin'", "lfemur lshin"),
    ("    root lhipjoint", "    hips lhipjoint", "unknown bone 'hips'", "hips lhipjoint"),
    ("length 7.34031", "length seven", "'seven' is not a number", "length seven"),
    ("length 7.34031", "length nan", "NaN or infinite", "length nan"),
    ("direction 0.34202 -0.939693 0  ", "direction 1e300 0 0", "out of range", "direction 1e300"),
    ("axis 0 0 20  XYZ", "axis 0 0 20  XXZ", "not a permutation", "axis 0 0 20  XXZ"),
    ("axis 0 0 20  XYZ", "axis 0 0 XYZ", "three angles", "axis 0 0 XYZ"),
    ("    dof rx ry rz\n", "    dof rx ry qq\n", "dof", "dof rx ry qq"),
    ("  angle deg", "  angle grad", "not deg or rad", "angle grad"),
    ("   order TX TY TZ RX RY RZ", "   order TX TY TZ RX RY RW", "root order", "RW"),
]


@pytest.mark.parametrize("old, new, words, line", ASF_CASES, ids=[c[2] for c in ASF_CASES])
def test_bad_asf(hdm05, tmp_path, old, new, words, line):
    text = (hdm05 / "train/5/HDM_bd.asf").read_text(encoding="latin-1").replace("\r\n", "\n")
    assert old in text, old
    bad = tmp_path / "bad.asf"
    bad.write_text(text.replace(old, new, 1), encoding="latin-1")
    with pytest.raises(MotionError) as error:
        read_asf(bad)
    message = str(error.value)
    assert str(bad) in message and words in message, message
    if line is not None:
        assert f"line {_line_of(text.replace(old, new, 1), line)}:" in message, message


AMC_CASES = [  # (bone whose first line is replaced, the new line(s) ({} = the old line), words, line offset)
    ("lowerback", "lowerbak 1 2 3", "unknown bone 'lowerbak'", 0),
    ("ltibia", "{} 1", "needs 1 numbers, got 2", 0),
    ("ltibia", "ltibia x28", "'x28' is not a number", 0),
    ("ltibia", "ltibia inf", "NaN or infinite", 0),
    ("ltibia", "ltibia 1e99", "out of range", 0),
    ("ltibia", "", "lacks bone(s) ltibia", None),
    ("ltibia", "{0}\n{0}", "twice", 1),
]


@pytest.mark.parametrize("old, new, words, line", AMC_CASES, ids=[c[2] for c in AMC_CASES])
def test_bad_amc(hdm05, tmp_path, old, new, words, line):
    skeleton = read_asf(hdm05 / "test/1/HDM_tr.asf")
    lines = (hdm05 / LATIN1_AMC).read_text(encoding="latin-1").splitlines()[:200]
    index = next(i for i, l in enumerate(lines) if l.startswith(old + " "))
    lines[index:index + 1] = new.format(lines[index]).split("\n") if new else []
    mutated = "\n".join(lines) + "\n"
    bad = tmp_path / "bad.amc"
    bad.write_text(mutated, encoding="latin-1")
    with pytest.raises(MotionError) as error:
        read_amc(bad, skeleton)
    message = str(error.value)
    assert str(bad) in message and words in message and "line " in message, message
    if line is not None:
        assert f"line {index + 1 + line}:" in message, message


@pytest.mark.parametrize("content, words", [
    (b"", "empty"), (b"  \n\n", "empty"), (b"\x00\x01binary", "NUL"), (b"hello\n", "before any"),
    (b":root\n  order TX TY TZ\n:bonedata\n  begin\n    name a\n", "no 'end'"),
])
def test_bad_asf_files(tmp_path, content, words):
    bad = tmp_path / "bad.asf"
    bad.write_bytes(content)
    with pytest.raises(MotionError, match=words) as error:
        read_asf(bad)
    assert str(bad) in str(error.value)


def test_folder_missing_and_empty_amc(hdm05, tmp_path):
    skeleton = read_asf(hdm05 / "train/5/HDM_bd.asf")
    for path, words in [(tmp_path, "is a folder"), (tmp_path / "no.amc", "does not exist")]:
        with pytest.raises(MotionError, match=words):
            read_amc(path, skeleton)
        with pytest.raises(MotionError, match=words):
            read_asf(path)
    (tmp_path / "e.amc").write_text(":FULLY-SPECIFIED\n:DEGREES\n")
    with pytest.raises(MotionError, match="no frames"):
        read_amc(tmp_path / "e.amc", skeleton)
    (tmp_path / "f.amc").write_text(":DEGREES\nroot 0 0 0 0 0 0\n")
    with pytest.raises(MotionError, match="line 2: .* before the first frame"):
        read_amc(tmp_path / "f.amc", skeleton)


def test_fuzz_only_motion_errors(hdm05, tmp_path):
    """100 seeded mutations of a real ASF and a short AMC: a Motion or a MotionError, nothing else."""
    asf_text = (hdm05 / "train/5/HDM_bd.asf").read_bytes()
    amc_text = b"\n".join((hdm05 / JOG["bd"]).read_bytes().splitlines()[:3 + 30 * 4]) + b"\n"
    rng = random.Random(17)
    junk = [b"nan", b"1e400", b"x", b"", b"-", b"\xff\xfe", b"end", b"begin", b":hierarchy", b"root", b"1", b"0 0 0"]
    outcomes = {"ok": 0, "error": 0}
    for trial in range(100):
        target = rng.choice(["asf", "amc"])
        lines = (asf_text if target == "asf" else amc_text).splitlines()
        kind = rng.randrange(5)
        i = rng.randrange(len(lines))
        if kind == 0:
            del lines[i]
        elif kind == 1:
            lines.insert(i, lines[rng.randrange(len(lines))])
        elif kind == 2:
            tokens = lines[i].split() or [b""]
            tokens[rng.randrange(len(tokens))] = rng.choice(junk)
            lines[i] = b" ".join(tokens)
        elif kind == 3:
            lines = lines[:i]
        else:
            j = rng.randrange(len(lines))
            lines[i], lines[j] = lines[j], lines[i]
        data = b"\n".join(lines)
        (tmp_path / "f.asf").write_bytes(data if target == "asf" else asf_text)
        (tmp_path / "f.amc").write_bytes(data if target == "amc" else amc_text)
        try:
            skeleton = read_asf(tmp_path / "f.asf")
            motion = asf_amc_to_motion(skeleton, read_amc(tmp_path / "f.amc", skeleton))
            assert np.isfinite(motion.joints).all()
            outcomes["ok"] += 1
        except MotionError as error:
            assert "f.asf" in str(error) or "f.amc" in str(error), str(error)
            outcomes["error"] += 1
    assert outcomes["ok"] > 5 and outcomes["error"] > 20, outcomes


@pytest.mark.parametrize("actor", ACTORS)
def test_rest_pose_stature(hdm05, actor):
    """The ASF's zero pose (all AMC values 0): top of the head bone 1.55-1.8 m above the tips of the
    toes (measured 1.59-1.76 m for the five HDM05 actors), at 0.0254 / 0.45 = 0.056444 m per unit."""
    from engine.formats.asf import metres_per_unit
    skeleton = read_asf(hdm05 / Path(JOG[actor]).parent / f"HDM_{actor}.asf")
    zero = AmcMotion("zero", 1, {b: np.zeros((1, len(skeleton.dof(b)))) for b in skeleton.bones if skeleton.dof(b)})
    starts = forward_kinematics(skeleton, zero)
    scale = metres_per_unit(skeleton, {"pelvis": "root", "left_ankle": "lfoot", "right_ankle": "rfoot"})
    assert scale == pytest.approx(0.0254 / 0.45)

    def end(bone: str) -> np.ndarray:
        return starts[bone][0] + skeleton.bones[bone].length * skeleton.bones[bone].direction
    stature = (end("head")[1] - min(end("ltoes")[1], end("rtoes")[1])) * scale
    assert 1.55 < stature < 1.8, stature
