"""python -m engine on bad input and failing writes: one line ``error: ...`` naming the file or value,
exit code 2, never a traceback; a failed write leaves the file that was there before intact.

Real files and real processes: a full disk is a child process under RLIMIT_FSIZE (writes past the
limit fail with EFBIG), a non-UTF-8 console is PYTHONIOENCODING=ascii, a non-UTF-8 argument is
a bytes argv. The fuzz tests mutate a real CMU BVH and a real .npy with a fixed seed.
"""
import json
import os
import random
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from engine import Motion, MotionError
from engine import __main__ as cli
from engine.formats.bvh import read_bvh

WALK = "cmu/09_02.bvh"  # the smallest CMU clip here (100 kB, 120 fps)
TIMEOUT = 120


def run_engine(repo_root: Path, *args, env: dict | None = None, file_size_limit: int | None = None,
               prefix: tuple = ("-m", "engine")) -> subprocess.CompletedProcess:
    """``python -m engine ARGS`` in a child process; ``file_size_limit``: RLIMIT_FSIZE in bytes (a full disk)."""
    def limit_file_size():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG instead
        resource.setrlimit(resource.RLIMIT_FSIZE, (file_size_limit, file_size_limit))
    arguments = [a if isinstance(a, bytes) else str(a) for a in args]
    return subprocess.run([sys.executable, *prefix, *arguments], cwd=repo_root, capture_output=True,
                          timeout=TIMEOUT, env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1", **(env or {})},
                          preexec_fn=limit_file_size if file_size_limit else None)


def assert_one_line_error(result, *words: str) -> str:
    """Exit 2, stderr one line 'error: ...' holding every word, no traceback; returns that line.

    Only ``batch`` writes more to stderr: its progress bar lines ('[###...] 2/3') before the error.
    """
    stderr = result.stderr.decode("utf-8", "backslashreplace") if isinstance(result.stderr, bytes) else result.stderr
    assert result.returncode == 2, stderr
    assert "Traceback" not in stderr, stderr
    lines = [line for line in stderr.strip().splitlines() if not line.startswith("[")]
    assert len(lines) == 1 and lines[0].startswith("error: "), stderr
    for word in words:
        assert word in lines[0], f"{word!r} not in {lines[0]!r}"
    return lines[0]


def in_process(capsys, *args) -> subprocess.CompletedProcess:
    """``engine.__main__.main(ARGS)`` in this process, as a CompletedProcess (faster than a child)."""
    code = cli.main([str(a) for a in args])
    captured = capsys.readouterr()
    return subprocess.CompletedProcess(args, code, captured.out, captured.err)


@pytest.fixture(scope="module")
def walk_text(shared_data) -> str:
    return (shared_data / WALK).read_text()


def with_motion_header(walk_text: str, **header: str) -> str:
    """The walk with 'Frames:' / 'Frame Time:' lines replaced (frames=..., frame_time=...)."""
    lines = walk_text.splitlines()
    for i, line in enumerate(lines):
        if line.startswith("Frame Time:") and "frame_time" in header:
            lines[i] = f"Frame Time: {header['frame_time']}"
        if line.startswith("Frames:") and "frames" in header:
            lines[i] = f"Frames: {header['frames']}"
    return "\n".join(lines) + "\n"


def with_value(walk_text: str, frame: int, column: int, token: str) -> tuple[str, int]:
    """The walk with one channel value replaced; returns (text, its 1-based line number)."""
    lines = walk_text.splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith("Frame Time:")) + 1 + frame
    values = lines[at].split()
    values[column] = token
    lines[at] = " ".join(values)
    return "\n".join(lines) + "\n", at + 1


# ----------------------------------------------------------------------------- bad .npy motion files

