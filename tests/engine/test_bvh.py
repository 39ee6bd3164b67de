"""BVH import on real mocap (Bandai Namco dataset 1 and 2, CMU) and on synthetic files of other families."""
import tarfile
import time

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from engine import Motion, MotionError
from engine.formats.bone_maps import load_bone_map
from engine.formats.bvh import forward_kinematics, parse_bvh, parse_bvh_file, read_bvh, read_bvh_file, write_bvh
from engine.motion import JOINT_NAMES, bone_lengths

J = {name: i for i, name in enumerate(JOINT_NAMES)}
FEET = [J["left_ankle"], J["right_ankle"], J["left_foot"], J["right_foot"]]
NOT_ON_FLAT_FLOOR = {"01_08", "01_14"}  # CMU playground: climbing, sitting on a frame, dangling legs


def header_frames(text):
    return int(text.split("Frames:")[1].split()[0])


@pytest.fixture(scope="session")
def real_clips(shared_data):
    """Every Bandai dataset-1 and CMU clip, imported once: name -> (Motion, header frame count)."""
    files = sorted((shared_data / "bandai" / "dataset-1" / "data").glob("*.bvh")) + \
        sorted((shared_data / "cmu").glob("*.bvh"))
    assert len(files) == 174 + 65
    clips = {}
    start = time.perf_counter()
    for path in files:
        clips[path.stem] = (read_bvh(path), header_frames(path.read_text()))
    clips["_seconds"] = time.perf_counter() - start
    return clips


@pytest.fixture(scope="session")
def dataset2_sample(shared_data):
    """The first 100 BVH members of dataset-2.tar.xz, read in one sequential pass: name -> text."""
    texts = {}
    with tarfile.open(shared_data / "bandai" / "dataset-2.tar.xz", "r:xz") as archive:
        for member in archive:
            if member.isfile() and member.name.endswith(".bvh"):
                texts[member.name] = archive.extractfile(member).read().decode("ascii")
                if len(texts) == 100:
                    break
    return texts


def clip_items(real_clips):
    return [(name, motion, frames) for name, value in real_clips.items() if not name.startswith("_")
            for motion, frames in [value]]


def check_plausible_human(name, joints):
    """Standing adult, metres, Y up: rigid bones, head above pelvis, feet on a floor, pelvis ~0.8-1.1 m."""
    joints = joints.astype(np.float64)
    assert np.isfinite(joints).all(), name
    lengths = bone_lengths(joints)
    assert lengths.std(axis=0).max() < 1e-4, f"{name}: bone lengths change over time"
    assert (lengths[0, 1:] > 0.01).all(), f"{name}: a bone of zero length {lengths[0]}"
    assert np.median(joints[:, J["head"], 1] - joints[:, 0, 1]) > 0.25, f"{name}: head not above pelvis"
    if name in NOT_ON_FLAT_FLOOR:
        return
    lowest = joints[:, FEET, 1].min(axis=1)
    floor = np.percentile(lowest, 5)  # robust to glitch frames (CMU 09_10 frames 1-4 are all zeros)
    assert -0.08 < floor < 0.2, f"{name}: feet not near the floor y=0 ({floor:.3f} m)"
    pelvis = np.median(joints[:, 0, 1]) - floor
    assert 0.75 < pelvis < 1.15, f"{name}: pelvis height {pelvis:.3f} m"


def test_all_real_clips_import_as_plausible_humans(real_clips):
    print(f"\nimported 174 Bandai dataset-1 + 65 CMU clips in {real_clips['_seconds']:.2f} s")
    for name, motion, frames in clip_items(real_clips):
        assert motion.joints.shape[1:] == (22, 3) and motion.joints.dtype == np.float32
        check_plausible_human(name, motion.joints)
        if name.startswith("dataset-1"):
            assert motion.fps == 30.0 and motion.num_frames == frames, name
        else:
            assert motion.fps == 120.0, name
            assert motion.num_frames == frames - 1, f"{name}: the T-pose frame 0 must be dropped"


