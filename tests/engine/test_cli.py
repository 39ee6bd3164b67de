"""python -m engine: the commands on real Bandai BVH files, and one-line errors for bad input."""
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from engine import Motion, MotionError
from engine import __main__ as cli

WALK = "bandai/dataset-1/data/dataset-1_walk_normal_001.bvh"  # 195 frames at 30 fps


def run_engine(repo_root: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "engine", *map(str, args)], cwd=repo_root,
                          capture_output=True, text=True, timeout=120)


def assert_one_line_error(result: subprocess.CompletedProcess, *words: str) -> None:
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for word in words:
        assert word in lines[0], f"{word!r} not in {lines[0]!r}"


def bvh_header(path: Path) -> tuple[int, float]:
    """(frames, frame time in seconds) read straight from the file's MOTION header."""
    text = path.read_text()
    frames = int(text.split("Frames:")[1].split()[0])
    frame_time = float(text.split("Frame Time:")[1].split()[0])
    return frames, frame_time


def test_features_of_a_real_bandai_walk(repo_root, shared_data, tmp_path):
    bvh = shared_data / WALK
    out = tmp_path / "walk.npy"
    result = run_engine(repo_root, "features", bvh, "--out", out)
    assert result.returncode == 0, result.stderr

    frames, frame_time = bvh_header(bvh)
    frames_at_20fps = math.floor((frames - 1) * frame_time * 20 + 1e-6) + 1  # same time span, 20 fps
    features = np.load(out)
    assert features.shape == (frames_at_20fps - 1, 263)
    assert features.dtype == np.float32
    assert np.isfinite(features).all()
    expected = Motion.from_bvh(bvh).resample(20).to_features()
    np.testing.assert_allclose(features, expected, atol=1e-5)
    # A forward walk: the root moves (ground-plane velocity), and foot contacts are 0/1 with both present.
    assert np.abs(features[:, 1:3]).sum(axis=1).mean() > 0.01
    assert set(np.unique(features[:, 259:263])) == {0.0, 1.0}


def test_info_reports_frames_fps_and_duration(repo_root, shared_data):
    bvh = shared_data / WALK
    frames, frame_time = bvh_header(bvh)
    result = run_engine(repo_root, "info", bvh)
    assert result.returncode == 0, result.stderr
    fields = dict(line.split(None, 1) for line in result.stdout.splitlines() if line.strip())
    assert int(fields["frames"]) == frames
    assert float(fields["fps"]) == pytest.approx(1 / frame_time, rel=1e-4)
    assert float(fields["duration"].split()[0]) == pytest.approx((frames - 1) * frame_time, abs=2e-3)
    assert "bone" in result.stdout


def test_missing_file_is_one_line_error(repo_root, tmp_path):
    missing = tmp_path / "no_such_clip.bvh"
    assert_one_line_error(run_engine(repo_root, "features", missing, "--out", tmp_path / "x.npy"), "no_such_clip.bvh")
    assert_one_line_error(run_engine(repo_root, "info", missing), "no_such_clip.bvh")


def test_malformed_bvh_is_one_line_error(repo_root, shared_data, tmp_path):
    text = (shared_data / WALK).read_text()
    cut_in_hierarchy = tmp_path / "cut.bvh"
    cut_in_hierarchy.write_text(text[: len(text) // 50])  # stops inside the joint hierarchy
    assert_one_line_error(run_engine(repo_root, "info", cut_in_hierarchy), "cut.bvh")

    header, motion = text.split("MOTION")
    lines = motion.strip().splitlines()
    lines[5] = lines[5].replace(" ", " banana ", 1)  # a word among the numbers of frame 3
    bad_number = tmp_path / "bad_number.bvh"
    bad_number.write_text(header + "MOTION\n" + "\n".join(lines) + "\n")
    assert_one_line_error(run_engine(repo_root, "features", bad_number, "--out", tmp_path / "x.npy"),
                          "bad_number.bvh")


def test_wrong_arguments_are_one_line_errors(repo_root, shared_data, tmp_path):
    bvh = shared_data / WALK
    assert_one_line_error(run_engine(repo_root, "features", bvh), "--out")
    assert_one_line_error(run_engine(repo_root, "features", bvh, "--out", tmp_path / "x.txt"), ".npy")
    assert_one_line_error(run_engine(repo_root, "no-such-command"), "no-such-command")
    assert_one_line_error(run_engine(repo_root), "COMMAND")


def test_demo_without_a_model_folder_is_one_line_error(repo_root, tmp_path):
    assert_one_line_error(run_engine(repo_root, "demo", "a person waves", "--model", tmp_path),
                          str(tmp_path), "model folder")


def test_a_registered_command_runs_and_its_errors_become_one_line(monkeypatch, capsys, tmp_path):
    """Other modules slot their commands in with register(); MotionError never shows a traceback."""
    def add_arguments(parser):
        parser.add_argument("seconds", type=float)

    def run(args):
        if args.seconds <= 0:
            raise MotionError(f"seconds must be positive, got {args.seconds}")
        print(f"would generate {args.seconds} s")
        return 0

    monkeypatch.setattr(cli, "COMMANDS", dict(cli.COMMANDS))  # registered for this test only
    cli.register("generate-test", run, add_arguments, help="test command")
    assert cli.main(["generate-test", "2.5"]) == 0
    assert "would generate 2.5 s" in capsys.readouterr().out
    assert cli.main(["generate-test", "-1"]) == 2
    assert capsys.readouterr().err == "error: seconds must be positive, got -1.0\n"