def npy_cases(folder: Path) -> dict[str, tuple[Path, str]]:
    """name -> (a bad .npy motion file, a word the error must hold)."""
    def save(name: str, array) -> Path:
        path = folder / name
        with open(path, "wb") as file:
            np.save(file, array, allow_pickle=True)
        return path
    empty = folder / "empty.npy"
    empty.write_bytes(b"")
    npz = folder / "archive.npy"
    with open(npz, "wb") as file:
        np.savez(file, joints=np.zeros((4, 22, 3)))
    huge = folder / "huge.npy"
    header = "{'descr': '<f4', 'fortran_order': False, 'shape': (10000000000000, 22, 3), }"
    huge.write_bytes(b"\x93NUMPY\x01\x00" + len(header.ljust(118) + "\n").to_bytes(2, "little")
                     + (header.ljust(118) + "\n").encode() + b"\0" * 64)
    folder_npy = folder / "folder.npy"
    folder_npy.mkdir()
    nan = np.zeros((5, 22, 3), dtype=np.float32)
    nan[2, 3, 1] = np.nan
    return {
        "empty": (empty, "empty"),
        "npz": (npz, "renamed"),
        "huge shape": (huge, "shape"),
        "strings": (save("strings.npy", np.full((4, 22, 3), "ab")), "<U2"),
        "structured": (save("structured.npy", np.zeros((4, 22, 3), dtype=[("x", "<f4"), ("y", "<i4")])), "float"),
        "pickle": (save("objects.npy", np.array([{"a": 1}], dtype=object)), "object"),
        "wrong shape": (save("shape.npy", np.zeros((4, 21, 3), dtype=np.float32)), "(4, 21, 3)"),
        "zero frames": (save("zero.npy", np.zeros((0, 22, 3), dtype=np.float32)), "zero frames"),
        "nan": (save("nan.npy", nan), "NaN"),
        "huge values": (save("far.npy", np.full((4, 22, 3), 1e30, dtype=np.float32)), "metres"),
        "folder": (folder_npy, "is a folder"),
    }


def test_bad_npy_motion_files_are_one_line_errors(repo_root, tiny_model, tmp_path, capsys):
    cases = npy_cases(tmp_path)
    for name, (path, word) in cases.items():
        result = in_process(capsys, "describe", path, "--model", tiny_model, "--device", "cpu")
        assert_one_line_error(result, path.name, word)
    # The same through a real process, for the two a tester saw as tracebacks.
    for name in ("empty", "strings"):
        path, word = cases[name]
        assert_one_line_error(run_engine(repo_root, "describe", path, "--model", tiny_model, "--device", "cpu"),
                              path.name, word)


# ----------------------------------------------------------------------------- bad BVH files and bone maps

def test_bad_bvh_values_name_the_file_line_and_channel(walk_text, tmp_path, capsys):
    tiny_time = tmp_path / "tiny_time.bvh"
    tiny_time.write_text(with_motion_header(walk_text, frame_time="5e-324"))
    huge_time = tmp_path / "huge_time.bvh"
    huge_time.write_text(with_motion_header(walk_text, frame_time="1e300"))
    frame_time_line = next(i for i, line in enumerate(walk_text.splitlines(), 1) if line.startswith("Frame Time:"))
    for path, value in ((tiny_time, "5e-324"), (huge_time, "1e300")):
        line = assert_one_line_error(in_process(capsys, "info", path), path.name, "Frame Time", value,
                                     f"line {frame_time_line}", "out of range")
        assert "got 0.0" not in line

    text, line_number = with_value(walk_text, frame=3, column=4, token="1e308")
    overflow = tmp_path / "overflow.bvh"
    overflow.write_text(text)
    line = assert_one_line_error(in_process(capsys, "info", overflow), "overflow.bvh", f"line {line_number}",
                                 "1e308", "Hips", "out of range")
    assert "joints contain NaN" not in line
    text, line_number = with_value(walk_text, frame=7, column=10, token="nan")
    nan = tmp_path / "nan.bvh"
    nan.write_text(text)
    assert_one_line_error(in_process(capsys, "features", nan, "--out", tmp_path / "x.npy"), "nan.bvh",
                          f"line {line_number}", "NaN")
    frames = tmp_path / "frames.bvh"
    frames.write_text(with_motion_header(walk_text, frames="99999999999999999999"))
    assert_one_line_error(in_process(capsys, "info", frames), "frames.bvh", "Frames", "truncated")
    assert not (tmp_path / "x.npy").exists()