def test_walks_have_left_on_the_characters_left(real_clips):
    walks = [(n, m) for n, m, _ in clip_items(real_clips)
             if n.startswith("dataset-1_walk_") or n in ("02_01", "02_02", "07_01", "07_02", "08_01", "08_02")]
    assert len(walks) == 36
    for name, motion in walks:
        joints = motion.joints.astype(np.float64)
        forward = joints[-1, 0] - joints[0, 0]
        forward[1] = 0.0
        assert np.linalg.norm(forward) > 1.0, f"{name}: a walk should travel"
        left = np.cross([0.0, 1.0, 0.0], forward / np.linalg.norm(forward))
        across = joints[:, J["left_hip"]] - joints[:, J["right_hip"]]
        assert (across @ left > 0).mean() > 0.95, name
        shoulders = joints[:, J["left_shoulder"]] - joints[:, J["right_shoulder"]]
        assert (shoulders @ left > 0).mean() > 0.95, name
        pelvis = np.median(joints[:, 0, 1]) - np.percentile(joints[:, FEET, 1].min(axis=1), 5)
        assert 0.8 < pelvis < 1.1, f"{name}: standing pelvis height {pelvis:.3f} m"


def test_real_clips_give_finite_features(real_clips):
    for name, motion, _ in clip_items(real_clips):
        at_20 = motion.resample(20)
        features = at_20.to_features()
        assert features.shape == (at_20.num_frames - 1, 263) and np.isfinite(features).all(), name


def test_dataset2_sample_from_one_tar_pass(dataset2_sample):
    assert len(dataset2_sample) == 100
    for member, text in dataset2_sample.items():
        motion = parse_bvh(text, source=member)
        assert motion.fps == 30.0 and motion.num_frames == header_frames(text), member
        check_plausible_human(member, motion.joints)


def test_cmu_tpose_frame_is_frame_zero_of_the_file(shared_data):
    path = shared_data / "cmu" / "02_01.bvh"
    dropped = read_bvh(path)
    kept = read_bvh(path, bone_map={**load_bone_map("cmu").to_dict(),
                                    "bvh": {"scale_to_metres": 0.056444}})
    assert kept.num_frames == dropped.num_frames + 1
    np.testing.assert_array_equal(kept.joints[1:], dropped.joints)
    # Frame 0 is the converter's T-pose: arms out to the sides, wrists far apart.
    span = np.linalg.norm(kept.joints[0, J["left_wrist"]] - kept.joints[0, J["right_wrist"]])
    assert span > 1.2


def test_world_root_composes_joint_root_and_hips(shared_data):
    """Bandai's joint_Root moves in dash_normal_001: the pelvis is joint_Root + Hips, not Hips alone."""
    path = shared_data / "bandai" / "dataset-1" / "data" / "dataset-1_dash_normal_001.bvh"
    bvh = parse_bvh_file(path.read_text(), str(path))
    assert bvh.names[:2] == ["joint_Root", "Hips"]
    root_z = bvh.frames[:, 2]
    assert np.ptp(root_z) > 10.0  # joint_Root's Zposition moves (cm)
    assert np.abs(bvh.frames[:, 3:6]).max() < 1e-6  # and does not rotate
    expected_pelvis = (bvh.frames[:, 0:3] + bvh.frames[:, 6:9]) * 0.01
    np.testing.assert_allclose(read_bvh(path).joints[:, 0], expected_pelvis, atol=1e-5)


def test_motion_from_bvh_delegates(shared_data):
    path = shared_data / "bandai" / "dataset-1" / "data" / "dataset-1_bow_normal_001.bvh"
    np.testing.assert_array_equal(Motion.from_bvh(path).joints, read_bvh(path, bone_map="bandai").joints)


# ----------------------------------------------------------------------------- synthetic files

