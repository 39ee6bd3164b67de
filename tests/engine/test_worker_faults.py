"""The engine worker process (``python -m engine.worker``) survives every bad line.

Real processes, real files, real torch (the tiny model fixture). Every bad request is followed by
a ``hello`` that must still be answered; bad requests are refused before the model is loaded, so
the last hello of a run reports ``"loaded": false``. One test loads the model, for the cases that
need a result file (the exchange folder deleted or replaced by a file, string ids, cancel).
"""
from __future__ import annotations

import json
import queue
import random
import shutil
import socket
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from engine.worker import MAX_LINE_BYTES, encode_reply

REPO = Path(__file__).resolve().parents[2]
TIMEOUT = 60


def worker_command(model: Path, exchange: Path) -> list[str]:
    return [sys.executable, "-m", "engine.worker", "--model", str(model), "--device", "cpu",
            "--exchange", str(exchange)]


def run_worker(model: Path, exchange: Path, lines: list[bytes]) -> tuple[int, list[dict], str]:
    """Send ``lines`` (each gets a newline) to a fresh worker; its exit code, replies and stderr.
    Every stdout line must be one JSON object."""
    done = subprocess.run(worker_command(model, exchange), input=b"".join(line + b"\n" for line in lines),
                          capture_output=True, cwd=REPO, timeout=TIMEOUT)
    replies = [json.loads(line) for line in done.stdout.decode("utf-8").splitlines()]
    assert all(isinstance(reply, dict) for reply in replies)
    return done.returncode, replies, done.stderr.decode("utf-8", errors="replace")


def line(message) -> bytes:
    return json.dumps(message).encode("utf-8")


def hello(number) -> bytes:
    return line({"id": f"hello-{number}", "task": "hello"})