def test_folders_where_files_belong(shared_data, tmp_path, capsys):
    walk = shared_data / WALK
    folder_bvh = tmp_path / "clip.bvh"
    folder_bvh.mkdir()
    assert_one_line_error(in_process(capsys, "info", folder_bvh), "clip.bvh", "is a folder")
    folder_map = tmp_path / "map.json"
    folder_map.mkdir()
    assert_one_line_error(in_process(capsys, "info", walk, "--bone-map", folder_map), "map.json", "is a folder")
    a_file = tmp_path / "afile"
    a_file.write_text("keep me")
    assert_one_line_error(in_process(capsys, "features", walk, "--out", a_file / "p.npy"),
                          str(a_file / "p.npy"), "is a file, not a folder")
    folder_npy = tmp_path / "out.npy"
    folder_npy.mkdir()
    assert_one_line_error(in_process(capsys, "features", walk, "--out", folder_npy), "out.npy", "is a folder")
    assert a_file.read_text() == "keep me"


def test_hostile_bone_maps(repo_root, shared_data, tmp_path, capsys):
    walk = shared_data / WALK
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 200_000 + "]" * 200_000)
    assert_one_line_error(run_engine(repo_root, "info", walk, "--bone-map", deep), "deep.json", "nested")
    cmu = json.loads((repo_root / "assets" / "bone_maps" / "cmu.json").read_text())
    one_bone = tmp_path / "one_bone.json"
    one_bone.write_text(json.dumps({**cmu, "joints": {joint: "Hips" for joint in cmu["joints"]}}))
    assert_one_line_error(in_process(capsys, "info", walk, "--bone-map", one_bone), "one_bone.json", "'Hips'",
                          "same bone")
    assert_one_line_error(in_process(capsys, "features", walk, "--bone-map", one_bone, "--out", tmp_path / "f.npy"),
                          "one_bone.json", "same bone")
    infinite = tmp_path / "infinite.json"
    infinite.write_text(json.dumps({**cmu, "bvh": {"scale_to_metres": 1e308}}))
    assert_one_line_error(in_process(capsys, "info", walk, "--bone-map", infinite), "infinite.json",
                          "scale_to_metres")
    latin = tmp_path / "latin.json"
    latin.write_bytes(json.dumps(cmu).replace("Hips", "H\u00fcfte").encode("latin-1"))
    assert_one_line_error(in_process(capsys, "info", walk, "--bone-map", latin), "latin.json", "UTF-8")


def test_a_50000_deep_hierarchy_is_refused_fast(tmp_path, capsys):
    depth = 50_000
    lines = ["HIERARCHY"]
    for i in range(depth):
        lines += [f"{'ROOT' if i == 0 else 'JOINT'} J{i}", "{", "OFFSET 0 1 0",
                  "CHANNELS 3 Zrotation Xrotation Yrotation"]
    lines += ["End Site", "{", "OFFSET 0 1 0", "}"] + ["}"] * depth
    lines += ["MOTION", "Frames: 1", "Frame Time: 0.0333333", " ".join(["0"] * 3 * depth)]
    deep = tmp_path / "deep.bvh"
    deep.write_text("\n".join(lines) + "\n")
    started = time.perf_counter()
    assert_one_line_error(in_process(capsys, "info", deep), "deep.bvh", "line 4002", "nested more than 1000")
    assert time.perf_counter() - started < 5  # the bench holds the 1 s target; this only catches a hang


# ----------------------------------------------------------------------------- arguments and the console

def test_caption_list_that_is_not_utf8(tiny_model, tmp_path, capsys):
    listing = tmp_path / "list.txt"
    listing.write_bytes(b"a person walks\n2\ta person \xe9 jumps\n")
    assert_one_line_error(in_process(capsys, "batch", listing, "--out-dir", tmp_path / "out", "--model", tiny_model,
                                     "--device", "cpu"), "list.txt:2", "UTF-8", "0xe9")
    listing.write_text("nan\ta person jumps\n")
    assert_one_line_error(in_process(capsys, "batch", listing, "--out-dir", tmp_path / "out", "--model", tiny_model,
                                     "--device", "cpu"), "list.txt:1", "'nan'", "seconds")
    a_file = tmp_path / "afile"
    a_file.write_text("x")
    listing.write_text("a person jumps\n")
    assert_one_line_error(in_process(capsys, "batch", listing, "--out-dir", a_file, "--model", tiny_model,
                                     "--device", "cpu"), "afile", "is a file")
    assert not (tmp_path / "out").exists()