# A Mixamo-named skeleton, Z up, metres, facing -Y (Blender's convention): name, parent, offset,
# channels. Channel orders differ per joint; the root interleaves positions and rotations and
# LeftArm carries position channels of its own.
SKELETON = [
    ("Hips", None, (0.0, 0.0, 0.95), "Xposition Zrotation Yposition Xrotation Zposition Yrotation"),
    ("Spine", "Hips", (0.0, 0.01, 0.10), "Xrotation Yrotation Zrotation"),
    ("Spine1", "Spine", (0.0, 0.0, 0.12), "Zrotation Xrotation Yrotation"),
    ("Spine2", "Spine1", (0.0, 0.0, 0.12), "Yrotation Zrotation Xrotation"),
    ("Neck", "Spine2", (0.0, 0.0, 0.16), "Zrotation Yrotation Xrotation"),
    ("Head", "Neck", (0.0, 0.0, 0.10), "Xrotation Zrotation Yrotation"),
    ("LeftShoulder", "Spine2", (0.04, 0.0, 0.12), "Zrotation Xrotation Yrotation"),
    ("LeftArm", "LeftShoulder", (0.13, 0.0, 0.0), "Yrotation Xposition Yposition Zposition Zrotation Xrotation"),
    ("LeftForeArm", "LeftArm", (0.27, 0.0, 0.0), "Zrotation Xrotation Yrotation"),
    ("LeftHand", "LeftForeArm", (0.26, 0.0, 0.0), "Zrotation Xrotation Yrotation"),
    ("RightShoulder", "Spine2", (-0.04, 0.0, 0.12), "Zrotation Xrotation Yrotation"),
    ("RightArm", "RightShoulder", (-0.13, 0.0, 0.0), "Zrotation Xrotation Yrotation"),
    ("RightForeArm", "RightArm", (-0.27, 0.0, 0.0), "Xrotation Yrotation Zrotation"),
    ("RightHand", "RightForeArm", (-0.26, 0.0, 0.0), "Zrotation Xrotation Yrotation"),
    ("LeftUpLeg", "Hips", (0.09, 0.0, -0.06), "Yrotation Xrotation Zrotation"),
    ("LeftLeg", "LeftUpLeg", (0.0, 0.0, -0.42), "Xrotation"),
    ("LeftFoot", "LeftLeg", (0.0, 0.0, -0.41), "Zrotation Xrotation Yrotation"),
    ("LeftToeBase", "LeftFoot", (0.0, -0.13, -0.06), "Zrotation Xrotation Yrotation"),
    ("RightUpLeg", "Hips", (-0.09, 0.0, -0.06), "Zrotation Xrotation Yrotation"),
    ("RightLeg", "RightUpLeg", (0.0, 0.0, -0.42), "Zrotation Xrotation Yrotation"),
    ("RightFoot", "RightLeg", (0.0, 0.0, -0.41), "Zrotation Xrotation Yrotation"),
    ("RightToeBase", "RightFoot", (0.0, -0.13, -0.06), "Zrotation Xrotation Yrotation"),
]
END_SITES = {"Head": (0.0, 0.0, 0.12), "LeftHand": (0.1, 0.0, 0.0), "RightHand": (-0.1, 0.0, 0.0),
             "LeftToeBase": (0.0, -0.05, 0.0), "RightToeBase": (0.0, -0.05, 0.0)}


def synthetic_frames(frames=12, seed=0):
    """Channel values (T, C): a root path with small random rotations; positions in metres."""
    rng = np.random.default_rng(seed)
    columns = []
    for name, parent, offset, channels in SKELETON:
        for channel in channels.split():
            axis = "XYZ".index(channel[0])
            if channel.endswith("position"):
                base = offset[axis] + (np.linspace(0, 0.8, frames) if (parent is None and axis == 1) else 0.0)
                columns.append(base + rng.normal(0, 0.005, frames))
            else:
                columns.append(rng.normal(0, 12.0, frames))
    return np.stack(columns, axis=1)


def synthetic_text(frames, scale=1.0, names=None):
    """BVH text of SKELETON with ``frames`` channel values, lengths multiplied by ``scale``."""
    names = names or {}
    children = {}
    for joint in SKELETON:
        children.setdefault(joint[1], []).append(joint)
    position_columns = [k for k, channel in enumerate(" ".join(j[3] for j in SKELETON).split())
                        if channel.endswith("position")]
    values = frames.copy()
    values[:, position_columns] *= scale

    def block(joint, depth):
        name, parent, offset, channels = joint
        pad = "  " * depth
        lines = [f"{pad}{'ROOT' if parent is None else 'JOINT'} {names.get(name, name)}", f"{pad}{{",
                 f"{pad}  OFFSET {' '.join(f'{v * scale:.6f}' for v in offset)}",
                 f"{pad}  CHANNELS {len(channels.split())} {channels}"]
        for child in children.get(name, []):
            lines += block(child, depth + 1)
        if name in END_SITES:
            lines += [f"{pad}  End Site", f"{pad}  {{",
                      f"{pad}    OFFSET {' '.join(f'{v * scale:.6f}' for v in END_SITES[name])}", f"{pad}  }}"]
        return lines + [f"{pad}}}"]

    lines = ["HIERARCHY"] + block(SKELETON[0], 0) + ["MOTION", f"Frames: {len(values)}", "Frame Time: 0.04"]
    lines += [" ".join(f"{v:.6f}" for v in row) for row in values]
    return "\n".join(lines) + "\n"


