"""Bone maps: the bundled presets, validation of user maps, and auto-detection by bone names."""
import json
import re

import pytest

from engine import MotionError
from engine.formats.bone_maps import (FILLABLE_JOINTS, REQUIRED_JOINTS, BoneMap, detect_bone_map, list_presets,
                              load_bone_map, presets_dir, save_bone_map)
from engine.motion import JOINT_NAMES

PRESETS = ["bandai", "cmu", "mixamo", "smpl", "smplx", "cc_base", "metarig", "rigify"]


def mixamo_bones(prefix=""):
    """A full Mixamo skeleton with fingers and end bones, as Mixamo's FBX names it."""
    names = ["Hips", "Spine", "Spine1", "Spine2", "Neck", "Head", "HeadTop_End", "LeftEye", "RightEye"]
    for side in ("Left", "Right"):
        names += [f"{side}Shoulder", f"{side}Arm", f"{side}ForeArm", f"{side}Hand",
                  f"{side}UpLeg", f"{side}Leg", f"{side}Foot", f"{side}ToeBase", f"{side}Toe_End"]
        for finger in ("Thumb", "Index", "Middle", "Ring", "Pinky"):
            names += [f"{side}Hand{finger}{i}" for i in range(1, 5)]
    return [prefix + n for n in names]


def cc_base_bones():
    """A Character Creator 4 body with twist, share, finger and face bones."""
    names = ["RL_BoneRoot", "CC_Base_BoneRoot", "CC_Base_Hip", "CC_Base_Pelvis", "CC_Base_Waist",
             "CC_Base_Spine01", "CC_Base_Spine02", "CC_Base_NeckTwist01", "CC_Base_NeckTwist02", "CC_Base_Head",
             "CC_Base_FacialBone", "CC_Base_JawRoot", "CC_Base_Tongue01", "CC_Base_L_Eye", "CC_Base_R_Eye"]
    for s in ("L", "R"):
        names += [f"CC_Base_{s}_{b}" for b in (
            "Thigh", "ThighTwist01", "ThighTwist02", "Calf", "CalfTwist01", "CalfTwist02", "KneeShareBone",
            "Foot", "ToeBase", "BigToe1", "Clavicle", "Upperarm", "UpperarmTwist01", "UpperarmTwist02",
            "Forearm", "ForearmTwist01", "ForearmTwist02", "ElbowShareBone", "Hand", "Breast", "RibsTwist",
            "Thumb1", "Thumb2", "Thumb3", "Index1", "Index2", "Index3", "Mid1", "Mid2", "Mid3",
            "Ring1", "Ring2", "Ring3", "Pinky1", "Pinky2", "Pinky3")]
    return names


def metarig_bones():
    """Blender's full human metarig: body, fingers, face (names from the Rigify metarig)."""
    names = ["spine"] + [f"spine.{i:03d}" for i in range(1, 7)] + [
        "face", "nose", "lip.T.L", "jaw", "chin", "teeth.T", "teeth.B", "tongue", "forehead.L", "eye.L", "eye.R"]
    for s in ("L", "R"):
        names += [f"{b}.{s}" for b in ("shoulder", "upper_arm", "forearm", "hand", "breast", "pelvis", "thigh",
                                        "shin", "foot", "toe", "heel.02", "palm.01", "palm.02", "thumb.01",
                                        "f_index.01", "f_index.02", "f_middle.01", "f_ring.01", "f_pinky.01")]
    return names


def rigify_bones():
    """A Rigify-generated rig: control, ORG-, MCH- and DEF- bones (twist segments included)."""
    names = ["root", "torso", "hips", "chest", "neck", "head", "spine_fk", "spine_fk.001", "tweak_spine",
             "ORG-spine", "ORG-spine.001", "MCH-spine", "MCH-spine.001", "DEF-spine"] + \
        [f"DEF-spine.{i:03d}" for i in range(1, 7)]
    for s in ("L", "R"):
        names += [f"{b}.{s}" for b in ("shoulder", "upper_arm_fk", "forearm_fk", "hand_fk", "hand_ik",
                                        "thigh_fk", "shin_fk", "foot_fk", "foot_ik", "toe_ik", "thigh_parent",
                                        "ORG-thigh", "ORG-shin", "MCH-thigh_ik", "MCH-shin_ik")]
        names += [f"DEF-{b}.{s}" for b in ("shoulder", "upper_arm", "upper_arm.001", "forearm", "forearm.001",
                                            "hand", "thigh", "thigh.001", "shin", "shin.001", "foot", "toe",
                                            "pelvis", "breast", "f_index.01", "thumb.01")]
    return names