def test_prompt_that_is_not_utf8(repo_root, tiny_model, tmp_path):
    out = tmp_path / "x.npy"
    result = run_engine(repo_root, "generate", b"a person \xff walks", "--model", tiny_model, "--device", "cpu",
                        "--out", out)
    assert_one_line_error(result, "UTF-8", "a person \\xff walks")
    result = run_engine(repo_root, "inbetween", tmp_path / "a.npy", tmp_path / "b.npy", "--frames", "4",
                        "--text", b"jump \xc3", "--model", tiny_model, "--out", out)
    assert_one_line_error(result, "--text", "jump \\xc3")
    assert not out.exists()


@pytest.mark.parametrize("console", [{"PYTHONIOENCODING": "ascii"},
                                     {"LANG": "C", "LC_ALL": "C", "PYTHONUTF8": "0", "PYTHONIOENCODING": ""}])
def test_non_ascii_output_on_an_ascii_console(repo_root, shared_data, tmp_path, console):
    walk = tmp_path / "t\u00e4nzer.bvh"
    walk.write_bytes((shared_data / WALK).read_bytes())
    out = tmp_path / "\u00f6ut" / "f\u00fc\u00dfe.npy"
    result = run_engine(repo_root, "features", walk, "--out", out, env=console)
    assert result.returncode == 0, result.stderr
    assert b"wrote " in result.stdout and np.load(out).shape[1] == 263
    result = run_engine(repo_root, "info", tmp_path / "gr\u00fc\u00df.bvh", env=console)
    assert_one_line_error(result, "does not exist", "gr")
    # A non-ASCII joint name printed by `info` (the file is Latin-1; the map names the bone).
    cmu = json.loads((repo_root / "assets" / "bone_maps" / "cmu.json").read_text())
    latin = tmp_path / "latin.bvh"
    latin.write_bytes((shared_data / WALK).read_bytes().replace(b"Hips", b"H\xfcfte"))
    bone_map = tmp_path / "latin.json"
    bone_map.write_text(json.dumps({**cmu, "prefixes": [""], "joints": {**cmu["joints"], "pelvis": "H\u00fcfte"}}))
    result = run_engine(repo_root, "info", latin, "--bone-map", bone_map, env=console)
    assert result.returncode == 0, result.stderr
    assert b"pelvis" in result.stdout and b"H\\xfcfte" in result.stdout


def test_caption_printed_on_an_ascii_console(repo_root, tiny_model, tmp_path):
    clip = tmp_path / "clip.npy"
    np.save(clip, read_bvh(repo_root.parent / "shared" / "data" / WALK).resample(20).joints[:40])
    result = run_engine(repo_root, "describe", clip, "--model", tiny_model, "--device", "cpu",
                        env={"PYTHONIOENCODING": "ascii"})
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() and not result.stderr.strip()


# ----------------------------------------------------------------------------- unexpected errors, --debug

FAILING_COMMAND = """
import sys
from engine import __main__ as cli
def run(args):
    return {}[args.key]          # a bug: KeyError
cli.register("boom", run, lambda parser: parser.add_argument("key"), help="fails")
sys.exit(cli.main(sys.argv[1:]))
"""


def test_unexpected_errors_are_one_line_and_debug_shows_the_traceback(repo_root):
    plain = run_engine(repo_root, "boom", "caf\u00e9", prefix=("-c", FAILING_COMMAND))
    assert_one_line_error(plain, "unexpected KeyError", "caf\u00e9", "--debug")
    for args in (("--debug", "boom", "x"), ("boom", "x", "--debug")):
        debug = run_engine(repo_root, *args, prefix=("-c", FAILING_COMMAND))
        assert debug.returncode == 2
        stderr = debug.stderr.decode()
        assert "Traceback" in stderr and "KeyError" in stderr, stderr
        assert stderr.strip().splitlines()[-1].startswith("error: unexpected KeyError")