def reference_positions(frames):
    """World joint positions (T, J, 3) of SKELETON, computed with scipy's intrinsic Euler rotations."""
    positions, rotations, column = {}, {}, 0
    for name, parent, offset, channels in SKELETON:
        translation = np.tile(np.array(offset, dtype=np.float64), (len(frames), 1))
        axes, angles = "", []
        for channel in channels.split():
            if channel.endswith("position"):
                translation[:, "XYZ".index(channel[0])] = frames[:, column]
            else:
                axes += channel[0]
                angles.append(frames[:, column])
            column += 1
        local = Rotation.from_euler(axes.upper(), np.stack(angles, axis=1), degrees=True)
        if parent is None:
            positions[name], rotations[name] = translation, local
        else:
            positions[name] = positions[parent] + rotations[parent].apply(translation)
            rotations[name] = rotations[parent] * local
    return np.stack([positions[j[0]] for j in SKELETON], axis=1)


def test_forward_kinematics_matches_scipy_for_any_channel_order():
    frames = synthetic_frames()
    bvh = parse_bvh_file(synthetic_text(frames), "synthetic.bvh")
    assert bvh.names == [j[0] for j in SKELETON] and bvh.fps == 25.0
    assert set(bvh.end_sites) == {bvh.names.index(n) for n in END_SITES}
    np.testing.assert_allclose(forward_kinematics(bvh), reference_positions(np.round(frames, 6)), atol=1e-9)


def test_z_up_metres_file_becomes_y_up_with_inferred_unit():
    frames = synthetic_frames()
    motion = parse_bvh(synthetic_text(frames), "zup.bvh")  # Mixamo names, auto-detected
    reference = reference_positions(np.round(frames, 6))
    index = {j[0]: i for i, j in enumerate(SKELETON)}
    pelvis_zup = reference[:, index["Hips"]]
    np.testing.assert_allclose(motion.joints[:, 0], np.stack(
        [pelvis_zup[:, 0], pelvis_zup[:, 2], -pelvis_zup[:, 1]], axis=1), atol=1e-6)
    joints = motion.joints
    assert (joints[:, J["head"], 1] > joints[:, 0, 1] + 0.3).all()
    assert 0.8 < np.median(joints[:, 0, 1]) < 1.1
    assert motion.fps == 25.0
    # Facing -Y in Blender becomes facing +Z: the character's left (+X) stays +X.
    assert (joints[:, J["left_hip"], 0] > joints[:, J["right_hip"], 0]).all()


@pytest.mark.parametrize("scale", [100.0, 1 / 0.0254, 1000.0, 1 / 0.056444])
def test_units_are_inferred_from_leg_length(scale):
    frames = synthetic_frames(frames=6, seed=1)
    in_metres = parse_bvh(synthetic_text(frames), "m.bvh", bone_map="mixamo").joints
    scaled = parse_bvh(synthetic_text(frames, scale=scale), "scaled.bvh", bone_map="mixamo").joints
    np.testing.assert_allclose(scaled, in_metres, atol=2e-5)