def smplx_bones():
    """SMPL-X as the Meshcapade Blender add-on names its 55 joints (plus its root)."""
    body = list(JOINT_NAMES) + ["jaw", "left_eye_smplhf", "right_eye_smplhf"]
    fingers = [f"{s}_{f}{i}" for s in ("left", "right") for f in ("index", "middle", "pinky", "ring", "thumb")
               for i in (1, 2, 3)]
    return ["root"] + body + fingers


def smpl_bones(prefix="m_avg_"):
    names = ["Pelvis", "L_Hip", "R_Hip", "Spine1", "L_Knee", "R_Knee", "Spine2", "L_Ankle", "R_Ankle", "Spine3",
             "L_Foot", "R_Foot", "Neck", "L_Collar", "R_Collar", "Head", "L_Shoulder", "R_Shoulder", "L_Elbow",
             "R_Elbow", "L_Wrist", "R_Wrist", "L_Hand", "R_Hand"]
    return [prefix + "root"] + [prefix + n for n in names]


BANDAI_JOINTS = ["joint_Root", "Hips", "Spine", "Chest", "Neck", "Head", "Shoulder_L", "UpperArm_L", "LowerArm_L",
                 "Hand_L", "Shoulder_R", "UpperArm_R", "LowerArm_R", "Hand_R", "UpperLeg_L", "LowerLeg_L", "Foot_L",
                 "Toes_L", "UpperLeg_R", "LowerLeg_R", "Foot_R", "Toes_R"]
CMU_JOINTS = ["Hips", "LHipJoint", "LeftUpLeg", "LeftLeg", "LeftFoot", "LeftToeBase", "RHipJoint", "RightUpLeg",
              "RightLeg", "RightFoot", "RightToeBase", "LowerBack", "Spine", "Spine1", "Neck", "Neck1", "Head",
              "LeftShoulder", "LeftArm", "LeftForeArm", "LeftHand", "LeftFingerBase", "LeftHandIndex1", "LThumb",
              "RightShoulder", "RightArm", "RightForeArm", "RightHand", "RightFingerBase", "RightHandIndex1", "RThumb"]


def test_every_preset_loads_and_maps_all_required_joints():
    assert list_presets() == PRESETS
    for preset in PRESETS:
        bone_map = load_bone_map(preset)
        assert set(REQUIRED_JOINTS) <= set(bone_map.joints) <= set(JOINT_NAMES), preset
        assert bone_map.name and bone_map.description and bone_map.source == preset
        raw = json.loads((presets_dir() / f"{preset}.json").read_text())
        assert set(raw) <= {"name", "description", "prefixes", "joints", "bvh"}
    assert load_bone_map("cmu").bvh == {"scale_to_metres": 0.056444, "first_frame_is_tpose": True}
    assert load_bone_map("bandai").bvh["scale_to_metres"] == 0.01
    assert "deform" in load_bone_map("rigify").description.lower()


@pytest.mark.parametrize("bones, preset, pelvis, left_hip", [
    (mixamo_bones("mixamorig:"), "mixamo", "mixamorig:Hips", "mixamorig:LeftUpLeg"),
    (mixamo_bones(""), "mixamo", "Hips", "LeftUpLeg"),
    (mixamo_bones("mixamorig_"), "mixamo", "mixamorig_Hips", "mixamorig_LeftUpLeg"),  # Blender-renamed
    (mixamo_bones("mixamorig7:"), "mixamo", "mixamorig7:Hips", "mixamorig7:LeftUpLeg"),  # other namespace
    (cc_base_bones(), "cc_base", "CC_Base_Hip", "CC_Base_L_Thigh"),
    (metarig_bones(), "metarig", "spine", "thigh.L"),
    (rigify_bones(), "rigify", "DEF-spine", "DEF-thigh.L"),
    (smplx_bones(), "smplx", "pelvis", "left_hip"),
    (smpl_bones("m_avg_"), "smpl", "m_avg_Pelvis", "m_avg_L_Hip"),
    (smpl_bones(""), "smpl", "Pelvis", "L_Hip"),
    (BANDAI_JOINTS, "bandai", "Hips", "UpperLeg_L"),
    (CMU_JOINTS, "cmu", "Hips", "LeftUpLeg"),
])
def test_detection_picks_the_family_and_resolves_body_bones(bones, preset, pelvis, left_hip):
    bone_map = detect_bone_map(bones)
    assert bone_map.source == preset
    resolved = bone_map.resolve(bones)
    assert resolved["pelvis"] == pelvis and resolved["left_hip"] == left_hip
    assert set(REQUIRED_JOINTS) <= set(resolved)
    assert set(resolved.values()) <= set(bones)
    assert len(set(resolved.values())) == len(resolved)  # no bone plays two joints