# ----------------------------------------------------------------------------- failing writes (a full disk)

# Several commands in one child process (torch is imported once): main(argv) for each, exit codes on stdout.
MAINS = """
import json, sys
from engine.__main__ import main
print(json.dumps([main(argv) for argv in json.loads(sys.argv[1])]))
"""


def test_a_failing_write_leaves_the_old_output_intact(repo_root, shared_data, tiny_model, tmp_path):
    keep = [tmp_path / "keep.npy", tmp_path / "keep.bvh"]
    for path in keep:
        path.write_bytes(b"precious old content\n" * 10)
    commands = [["generate", "a person walks", "--seconds", "2", "--seed", "0", "--model", str(tiny_model),
                 "--device", "cpu", "--out", str(path)] for path in keep]
    result = run_engine(repo_root, json.dumps(commands), prefix=("-c", MAINS), file_size_limit=1000)
    assert json.loads(result.stdout.splitlines()[-1]) == [2, 2], result.stderr
    errors = result.stderr.decode().strip().splitlines()
    assert "Traceback" not in result.stderr.decode() and len(errors) == 2, errors
    for path, error in zip(keep, errors):
        assert error.startswith(f"error: cannot write") and str(path) in error, error
        assert path.read_bytes() == b"precious old content\n" * 10
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.bvh", "keep.npy"]  # no half-written file left
    features = tmp_path / "features.npy"
    features.write_bytes(b"old features")
    result = run_engine(repo_root, "features", shared_data / WALK, "--out", features, file_size_limit=4096)
    assert_one_line_error(result, "cannot write", str(features))
    assert features.read_bytes() == b"old features"


def test_batch_says_which_clip_failed_and_how_many_were_written(repo_root, tiny_model, tmp_path):
    listing = tmp_path / "list.txt"
    listing.write_text("1\ta person walks\n1\ta person waves\n4\ta person runs\n")  # clip 3 is 4x larger
    out = tmp_path / "out"
    out.mkdir()
    (out / "0003.npy").write_bytes(b"an older clip 3")
    (out / "captions.tsv").write_text("an older list\n")
    result = run_engine(repo_root, "batch", listing, "--out-dir", out, "--format", "npy", "--seed", "0",
                        "--model", tiny_model, "--device", "cpu", file_size_limit=8000)
    assert_one_line_error(result, "cannot write", str(out / "0003.npy"), "2 of 3 clips")
    assert np.load(out / "0001.npy").shape == (20, 22, 3) and np.load(out / "0002.npy").shape == (20, 22, 3)
    assert (out / "0003.npy").read_bytes() == b"an older clip 3"
    assert (out / "captions.tsv").read_text() == "an older list\n"
    assert sorted(p.name for p in out.iterdir()) == ["0001.npy", "0002.npy", "0003.npy", "captions.tsv"]


# ----------------------------------------------------------------------------- fuzzing the readers

def bvh_mutations(text: str, rng: random.Random, count: int) -> list[tuple[str, bytes]]:
    """(what was done, file bytes) for ``count`` random damages of a BVH text."""
    lines = text.splitlines()
    tokens = ["nan", "1e308", "-", "", "99999999999999999999999999", "inf", "-1e309", "0x1F", "{", "}",
              "MOTION", "JOINT", "1e-400", "5e-324", "-0", "Frames:"]
    mutations = []
    for _ in range(count):
        kind = rng.choice(["delete", "duplicate", "token", "token", "truncate", "latin1", "swap", "blank"])
        damaged = list(lines)
        at = rng.randrange(len(damaged))
        if kind == "delete":
            del damaged[at]
        elif kind == "duplicate":
            damaged.insert(at, damaged[at])
        elif kind == "swap":
            other = rng.randrange(len(damaged))
            damaged[at], damaged[other] = damaged[other], damaged[at]
        elif kind == "blank":
            damaged[at] = " \t "
        elif kind == "token":
            words = damaged[at].split() or [""]
            token = rng.choice(tokens)
            words[rng.randrange(len(words))] = token
            damaged[at] = " ".join(words)
            kind = f"token {token!r}"
        data = ("\n".join(damaged) + "\n").encode("latin-1")
        if kind == "truncate":
            data = data[:rng.randrange(len(data))]
        elif kind == "latin1":
            position = rng.randrange(len(data))
            data = data[:position] + bytes([rng.choice([0xE9, 0xFF, 0xA0, 0x85, 0x00])]) + data[position:]
        mutations.append((f"{kind} at line {at + 1}", data))
    return mutations