def test_fillable_joints_are_interpolated_on_the_rig():
    frames = synthetic_frames(frames=5, seed=2)
    text = synthetic_text(frames)
    full = parse_bvh(text, "full.bvh", bone_map="mixamo").joints
    bone_map = load_bone_map("mixamo").to_dict()
    for joint in ("spine2", "left_collar"):
        del bone_map["joints"][joint]
    sparse = parse_bvh(text, "sparse.bvh", bone_map=bone_map).joints
    same = [j for j in range(22) if j not in (J["spine2"], J["left_collar"])]
    np.testing.assert_array_equal(sparse[:, same], full[:, same])
    # spine2 is put on the rig's spine Spine -> Spine1 -> Spine2 (0.12 m + 0.12 m) at SMPL's proportion
    # between spine1 and spine3 (0.1432 / (0.1432 + 0.0574) of the arc): on bone Spine1 -> Spine2 at 43%.
    along = (0.1431902 / (0.1431902 + 0.0573647) * 0.24 - 0.12) / 0.12
    np.testing.assert_allclose(sparse[:, J["spine2"]],
                               full[:, J["spine2"]] + along * (full[:, J["spine3"]] - full[:, J["spine2"]]), atol=1e-5)
    # The collar is on the straight line spine3 -> shoulder, about half way.
    p, lo, hi = sparse[:, J["left_collar"]], sparse[:, J["spine3"]], sparse[:, J["left_shoulder"]]
    t = ((p - lo) * (hi - lo)).sum(-1) / ((hi - lo) ** 2).sum(-1)
    assert ((0.45 < t) & (t < 0.55)).all(), t
    np.testing.assert_allclose(p, lo + t[:, None] * (hi - lo), atol=1e-5)


def test_other_families_detected_from_bvh_names():
    frames = synthetic_frames(frames=4, seed=3)
    smpl_names = {"Hips": "m_avg_Pelvis", "Spine": "m_avg_Spine1", "Spine1": "m_avg_Spine2",
                  "Spine2": "m_avg_Spine3", "Neck": "m_avg_Neck", "Head": "m_avg_Head"}
    for side, s in (("Left", "L"), ("Right", "R")):
        smpl_names.update({f"{side}Shoulder": f"m_avg_{s}_Collar", f"{side}Arm": f"m_avg_{s}_Shoulder",
                           f"{side}ForeArm": f"m_avg_{s}_Elbow", f"{side}Hand": f"m_avg_{s}_Wrist",
                           f"{side}UpLeg": f"m_avg_{s}_Hip", f"{side}Leg": f"m_avg_{s}_Knee",
                           f"{side}Foot": f"m_avg_{s}_Ankle", f"{side}ToeBase": f"m_avg_{s}_Foot"})
    reference = parse_bvh(synthetic_text(frames), "mixamo.bvh").joints
    as_smpl = parse_bvh(synthetic_text(frames, names=smpl_names), "smpl.bvh").joints
    np.testing.assert_array_equal(as_smpl, reference)
    prefixed = {name: f"mixamorig:{name}" for name, *_ in SKELETON}
    np.testing.assert_array_equal(parse_bvh(synthetic_text(frames, names=prefixed), "p.bvh").joints, reference)


# ----------------------------------------------------------------------------- bad input

def replace_token(line, index, token):
    tokens = line.split()
    tokens[index] = token
    return " ".join(tokens)


def bad_files(walk_text):
    header, motion = walk_text.split("MOTION")
    lines = motion.strip().splitlines()  # "Frames: 195", "Frame Time: ...", 195 frame lines
    frame_lines = lines[2:]
    return {
        "empty.bvh": ("", "empty"),
        "no_hierarchy.bvh": ("MOTION\nFrames: 1\nFrame Time: 0.1\n0 0 0\n", "no HIERARCHY"),
        "no_motion.bvh": (header, "no MOTION"),
        "cut_hierarchy.bvh": (walk_text[:400], "no MOTION"),
        "few_lines.bvh": (header + "MOTION\n" + "\n".join(lines[:-3]) + "\n", "truncated"),
        "short_line.bvh": (header + "MOTION\n" + "\n".join(lines[:-1] + [frame_lines[-1][:50]]) + "\n",
                           "expected 132"),
        "word.bvh": (header + "MOTION\n" + "\n".join(lines[:5] + [replace_token(lines[5], 3, "1.5q")] + lines[6:]),
                     "'1.5q' is not a number"),
        "zero_frames.bvh": (header + "MOTION\nFrames: 0\nFrame Time: 0.0333333\n", "zero frames"),
        "nan.bvh": (header + "MOTION\n" + "\n".join(lines[:4] + [replace_token(lines[4], 7, "nan")] + lines[5:]),
                    "NaN"),
        "bad_frame_time.bvh": (header + "MOTION\nFrames: 1\nFrame Time: fast\n" + frame_lines[0], "Frame Time"),
        "unknown_rig.bvh": (walk_text.replace("UpperLeg_L", "Thigh_Left").replace("LowerArm_R", "Elbow_Right"),
                            "left_hip"),
    }