def test_rigify_resolves_deform_chain_not_controls():
    resolved = detect_bone_map(rigify_bones()).resolve(rigify_bones())
    assert all(bone.startswith("DEF-") for bone in resolved.values())
    assert resolved["left_knee"] == "DEF-shin.L" and resolved["left_collar"] == "DEF-shoulder.L"
    assert resolved["head"] == "DEF-spine.006" and resolved["neck"] == "DEF-spine.004"


def test_case_and_separator_tolerance():
    shouty = [b.upper().replace(".", "_") for b in metarig_bones()]  # SPINE_001, THIGH_L ...
    bone_map = detect_bone_map(shouty)
    assert bone_map.source == "metarig"
    assert bone_map.resolve(shouty)["spine2"] == "SPINE_002"


def test_rig_without_fillable_joints_still_maps():
    bones = [b for b in mixamo_bones("mixamorig:") if not b.endswith(("Spine2", "LeftShoulder", "RightShoulder"))]
    bone_map = detect_bone_map(bones)
    assert bone_map.source == "mixamo"
    resolved = bone_map.resolve(bones)
    assert {"spine3", "left_collar", "right_collar"}.isdisjoint(resolved)
    assert set(FILLABLE_JOINTS) >= set(JOINT_NAMES) - set(resolved)


def test_missing_required_joint_is_listed_exactly():
    bones = [b for b in mixamo_bones() if b not in ("LeftForeArm", "RightToeBase")]
    with pytest.raises(MotionError) as error:
        detect_bone_map(bones)
    message = str(error.value)
    assert "'mixamo'" in message
    listed = re.search(r"could not map these SMPL joints: ([a-z_, 0-9]+)", message).group(1)
    assert listed.split(", ") == ["right_foot", "left_elbow"]  # SMPL order
    with pytest.raises(MotionError, match=r"left_elbow \('LeftForeArm'\)"):
        load_bone_map("mixamo").resolve(bones)


def test_unknown_rig_names_the_unmapped_joints():
    # Unreal Engine mannequin names: no preset covers them.
    bones = ["root", "pelvis", "spine_01", "spine_02", "spine_03", "neck_01", "head"] + [
        f"{b}_{s}" for s in ("l", "r") for b in ("clavicle", "upperarm", "lowerarm", "hand", "thigh", "calf",
                                                 "foot", "ball")]
    with pytest.raises(MotionError) as error:
        detect_bone_map(bones)
    message = str(error.value)
    closest = re.search(r"The closest, '(\w+)'", message).group(1)
    listed = re.search(r"could not map these SMPL joints: ([a-z_, 0-9]+)", message).group(1).split(", ")
    found, missing, _ = load_bone_map(closest).match(bones)
    assert listed == [j for j in missing if j in REQUIRED_JOINTS] and listed
    assert "left_knee" in listed and "pelvis" not in set(listed) - set(missing)


def write_json(path, data):
    path.write_text(json.dumps(data))
    return path


def test_user_map_validation_names_the_file(tmp_path):
    good = load_bone_map("mixamo").to_dict()
    cases = {
        "unknown_joint.json": ({**good, "joints": {**good["joints"], "left_tail": "Tail"}}, "left_tail"),
        "bone_not_string.json": ({**good, "joints": {**good["joints"], "pelvis": 3}}, "pelvis"),
        "joints_list.json": ({**good, "joints": ["Hips"]}, "'joints' must be an object"),
        "missing_required.json": ({**good, "joints": {k: v for k, v in good["joints"].items() if k != "head"}},
                                  "required SMPL joints not mapped: head"),
        "bad_prefixes.json": ({**good, "prefixes": "mixamorig:"}, "'prefixes' must be a list"),
        "unknown_key.json": ({**good, "joint_map": {}}, "unknown keys ['joint_map']"),
        "bad_scale.json": ({**good, "bvh": {"scale_to_metres": -1}}, "bvh.scale_to_metres"),
        "bad_hint.json": ({**good, "bvh": {"fps": 30}}, "unknown 'bvh' hint 'fps'"),
        "not_object.json": ([1, 2], "must be a JSON object"),
    }
    for file_name, (data, problem) in cases.items():
        path = write_json(tmp_path / file_name, data)
        with pytest.raises(MotionError) as error:
            load_bone_map(path)
        assert file_name in str(error.value) and problem in str(error.value), str(error.value)
    broken = tmp_path / "broken.json"
    broken.write_text('{"joints": ')
    with pytest.raises(MotionError, match="broken.json.*not valid JSON"):
        load_bone_map(broken)
    with pytest.raises(MotionError, match="nothere.json does not exist"):
        load_bone_map(tmp_path / "nothere.json")
    with pytest.raises(MotionError, match="unknown bone map preset 'maximo'.*mixamo"):
        load_bone_map("maximo")