@pytest.fixture(scope="module")
def inputs(tmp_path_factory, shared_data) -> dict[str, str]:
    """Motion files for requests, good and bad (kept out of the exchange folder)."""
    folder = tmp_path_factory.mktemp("inputs")
    clip = np.load(shared_data / "humanml3d" / "new_joints" / "012314.npy")[:40].astype(np.float32)
    files = {
        "clip": clip,
        "bad_shape": clip[:, :21],
        "flat": clip.reshape(40, -1),
        "zero_frames": clip[:0],
        "nan": np.where(np.arange(40)[:, None, None] == 7, np.nan, clip),
        "strings": np.array([["a"]]),
    }
    paths = {}
    for name, array in files.items():
        np.save(folder / f"{name}.npy", array)
        paths[name] = str(folder / f"{name}.npy")
    (folder / "empty.npy").write_bytes(b"")
    (folder / "text.npy").write_text("not a numpy file\n")
    np.savez(folder / "archive.npz", joints=clip)
    shutil.copy(folder / "archive.npz", folder / "renamed.npy")
    np.save(folder / "objects.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    (folder / "a_folder.npy").mkdir()
    for name in ("empty", "text", "renamed", "objects", "a_folder"):
        paths[name] = str(folder / f"{name}.npy")
    paths["missing"] = str(folder / "missing.npy")
    return paths


# ----------------------------------------------------------------------------- the listed cases

def reader_cases() -> list[tuple[bytes, object, str]]:
    """(line, id of its reply, text its error must contain): lines refused while reading."""
    deep_list = b"[" * 100_000 + b"]" * 100_000
    deep_object = b'{"a":' * 50_000 + b"1" + b"}" * 50_000
    return [
        (line({"task": "cancel", "ids": 5}), None, "ids must be a list of request ids, got 5"),
        (line({"task": "cancel", "ids": [[1]]}), None, "one of them is a list [1]"),
        (line({"task": "cancel", "ids": [None]}), None, "one of them is null"),
        (line({"task": "cancel", "ids": [True]}), None, "one of them is a boolean (true)"),
        (line({"task": "cancel", "ids": [1.5]}), None, "one of them is 1.5"),
        (line({"task": "cancel", "ids": {"a": 1}}), None, "got an object {'a': 1}"),
        (line({"task": "cancel", "ids": "7"}), None, "got the string '7'"),
        (line({"task": "cancel"}), None, "ids must be a list of request ids, got null"),
        (line({"id": "c1", "task": "cancel", "ids": 3}), "c1", "ids must be a list"),
        (deep_list, None, "nested too deeply"),
        (deep_object, None, "nested too deeply"),
        (b'\xff\xfe{"id": 3, "task": "hello"}', None, "not UTF-8 text (byte 0xff at position 0)"),
        (b'{"id": 4, "task": "hello", "text": "caf\xc3"}', None, "not UTF-8 text (byte 0xc3 at position 39)"),
        (b"\xef\xbb\xbf" + line({"id": 5, "task": "hello"}), None, "not JSON"),
        (b"this is not json", None, "not JSON"),
        (b'{"id": 6, "task": "hello"', None, "not JSON"),
        (b"[1, 2]", None, "expected a JSON object, got a list [1, 2]"),
        (b'"hello"', None, "expected a JSON object, got the string 'hello'"),
        (b"null", None, "expected a JSON object, got null"),
        (b'{"id": NaN, "task": "hello"}', None, "NaN is not valid JSON"),
        (b'{"id": 7, "task": "text_to_motion", "text": "a", "seconds": Infinity}', None,
         "Infinity is not valid JSON"),
        (b'{"id": ' + b"9" * 5000 + b', "task": "hello"}', None, "not JSON"),
        (b'{"id": 8, "task": "hello", "pad": "' + b"x" * MAX_LINE_BYTES + b'"}', None,
         f"longer than the limit of {MAX_LINE_BYTES} bytes"),
        (line({"id": [1], "task": "hello"}), None, "id must be an integer or a string"),
        (line({"id": True, "task": "hello"}), None, "got a boolean (true)"),
        (line({"id": 1.5, "task": "hello"}), None, "id must be an integer or a string of 1 to 64 letters"),
        (line({"id": {"a": 1}, "task": "hello"}), None, "got an object {'a': 1}"),
        (line({"id": "a/b", "task": "hello"}), None, "got the string 'a/b'"),
        (line({"id": "", "task": "hello"}), None, "got the string ''"),
        (line({"id": "x" * 65, "task": "hello"}), None, "got the string 'xxxx"),
        (line({"id": 2 ** 63, "task": "hello"}), None, f"got {2 ** 63}"),
    ]


def task_cases(paths: dict[str, str]) -> list[tuple[dict, str]]:
    """(request without id, text its error must contain): requests refused by their fields."""
    t2m = {"task": "text_to_motion", "text": "a person waves", "seconds": 2.0, "seed": 1}
    predict = {"task": "predict", "motion": paths["clip"], "fps": 20.0, "seconds": 1.0}
    inbetween = {"task": "inbetween", "before": paths["clip"], "after": paths["clip"], "fps": 20.0, "frames": 10}
    describe = {"task": "describe", "motion": paths["clip"], "fps": 20.0}

    def without(request, key):
        return {k: v for k, v in request.items() if k != key}

    seconds_rule = "seconds must be a positive number of seconds, at most 60"
    seed_rule = "seed must be an integer from 0 to 4294967295"
    frames_rule = "frames must be an integer from 1 to 1200"
    fps_rule = "fps must be a number from 1 to 1000"
    return [
        ({"task": "nonsense"}, "unknown task 'nonsense'; expected one of hello, load"),
        ({"task": ["hello"]}, "unknown task ['hello']"),
        ({"task": 5}, "unknown task 5"),
        ({}, "the request has no task"),
        ({**t2m, "text": None}, "text is missing (or null): expected a string"),
        (without(t2m, "text"), "text is missing"),
        ({**t2m, "text": 5}, "text must be a string: the words describing the motion, got 5"),
        ({**t2m, "text": ["a"]}, "text must be a string: the words describing the motion, got a list ['a']"),
        ({**t2m, "text": True}, "got a boolean (true)"),
        ({**t2m, "text": ""}, "text is empty"),
        ({**t2m, "text": " \t\n "}, "text is empty"),
        ({**t2m, "text": "a\x00b"}, "text contains the character U+0000 at position 1"),
        ({**t2m, "text": "wave\x1b[31m"}, "text contains the character U+001B at position 4"),
        ({**t2m, "text": "a\ud800b"}, "text contains the character U+D800 at position 1"),
        ({**t2m, "text": "x" * 10_001}, "text is 10001 characters long, more than the limit of 10000"),
        ({**t2m, "seconds": True}, f"{seconds_rule}, got a boolean (true)"),
        ({**t2m, "seconds": "3"}, f"{seconds_rule}, got the string '3'"),
        ({**t2m, "seconds": [3]}, f"{seconds_rule}, got a list [3]"),
        ({**t2m, "seconds": 0}, f"{seconds_rule}, got 0"),
        ({**t2m, "seconds": -1.0}, f"{seconds_rule}, got -1.0"),
        ({**t2m, "seconds": 60.5}, f"{seconds_rule}, got 60.5"),
        ({**t2m, "seconds": float("inf")}, f"{seconds_rule}, got inf"),        # sent as 1e999, see below
        ({**t2m, "seed": True}, f"{seed_rule}, got a boolean (true)"),
        ({**t2m, "seed": 1.0}, f"{seed_rule}, got 1.0"),
        ({**t2m, "seed": 1.5}, f"{seed_rule}, got 1.5"),
        ({**t2m, "seed": -1}, f"{seed_rule}, got -1"),
        ({**t2m, "seed": 2 ** 32}, f"{seed_rule}, got 4294967296"),
        ({**t2m, "seed": "7"}, f"{seed_rule}, got the string '7'"),
        (without(predict, "seconds"), "seconds is missing (or null): expected a positive number of seconds"),
        ({**predict, "seconds": None}, "seconds is missing (or null)"),
        ({**predict, "seconds": False}, f"{seconds_rule}, got a boolean (false)"),
        ({**predict, "seed": [1]}, f"{seed_rule}, got a list [1]"),
        (without(predict, "motion"), "motion is missing (or null): expected the path of a .npy file"),
        ({**predict, "motion": 5}, "motion must be the path of a .npy file, got 5"),
        ({**predict, "motion": ""}, "motion must be the path of a .npy file, got the empty string"),
        ({**predict, "motion": ["a.npy"]}, "motion must be the path of a .npy file, got a list ['a.npy']"),
        ({**predict, "motion": "a\x00.npy"}, "motion contains the character U+0000"),
        ({**predict, "motion": paths["missing"]}, f"motion file {paths['missing']}: cannot read it"),
        ({**predict, "motion": paths["a_folder"]}, f"motion file {paths['a_folder']}: is a folder"),
        ({**predict, "motion": paths["empty"]}, f"motion file {paths['empty']}: the file is empty"),
        ({**predict, "motion": paths["text"]}, f"motion file {paths['text']}: not a .npy file"),
        ({**predict, "motion": paths["renamed"]}, f"motion file {paths['renamed']}: not a .npy file"),
        ({**predict, "motion": paths["objects"]}, f"motion file {paths['objects']}: holds object values"),
        ({**predict, "motion": paths["strings"]}, f"motion file {paths['strings']}: holds <U1 values"),
        ({**predict, "motion": paths["bad_shape"]},
         f"motion file {paths['bad_shape']}: holds an array of shape (40, 21, 3); expected joints (T, 22, 3)"),
        ({**predict, "motion": paths["flat"]}, f"motion file {paths['flat']}: holds an array of shape (40, 66)"),
        ({**predict, "motion": paths["zero_frames"]},
         f"motion file {paths['zero_frames']}: holds an array of shape (0, 22, 3); expected joints (T, 22, 3) "
         "with T >= 1"),
        ({**predict, "motion": paths["nan"]},
         f"motion file {paths['nan']}: joints contain NaN or infinite values (first at frame 7)"),
        ({**predict, "fps": "abc"}, f"{fps_rule}, got the string 'abc'"),
        ({**predict, "fps": 0}, f"{fps_rule}, got 0"),
        ({**predict, "fps": -20.0}, f"{fps_rule}, got -20.0"),
        ({**predict, "fps": 1e9}, f"{fps_rule}, got 1000000000.0"),
        ({**predict, "fps": True}, f"{fps_rule}, got a boolean (true)"),
        ({**predict, "fps": -float("inf")}, f"{fps_rule}, got -inf"),
        ({**describe, "motion": None}, "motion is missing (or null)"),
        ({**describe, "motion": paths["bad_shape"]}, "holds an array of shape (40, 21, 3)"),
        ({**inbetween, "frames": 20.9}, f"{frames_rule}, got 20.9"),
        ({**inbetween, "frames": 20.0}, f"{frames_rule}, got 20.0"),
        ({**inbetween, "frames": True}, f"{frames_rule}, got a boolean (true)"),
        ({**inbetween, "frames": 0}, f"{frames_rule}, got 0"),
        ({**inbetween, "frames": 1201}, f"{frames_rule}, got 1201"),
        ({**inbetween, "frames": "20"}, f"{frames_rule}, got the string '20'"),
        (without(inbetween, "frames"), "frames is missing (or null): expected an integer from 1 to 1200"),
        ({**inbetween, "text": 5}, "text must be a string: the words describing the motion, got 5"),
        ({**inbetween, "text": "jump\x07"}, "text contains the character U+0007 at position 4"),
        ({**inbetween, "before": paths["empty"]}, f"before motion file {paths['empty']}: the file is empty"),
        (without(inbetween, "after"), "after is missing (or null): expected the path of a .npy file"),
    ]


def test_every_bad_line_is_an_input_reply_and_the_worker_reads_on(tiny_model, tmp_path, inputs):
    """Each bad line of the issue (cancel with a bad ids, deep nesting, invalid UTF-8, ids of
    every JSON type, wrongly typed or out-of-range fields, bad motion files) gets one "input"
    reply naming the field or file and the value, and the hello after it is answered."""
    reading, tasks = reader_cases(), task_cases(inputs)
    lines = [b"", b"   \t "]                                           # blank lines: no reply
    for number, (bad, _, _) in enumerate(reading):
        lines += [bad, hello(f"r{number}")]
    for number, (request, _) in enumerate(tasks):
        literal = line({"id": number, **request}).replace(b"Infinity", b"1e999")    # JSON without Infinity
        lines += [literal, hello(f"t{number}")]
    lines += [line({"task": "shutdown"}), hello("after-shutdown")]
    code, replies, stderr = run_worker(tiny_model, tmp_path, lines)

    assert code == 0, stderr
    assert "Traceback" not in stderr, stderr
    hellos = {r["id"]: r for r in replies if isinstance(r["id"], str) and r["id"].startswith("hello-")}
    expected = {f"hello-r{n}" for n in range(len(reading))} | {f"hello-t{n}" for n in range(len(tasks))}
    assert set(hellos) == expected                                     # none after shutdown
    assert all(r["ok"] and r["loaded"] is False for r in hellos.values())     # no bad request loaded the model
    refused = [r for r in replies if r["id"] not in hellos]
    assert len(refused) == len(reading) + len(tasks)                    # one reply per bad line, none for blanks
    assert all(r["ok"] is False and r["kind"] == "input" for r in refused), refused

    unmatched = list(refused)
    for bad, request_id, text in reading:
        match = next((r for r in unmatched if r["id"] == request_id and "bad request line: " in r["error"]
                      and text in r["error"]), None)
        assert match is not None, (bad[:80], request_id, text, unmatched)
        unmatched.remove(match)
    by_id = {r["id"]: r for r in unmatched}
    for number, (request, text) in enumerate(tasks):
        assert number in by_id, (request, text)
        assert text in by_id.pop(number)["error"], (request, text)
    assert not by_id


def test_errors_quote_values_shortened(tiny_model, tmp_path):
    """A long or deeply nested value is quoted shortened (at most 80 characters of repr)."""
    nested = [[[[[[[[[[["deep"]]]]]]]]]]]
    for _ in range(60):
        nested = [nested]
    lines = [line({"id": 1, "task": "text_to_motion", "text": ["word " * 1000]}),
             line({"id": 2, "task": "text_to_motion", "text": nested}),
             line({"id": 3, "task": "x" * 5000}), hello(0)]
    code, replies, stderr = run_worker(tiny_model, tmp_path, lines)
    assert code == 0 and "Traceback" not in stderr, stderr
    final = {r["id"]: r for r in replies}
    assert final[1]["kind"] == "input" and "text must be a string" in final[1]["error"]
    assert final[2]["kind"] == "input" and "got a list [[[[[[" in final[2]["error"]
    assert final[3]["error"].startswith("unknown task 'xxxx")
    for number in (1, 2, 3):
        assert len(final[number]["error"]) < 250, final[number]["error"]
        assert final[number]["error"].count("...") == 1
    assert final["hello-0"]["ok"]


def test_closing_stdin_without_shutdown_exits_0(tiny_model, tmp_path):
    """End of input (here after a cut line) is a shutdown: the cut line is refused, exit 0."""
    code, replies, stderr = run_worker(tiny_model, tmp_path, [hello(1), b'{"id": 2, "task": "hel'])
    assert code == 0, stderr
    assert len(replies) == 2, replies
    answered = next(r for r in replies if r["ok"])
    assert answered["id"] == "hello-1" and answered["loaded"] is False
    assert next(r for r in replies if not r["ok"]) == {
        "id": None, "ok": False, "kind": "input",
        "error": "bad request line: not JSON: Unterminated string starting at: line 1 column 19 (char 18)"}


# ----------------------------------------------------------------------------- fuzz

FIELDS = ("id", "task", "text", "seconds", "frames", "seed", "fps", "motion", "before", "after", "ids", "extra")
RANDOM_TASKS = ("hello", "nonsense", "", "HELLO", "describe", "predict", "inbetween", 7, None, [], {})


def random_string(rng: random.Random) -> str:
    alphabet = "abcXYZ09 _.\t\n\x00\x1f\u00e9\u4e2d\U0001f600\ud800\"\\/"
    return "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 12)))


def random_value(rng: random.Random, depth: int = 0):
    """Any JSON value (plus NaN / Infinity, which Python's json writes)."""
    kind = rng.randrange(9 if depth == 0 else 8 if depth < 4 else 6)
    if kind == 0:
        return None
    if kind == 1:
        return rng.choice([True, False])
    if kind == 2:
        return rng.choice([0, 1, -1, 7, 20, 1200, 1201, 2 ** 32, 2 ** 63, -2 ** 70, rng.randint(-10 ** 6, 10 ** 6)])
    if kind == 3:
        return rng.choice([0.0, -0.0, 0.5, 20.9, 1e-300, 1e300, float("nan"), float("inf"), rng.uniform(-100, 100)])
    if kind in (4, 5):
        return random_string(rng)
    if kind == 6:
        return [random_value(rng, depth + 1) for _ in range(rng.randint(0, 4))]
    if kind == 7:
        return {rng.choice(FIELDS): random_value(rng, depth + 1) for _ in range(rng.randint(0, 4))}
    nested = random_value(rng, depth + 1)
    for _ in range(rng.randint(10, 400)):          # json.dumps itself stops near 1000 levels
        nested = [nested]
    return nested


def random_request(rng: random.Random) -> dict:
    """A JSON object of random fields; never a valid cancel, load, shutdown or text_to_motion
    (those could load the model or get no reply); a motion task's paths never exist."""
    request = {rng.choice(FIELDS): random_value(rng) for _ in range(rng.randint(0, 6))}
    request.pop("ids", None)
    if rng.random() < 0.8:
        request["task"] = rng.choice(RANDOM_TASKS)
    if isinstance(request.get("id"), str) and request["id"].startswith("hello-"):
        request["id"] = 0
    return request


def bad_values(field: str, paths: dict[str, str]) -> list:
    """Values that make ``field`` of a template request wrong (never valid, never null for an
    optional field, never a shutdown or a cancel)."""
    common = [True, False, [1], {"a": 1}, [[]]]
    if field == "id":
        return common + [1.5, "a/b", "", "x" * 65, 2 ** 63, -2 ** 64, float("nan")]
    if field == "task":
        return [5, [], "", "Describe", "text-to-motion", None, 1.0]
    if field == "text":
        return common + [5, "a\x00", "\ud800", "x" * 10_001, "a\x1b"]
    if field in ("seconds", "fps"):
        return common + ["1", 0, -1, -0.5, 1e6, float("nan"), float("inf"), -float("inf")]
    if field in ("frames", "seed"):
        return common + ["1", -1, 20.9, 2.0, 2 ** 40, float("nan")]
    if field in ("motion", "before", "after"):
        return common + [5, "", "\x00", paths["missing"], paths["empty"], paths["a_folder"], paths["text"],
                         paths["bad_shape"], paths["zero_frames"], paths["nan"], paths["objects"]]
    if field == "ids":
        return [None, 5, "1", {"a": 1}, [None], [[1]], [True], [1.5], ["a/b"]]
    raise AssertionError(field)


def templates(paths: dict[str, str]) -> list[dict]:
    clip = paths["clip"]
    return [
        {"id": 1, "task": "text_to_motion", "text": "a person waves", "seconds": 2.0, "seed": 1},
        {"id": "job_2", "task": "describe", "motion": clip, "fps": 20.0},
        {"id": 3, "task": "predict", "motion": clip, "fps": 20.0, "seconds": 1.0, "seed": 0},
        {"id": 4, "task": "inbetween", "before": clip, "after": clip, "fps": 30.0, "frames": 10, "text": "jumps",
         "seed": 2},
        {"task": "cancel", "ids": [1, "job_2"]},
    ]


def mutated_request(rng: random.Random, paths: dict[str, str]) -> bytes:
    """A valid request with one field made wrong (or, for a required one, left out)."""
    request = dict(rng.choice(templates(paths)))
    if request["task"] == "cancel":
        field = "ids"
    else:
        field = rng.choice([key for key in request if key != "id" or rng.random() < 0.3])
    required = field in ("task", "motion", "before", "after", "frames", "ids") or (
        field == "text" and request["task"] == "text_to_motion") or (
        field == "seconds" and request["task"] == "predict")
    if required and rng.random() < 0.2:
        del request[field]
    else:
        request[field] = rng.choice(bad_values(field, paths))
    return line(request)


def deep_line(rng: random.Random) -> bytes:
    depth = rng.choice([1_000, 3_000, 30_000, 300_000])
    opener, closer = rng.choice([(b"[", b"]"), (b'{"a":', b"}")])
    inner = b"1" if opener != b"[" else b""
    closed = rng.random() < 0.5
    return b'{"id": 1, "task": "hello", "x": ' + opener * depth + inner + (closer * depth + b"}" if closed else b"")


def invalid_utf8_line(rng: random.Random, paths: dict[str, str]) -> bytes:
    """A request with bytes that are never UTF-8 (0xc0, 0xc1, 0xf5-0xff) inserted, or cut inside a character."""
    raw = line({"id": 9, "task": "text_to_motion", "text": "caf\u00e9 \u4e2d"}).replace(b"\\u00e9", "\u00e9".encode()) \
        .replace(b"\\u4e2d", "\u4e2d".encode())
    if rng.random() < 0.2:
        cut = raw.index("\u4e2d".encode()) + rng.randint(1, 2)
        return raw[:cut]
    for _ in range(rng.randint(1, 3)):
        position = rng.randint(0, len(raw))
        raw = raw[:position] + bytes([rng.choice([0xc0, 0xc1] + list(range(0xf5, 0x100)))]) + raw[position:]
    return raw


def garbage_line(rng: random.Random) -> bytes:
    """Printable ASCII that is never blank and never a JSON object."""
    alphabet = 'abc{}[]":,0123456789 -.eEtrufalsn\\'
    text = rng.choice('abc}]":,0123456789-.tfn') + "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 60)))
    return text.encode()


def fuzz_lines(count: int, paths: dict[str, str], seed: int = 21) -> tuple[list[bytes], dict[str, int]]:
    rng = random.Random(seed)
    makers = {
        "random JSON value": lambda: line(random_value(rng)),
        "random JSON object": lambda: line(random_request(rng)),
        "mutated request": lambda: mutated_request(rng, paths),
        "truncated request": lambda: (lambda raw: raw[:rng.randint(1, len(raw) - 1)])(
            line(rng.choice(templates(paths)))),
        "deep nesting": lambda: deep_line(rng),
        "invalid UTF-8": lambda: invalid_utf8_line(rng, paths),
        "garbage": lambda: garbage_line(rng),
    }
    weights = {"random JSON value": 3, "random JSON object": 4, "mutated request": 6, "truncated request": 2,
               "deep nesting": 1, "invalid UTF-8": 2, "garbage": 2}
    names = list(makers)
    lines, kinds = [], {name: 0 for name in names}
    while len(lines) < count:
        name = rng.choices(names, [weights[n] for n in names])[0]
        raw = makers[name]()
        if not raw.strip() or b"\n" in raw or b"\r" in raw:
            continue                       # keep one line per case (json.dumps escapes newlines anyway)
        lines.append(raw)
        kinds[name] += 1
    return lines, kinds


def test_fuzz_300_lines_one_process(tiny_model, tmp_path, inputs):
    """300 generated bad lines (fixed seed), each followed by a hello, to one process: every
    reply is JSON, each bad line gets exactly one reply ("input", or a random hello answered),
    every hello is answered, no traceback, exit 0 on shutdown."""
    bad, kinds = fuzz_lines(300, inputs)
    lines = []
    for number, raw in enumerate(bad):
        lines += [raw, hello(number)]
    lines += [hello("last"), line({"task": "shutdown"})]
    started = time.monotonic()
    code, replies, stderr = run_worker(tiny_model, tmp_path, lines)
    elapsed = time.monotonic() - started

    assert code == 0, stderr[-3000:]
    assert "Traceback" not in stderr, stderr[-3000:]
    hellos = [r for r in replies if isinstance(r["id"], str) and r["id"].startswith("hello-")]
    assert sorted(r["id"] for r in hellos) == sorted([f"hello-{n}" for n in range(len(bad))] + ["hello-last"])
    assert all(r["ok"] and r["loaded"] is False for r in hellos)
    others = [r for r in replies if r not in hellos]
    assert len(others) == len(bad)
    refused = [r for r in others if not r["ok"]]
    assert all(r["kind"] == "input" and isinstance(r["error"], str) and r["error"] for r in refused)
    assert all("pid" in r for r in others if r["ok"])             # only a random {"task": "hello"} succeeds
    print(f"\nfuzz: {len(bad)} lines {kinds}; {len(refused)} input errors, {len(others) - len(refused)} "
          f"random hellos answered, 0 tracebacks, 0 hangs, {elapsed:.1f} s")


# ----------------------------------------------------------------------------- the process itself

class Session:
    """A worker spoken to one request at a time (a reader thread, so a hang fails the test)."""

    def __init__(self, model: Path, exchange: Path):
        self.process = subprocess.Popen(worker_command(model, exchange), stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=REPO)
        self.lines: queue.Queue = queue.Queue()
        self.stderr = b""
        threading.Thread(target=self._read, daemon=True).start()
        threading.Thread(target=self._read_stderr, daemon=True).start()

    def _read(self) -> None:
        for raw in self.process.stdout:
            self.lines.put(json.loads(raw))

    def _read_stderr(self) -> None:
        self.stderr = self.process.stderr.read()

    def send(self, *messages: dict) -> None:
        self.process.stdin.write(b"".join(line(m) + b"\n" for m in messages))
        self.process.stdin.flush()

    def reply(self) -> dict:
        """The next final reply (progress lines skipped)."""
        while True:
            message = self.lines.get(timeout=TIMEOUT)
            if "ok" in message:
                return message

    def close(self) -> int:
        self.send({"task": "shutdown"})
        self.process.stdin.close()
        return self.process.wait(TIMEOUT)


def test_result_files_exchange_folder_ids_and_cancel(tiny_model, tmp_path, inputs):
    """With the model loaded: the exchange folder deleted is made again; replaced by a file, the
    write fails with an "input" error naming the result file and the next request still works;
    string and null ids come back as sent; a cancelled string id is skipped."""
    exchange = tmp_path / "exchange"
    session = Session(tiny_model, exchange)
    try:
        session.send({"id": 1, "task": "hello"})
        assert session.reply()["ok"]

        shutil.rmtree(exchange)
        session.send({"id": 2, "task": "text_to_motion", "text": "a person walks", "seconds": 1.0, "seed": 0})
        made = session.reply()
        assert made["ok"] and made["motion"] == str(exchange / "result_2.npy"), made
        assert np.load(made["motion"]).shape == (20, 22, 3)
        assert not [p.name for p in exchange.iterdir() if p.name != "result_2.npy"]    # no temporary left

        shutil.rmtree(exchange)
        exchange.write_text("a file where the exchange folder was")
        session.send({"id": 3, "task": "text_to_motion", "text": "a person walks", "seconds": 1.0})
        failed = session.reply()
        assert failed["id"] == 3 and failed["ok"] is False and failed["kind"] == "input"
        assert str(exchange / "result_3.npy") in failed["error"] and "is a file" in failed["error"], failed
        exchange.unlink()

        session.send({"id": None, "task": "predict", "motion": inputs["clip"], "fps": 40.0, "seconds": 0.5},
                     {"id": "job-a", "task": "text_to_motion", "text": "a person jumps", "seconds": 1.0},
                     {"task": "cancel", "ids": ["job-b", 99]},
                     {"id": "job-b", "task": "text_to_motion", "text": "a person runs", "seconds": 2.0},
                     {"id": "job-c", "task": "describe", "motion": inputs["clip"], "fps": 1000})
        anonymous, job_a, job_b, job_c = (session.reply() for _ in range(4))
        assert anonymous["ok"] and anonymous["id"] is None
        assert anonymous["motion"] == str(exchange / "result_null_1.npy")
        assert np.load(anonymous["motion"]).shape == (20 + 10, 22, 3)    # 40 frames at 40 fps -> 20, + 0.5 s
        assert job_a["id"] == "job-a" and job_a["ok"] and Path(job_a["motion"]).name == "result_job-a.npy"
        assert job_b == {"id": "job-b", "ok": False, "kind": "cancelled", "error": "cancelled"}
        assert job_c["id"] == "job-c" and job_c["ok"] and isinstance(job_c["text"], str)
        assert session.close() == 0
    finally:
        if session.process.poll() is None:
            session.process.kill()
    assert b"Traceback" not in session.stderr, session.stderr.decode(errors="replace")


def test_replies_that_are_not_json_become_engine_errors():
    """A reply holding NaN or a non-JSON value is replaced by an "engine" error with its id."""
    for value, name in ((float("nan"), "ValueError"), (np.float32(1.5), "TypeError"), (float("inf"), "ValueError")):
        encoded = json.loads(encode_reply({"id": "job-1", "ok": True, "fps": value}))
        assert encoded["id"] == "job-1" and encoded["ok"] is False and encoded["kind"] == "engine"
        assert encoded["error"].startswith(f"the engine's reply could not be written as JSON: {name}")
    assert json.loads(encode_reply({"id": 5, "ok": True, "fps": 20.0})) == {"id": 5, "ok": True, "fps": 20.0}


def test_a_closed_stdout_ends_the_process(tiny_model, tmp_path):
    """Nobody reads the replies any more: the worker exits 1 instead of living on."""
    process = subprocess.Popen(worker_command(tiny_model, tmp_path), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, cwd=REPO)
    try:
        process.stdout.close()
        process.stdin.write(hello(1) + b"\n")
        process.stdin.flush()
        assert process.wait(TIMEOUT) == 1                                   # stdin is still open
        assert b"cannot write to stdout" in process.stderr.read()
    finally:
        if process.poll() is None:
            process.kill()
        process.stdin.close()
        process.stderr.close()


def test_a_failing_stdin_ends_the_process(tiny_model, tmp_path):
    """stdin is a TCP connection that is reset: reading fails with ECONNRESET, the reader thread
    stops, and the main loop learns it and exits 1 (it never waits for requests that cannot come)."""
    server = socket.create_server(("127.0.0.1", 0))
    client = socket.create_connection(server.getsockname())
    connection, _ = server.accept()
    process = subprocess.Popen(worker_command(tiny_model, tmp_path), stdin=connection.fileno(),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=REPO)
    connection.close()
    try:
        client.sendall(hello(1) + b"\n")
        assert json.loads(process.stdout.readline())["id"] == "hello-1"
        client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        client.close()                                                      # a reset, not an end of input
        assert process.wait(TIMEOUT) == 1
        stderr = process.stderr.read().decode(errors="replace")
        assert "reading requests failed" in stderr and "ConnectionResetError" in stderr, stderr
    finally:
        if process.poll() is None:
            process.kill()
        server.close()
        process.stdout.close()
        process.stderr.close()