def test_bad_files_raise_motion_errors_naming_file_and_problem(shared_data, tmp_path):
    walk = (shared_data / "bandai" / "dataset-1" / "data" / "dataset-1_walk_normal_001.bvh").read_text()
    for file_name, (text, problem) in bad_files(walk).items():
        path = tmp_path / file_name
        path.write_text(text)
        with pytest.raises(MotionError) as error:
            read_bvh(path)
        message = str(error.value)
        assert file_name in message and problem in message, message
    unknown = str(pytest.raises(MotionError, read_bvh, tmp_path / "unknown_rig.bvh").value)
    assert "right_elbow" in unknown and "left_knee" not in unknown
    with pytest.raises(MotionError, match="nowhere.bvh does not exist"):
        read_bvh(tmp_path / "nowhere.bvh")
    with pytest.raises(MotionError, match=r"text\.bvh.*Thigh_Left|text\.bvh.*left_hip"):
        parse_bvh(bad_files(walk)["unknown_rig.bvh"][0], source="text.bvh", bone_map="bandai")


# ----------------------------------------------------------------------------- writing

def test_write_bvh_round_trip_on_humanml3d_and_mocap(shared_data, tmp_path):
    reference = Motion(np.load(shared_data / "humanml3d" / "new_joints" / "012314.npy"), fps=20.0)
    walk = read_bvh(shared_data / "cmu" / "02_01.bvh").resample(20)
    for name, motion in (("hml3d", reference), ("cmu_walk", walk)):
        for units in ("cm", "m"):
            path = tmp_path / f"{name}_{units}.bvh"
            write_bvh(motion, path, units=units)
            again = read_bvh(path)
            assert again.fps == 20.0 and again.num_frames == motion.num_frames
            assert np.abs(again.joints - motion.joints).max() < 1e-3, (name, units)
    # The rotations carry the pose: a joint's main child needs no offset change beyond its rest OFFSET.
    bvh = parse_bvh_file((tmp_path / "hml3d_cm.bvh").read_text(), "hml3d_cm.bvh")
    knee = bvh.names.index("L_Knee")
    np.testing.assert_allclose(bvh.frames[:, bvh.first_channel[knee]:bvh.first_channel[knee] + 3],
                               np.tile(bvh.offsets[knee], (len(bvh.frames), 1)), atol=1e-3)
    assert bvh.names[0] == "Pelvis" and len(bvh.names) == 22 and len(bvh.end_sites) == 5


def test_write_bvh_rejects_bad_input(tmp_path):
    joints = np.zeros((3, 22, 3), dtype=np.float32)
    with pytest.raises(MotionError, match="zero length"):
        write_bvh(Motion(joints, 20.0), tmp_path / "flat.bvh")
    with pytest.raises(MotionError, match="units"):
        write_bvh(Motion(joints, 20.0), tmp_path / "x.bvh", units="furlong")


# ----------------------------------------------------------------------------- streaming, limits, damaged files

def test_streamed_parse_matches_a_plain_parse_for_every_line_ending(shared_data, tmp_path):
    """01_08 (2 MB) spans several read blocks; LF, CRLF and CR-only files give the same numbers."""
    text = (shared_data / "cmu" / "01_08.bvh").read_text()
    header, body = text.split("MOTION\n")
    body_lines = body.splitlines()
    expected = np.loadtxt(body_lines[2:], ndmin=2)
    for name, ending in (("lf", "\n"), ("crlf", "\r\n"), ("cr", "\r")):
        path = tmp_path / f"{name}.bvh"
        path.write_bytes(ending.join(text.splitlines()).encode() + ending.encode())
        bvh = read_bvh_file(path)
        assert bvh.frames.shape == expected.shape and bvh.frames.dtype == np.float64, name
        np.testing.assert_array_equal(bvh.frames, expected)
        assert bvh.names[:3] == ["Hips", "LHipJoint", "LeftUpLeg"] and bvh.fps == 120
    np.testing.assert_array_equal(parse_bvh_file(text, "text").frames, expected)


