"""python -m engine generate / describe / predict / inbetween / batch on a tiny model folder."""
import subprocess
import sys

import numpy as np
import pytest

from engine.__main__ import main
from engine.formats.bvh import read_bvh
from tests.engine.tiny_models import serve, tiny_model_folder


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory, shared_data):
    return tiny_model_folder(tmp_path_factory.mktemp("model"), shared_data)


@pytest.fixture(scope="module")
def clip_files(tmp_path_factory, shared_data):
    folder = tmp_path_factory.mktemp("clips")
    clip = serve(shared_data)
    np.save(folder / "before.npy", clip.joints[:50])
    np.save(folder / "after.npy", clip.joints[120:])
    return folder, clip


def test_generate_writes_bvh_and_npy(model_dir, tmp_path, capsys):
    out = tmp_path / "x.bvh"
    assert main(["generate", "a person jumps", "--model", str(model_dir), "--seconds", "4", "--seed", "0",
                 "--out", str(out)]) == 0
    motion = read_bvh(out)
    assert motion.resample(20).num_frames == 80
    assert main(["generate", "a person jumps", "--model", str(model_dir), "--seconds", "4", "--seed", "0",
                 "--out", str(tmp_path / "x.npy")]) == 0
    joints = np.load(tmp_path / "x.npy")
    assert joints.shape == (80, 22, 3)
    np.testing.assert_allclose(motion.resample(20).joints, joints, atol=2e-3)   # BVH keeps cm to rounding
    assert "wrote" in capsys.readouterr().out


def test_describe_predict_inbetween(model_dir, clip_files, tmp_path, capsys):
    folder, clip = clip_files
    assert main(["describe", str(folder / "before.npy"), "--model", str(model_dir)]) == 0
    caption = capsys.readouterr().out.strip()
    assert caption and "motion_id" not in caption
    assert main(["predict", str(folder / "before.npy"), "--seconds", "2", "--seed", "1", "--model", str(model_dir),
                 "--out", str(tmp_path / "p.npy")]) == 0
    predicted = np.load(tmp_path / "p.npy")
    assert predicted.shape == (90, 22, 3)
    np.testing.assert_array_equal(predicted[:50], clip.joints[:50])
    assert main(["inbetween", str(folder / "before.npy"), str(folder / "after.npy"), "--frames", "30",
                 "--text", "a person spins", "--model", str(model_dir), "--out", str(tmp_path / "g.npy")]) == 0
    assert np.load(tmp_path / "g.npy").shape == (30, 22, 3)
    assert main(["inbetween", str(folder / "before.npy"), str(folder / "after.npy"), "--frames", "3", "--full",
                 "--model", str(model_dir), "--out", str(tmp_path / "full.npy")]) == 0
    full = np.load(tmp_path / "full.npy")
    assert full.shape == (50 + 3 + 50, 22, 3)
    np.testing.assert_array_equal(full[-50:], clip.joints[120:])


def test_batch_writes_every_line_with_a_progress_bar(model_dir, tmp_path, capsys):
    listing = tmp_path / "list.txt"
    listing.write_text("# animations\na person walks forward\n2.5\ta person jumps\n\nsomeone waves\n")
    assert main(["batch", str(listing), "--out-dir", str(tmp_path / "out"), "--seconds", "1", "--format", "npy",
                 "--batch-size", "2", "--seed", "3", "--model", str(model_dir)]) == 0
    shapes = [np.load(tmp_path / "out" / f"{i:04d}.npy").shape[0] for i in (1, 2, 3)]
    assert shapes == [20, 50, 20]
    assert (tmp_path / "out" / "captions.tsv").read_text().splitlines()[1] == "0002.npy\ta person jumps"
    err = capsys.readouterr().err.splitlines()
    assert err[0].endswith("0/3") and err[-1].startswith("[####") and err[-1].endswith("3/3")


def test_errors_are_one_line_and_exit_2(model_dir, tmp_path, capsys):
    cases = [
        (["generate", "", "--model", str(model_dir), "--out", str(tmp_path / "a.bvh")], "empty"),
        (["generate", "a person jumps", "--model", str(model_dir), "--seconds", "-1", "--out",
          str(tmp_path / "a.bvh")], "-1"),
        (["generate", "jump", "--model", str(model_dir), "--out", str(tmp_path / "a.txt")], "a.txt"),
        (["describe", str(tmp_path / "missing.bvh"), "--model", str(model_dir)], "missing.bvh"),
        (["inbetween", str(tmp_path / "x.npy"), str(tmp_path / "x.npy"), "--frames", "0", "--model",
          str(model_dir), "--out", str(tmp_path / "g.npy")], "frames"),
        (["generate", "jump", "--model", str(tmp_path / "nope"), "--out", str(tmp_path / "a.bvh")], "nope"),
    ]
    np.save(tmp_path / "x.npy", np.zeros((10, 22, 3), dtype=np.float32))
    for argv, fragment in cases:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert err.startswith("error: ") and fragment in err and "Traceback" not in err, (argv, err)


def test_runs_as_a_module(model_dir, tmp_path, repo_root):
    result = subprocess.run([sys.executable, "-m", "engine", "generate", "a person walks", "--model",
                             str(model_dir), "--seconds", "1", "--seed", "0", "--out", str(tmp_path / "m.npy")],
                            cwd=repo_root, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert np.load(tmp_path / "m.npy").shape == (20, 22, 3)