def short_walk(walk_text: str, frames: int = 12) -> str:
    """The walk's hierarchy and its first ``frames`` frames (fast to parse many times)."""
    lines = walk_text.splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith("Frame Time:"))
    lines[at - 1] = f"Frames: {frames}"
    return "\n".join(lines[:at + 1 + frames]) + "\n"


def test_fuzzed_bvh_files_fail_only_with_motion_errors(walk_text, tmp_path):
    rng = random.Random(21)
    outcomes = {"read": 0, "MotionError": 0}
    slowest = 0.0
    for number, (what, data) in enumerate(bvh_mutations(short_walk(walk_text), rng, 200)):
        path = tmp_path / f"fuzz_{number:03d}.bvh"
        path.write_bytes(data)
        started = time.perf_counter()
        try:
            motion = read_bvh(path)
        except MotionError as error:
            message = str(error)
            assert path.name in message and "\n" not in message, (what, message)
            outcomes["MotionError"] += 1
        except Exception as error:  # noqa: BLE001 - what the test is for
            pytest.fail(f"{what}: {type(error).__name__}: {error}")
        else:
            assert np.isfinite(motion.joints).all() and motion.fps > 0, what
            outcomes["read"] += 1
        slowest = max(slowest, time.perf_counter() - started)
        path.unlink()
    assert outcomes["MotionError"] >= 50 and outcomes["read"] >= 10, outcomes
    assert slowest < 2.0, slowest


def test_fuzzed_npy_files_fail_only_with_motion_errors(tmp_path):
    rng = random.Random(21)
    joints = np.random.default_rng(0).normal(size=(6, 22, 3)).astype(np.float32)
    path = tmp_path / "good.npy"
    np.save(path, joints)
    good = path.read_bytes()
    header_end = good.index(b"\n") + 1
    outcomes = {"read": 0, "MotionError": 0}
    for number in range(200):
        data = bytearray(good)
        kind = rng.choice(["truncate", "header byte", "body byte", "shape", "dtype", "garbage"])
        if kind == "truncate":
            data = data[:rng.randrange(len(data))]
        elif kind == "header byte":
            data[rng.randrange(header_end)] = rng.randrange(256)
        elif kind == "body byte":
            data[rng.randrange(header_end, len(data))] = rng.randrange(256)
        elif kind == "shape":
            shape = rng.choice(["(6, 22, 3)", "(99999999999, 22, 3)", "(-1, 22, 3)", "(6, 22)", "()", "(0, 22, 3)",
                                "(6, 22, 3, 1)", "(2**64, 22, 3)", "'x'"])
            data = bytearray(good.replace(b"(6, 22, 3)", shape.encode().ljust(10)[:max(10, len(shape))]))
        elif kind == "dtype":
            dtype = rng.choice(["'<U4'", "'|O'", "'<c8'", "[('a', '<f4')]", "'>f4'", "'<f8'", "'|b1'", "'<m8'"])
            data = bytearray(good.replace(b"'<f4'", dtype.encode()))
        else:
            data = bytearray(rng.randbytes(rng.randrange(1, 400)))
        path = tmp_path / f"fuzz_{number:03d}.npy"
        path.write_bytes(bytes(data))
        try:
            motion = cli.read_motion_file(path)
        except MotionError as error:
            assert path.name in str(error), (kind, str(error))
            outcomes["MotionError"] += 1
        except Exception as error:  # noqa: BLE001 - what the test is for
            pytest.fail(f"{kind}: {type(error).__name__}: {error}")
        else:
            assert isinstance(motion, Motion) and np.isfinite(motion.joints).all()
            outcomes["read"] += 1
    assert outcomes["MotionError"] >= 50 and outcomes["read"] >= 10, outcomes