def test_limits_and_damage_name_the_file_line_and_value(shared_data, tmp_path):
    text = (shared_data / "cmu" / "09_02.bvh").read_text()
    lines = text.splitlines()
    at = {key: next(i for i, line in enumerate(lines) if line.startswith(key)) for key in ("Frames:", "Frame Time:")}
    first_frame = at["Frame Time:"] + 1

    def variant(index: int, line: str) -> str:
        return "\n".join(lines[:index] + [line] + lines[index + 1:]) + "\n"

    def value_at(frame: int, column: int, token: str) -> str:
        values = lines[first_frame + frame].split()
        values[column] = token
        return variant(first_frame + frame, " ".join(values))

    offset_line = next(i for i, line in enumerate(lines) if line.strip().startswith("OFFSET") and i > 5)
    cases = {
        "tiny_time.bvh": (variant(at["Frame Time:"], "Frame Time: 5e-324"),
                          [f"line {at['Frame Time:'] + 1}", "Frame Time 5e-324 is out of range"]),
        "huge_time.bvh": (variant(at["Frame Time:"], "Frame Time: 1e300"), ["Frame Time 1e300 is out of range"]),
        "negative_time.bvh": (variant(at["Frame Time:"], "Frame Time: -0.01"), ["Frame Time must be positive"]),
        "overflow.bvh": (value_at(2, 0, "1e308"), [f"line {first_frame + 3} (frame 2)", "Xposition of joint 'Hips'",
                                                   "1e308", "out of range"]),
        "infinite.bvh": (value_at(4, 7, "-1e309"), [f"line {first_frame + 5} (frame 4)", "-1e309", "NaN or infinite"]),
        "offset.bvh": (variant(offset_line, "OFFSET 1e308 0 0"), [f"line {offset_line + 1}", "OFFSET value 1e308",
                                                                 "out of range"]),
        "claimed_frames.bvh": (variant(at["Frames:"], "Frames: 99999999999999"), ["Frames", "truncated"]),
        "fractional_frames.bvh": (variant(at["Frames:"], "Frames: 2.5"), ["Frames 2.5 is not a whole number"]),
        "latin1_number.bvh": (value_at(1, 3, "1.5\xe9"), [f"line {first_frame + 2}", "'1.5\xe9' is not a number"]),
    }
    for file_name, (bad_text, words) in cases.items():
        path = tmp_path / file_name
        path.write_bytes(bad_text.encode("latin-1"))
        with pytest.raises(MotionError) as error:
            read_bvh(path)
        message = str(error.value)
        assert file_name in message and all(w in message for w in words), message
    folder = tmp_path / "folder.bvh"
    folder.mkdir()
    with pytest.raises(MotionError, match="folder.bvh is a folder"):
        read_bvh(folder)


def test_deep_hierarchies_parse_or_are_refused_in_linear_time():
    def chain(depth: int) -> str:
        lines = ["HIERARCHY"]
        for i in range(depth):
            lines += [f"{'ROOT' if i == 0 else 'JOINT'} J{i}", "{", "OFFSET 0 1 0", "CHANNELS 1 Zrotation"]
        lines += ["End Site", "{", "OFFSET 0 1 0", "}"] + ["}"] * depth
        return "\n".join(lines + ["MOTION", "Frames: 1", "Frame Time: 0.05", " ".join(["0"] * depth)]) + "\n"
    bvh = parse_bvh_file(chain(1000), "deep.bvh")
    assert len(bvh.names) == 1000 and bvh.parents[-1] == 998
    assert np.allclose(forward_kinematics(bvh, [999])[0, 999], [0, 1000, 0])  # 1000 offsets of 1 up
    started = time.perf_counter()
    with pytest.raises(MotionError, match=r"deep.bvh: line 4002: joint 'J1000' is nested more than 1000"):
        parse_bvh_file(chain(50_000), "deep.bvh")
    assert time.perf_counter() - started < 5  # bench_files holds the 1 s target; this catches a quadratic parse


def test_latin1_joint_names_are_kept(shared_data, tmp_path):
    data = (shared_data / "cmu" / "09_02.bvh").read_bytes().replace(b"LeftUpLeg", b"LinkesOberschenkel\xfc")
    path = tmp_path / "latin.bvh"
    path.write_bytes(data)
    assert "LinkesOberschenkel\u00fc" in read_bvh_file(path).names