def test_save_and_load_round_trip(tmp_path):
    bone_map = BoneMap.from_dict({"name": "My rig", "prefixes": ["rig:"],
                                  "joints": {**load_bone_map("metarig").joints, "head": "spine.005"},
                                  "bvh": {"scale_to_metres": 0.01}})
    path = tmp_path / "my_rig.json"
    save_bone_map(bone_map, path)
    again = load_bone_map(str(path))
    assert again.to_dict() == bone_map.to_dict()
    assert again.resolve(["rig:" + b for b in metarig_bones()])["head"] == "rig:spine.005"


def test_assets_folder_override(tmp_path, monkeypatch):
    (tmp_path / "bone_maps").mkdir()
    save_bone_map(load_bone_map("smplx"), tmp_path / "bone_maps" / "studio.json")
    monkeypatch.setenv("MOTIONGPT_ASSETS", str(tmp_path))
    assert list_presets() == ["studio"]
    assert detect_bone_map(smplx_bones()).source == "studio"


def test_hostile_map_files_name_the_file(tmp_path):
    good = load_bone_map("mixamo").to_dict()
    folder = tmp_path / "folder.json"
    folder.mkdir()
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 100_000 + "]" * 100_000)
    latin = tmp_path / "latin.json"
    latin.write_bytes(json.dumps({**good, "name": "H\u00fcfte"}, ensure_ascii=False).encode("latin-1"))
    big = tmp_path / "big.json"
    big.write_text(json.dumps({**good, "description": "x" * (2 << 20)}))
    cases = {
        folder: "is a folder",
        deep: "nested too deeply",
        latin: "not UTF-8",
        big: "at most",
        write_json(tmp_path / "one_bone.json", {**good, "joints": {joint: "Hips" for joint in good["joints"]}}):
            "joints pelvis, left_hip",
        write_json(tmp_path / "two_on_one.json", {**good, "joints": {**good["joints"], "head": "Neck"}}):
            "joints neck, head map to the same bone 'Neck'",
        write_json(tmp_path / "infinite_scale.json", {**good, "bvh": {"scale_to_metres": 1e308}}):
            "'bvh.scale_to_metres' has a wrong value 1e+308",
        write_json(tmp_path / "nan_scale.json", {**good, "bvh": {"scale_to_metres": float("nan")}}):
            "scale_to_metres",
        write_json(tmp_path / "tpose_text.json", {**good, "bvh": {"first_frame_is_tpose": "yes"}}):
            "expected true or false",
    }
    for path, problem in cases.items():
        with pytest.raises(MotionError) as error:
            load_bone_map(path)
        assert path.name in str(error.value) and problem in str(error.value), str(error.value)


def test_two_joints_that_resolve_to_one_rig_bone_are_refused():
    joints = {**load_bone_map("mixamo").joints, "right_hip": "left_up_leg"}   # loosely the same as LeftUpLeg
    bone_map = BoneMap.from_dict({"name": "loose", "prefixes": ["mixamorig:"], "joints": joints}, source="loose.json")
    with pytest.raises(MotionError, match=r"loose.json: in this rig joints left_hip, right_hip map to the same "
                                          r"bone 'mixamorig:LeftUpLeg'"):
        bone_map.resolve(mixamo_bones("mixamorig:"))


def test_save_bone_map_is_atomic(tmp_path):
    path = tmp_path / "mine.json"
    save_bone_map(load_bone_map("cmu"), path)
    before = path.read_bytes()
    with pytest.raises(MotionError, match="mine.json"):
        save_bone_map(load_bone_map("cmu"), path / "under_a_file.json")
    assert path.read_bytes() == before and load_bone_map(path).joints == load_bone_map("cmu").joints
