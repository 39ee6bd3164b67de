"""The engine worker process (``python -m engine.worker``) and the add-on's client for it.

Real processes, real torch, a tiny randomly initialised model folder built with the engine's own
classes (tests/support/tiny_model.py). Failures are made for real: a missing model folder, bad
requests, a killed process.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from engine.motion import Motion
from motiongpt_addon.client import WorkerClient, WorkerError, WorkerSettings

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def serve_clip(shared_data) -> Motion:
    """3 s of the real tennis serve (HumanML3D 012314) at 20 fps."""
    return Motion(np.load(shared_data / "humanml3d" / "new_joints" / "012314.npy")[:60], 20.0)


def settings_for(model: Path | str) -> WorkerSettings:
    return WorkerSettings(python=sys.executable, pythonpath=(str(REPO),), model=str(model), device="cpu")


@pytest.fixture(scope="module")
def worker(tiny_model):
    client = WorkerClient(settings_for(tiny_model))
    client.start()
    yield client
    client.shutdown()


def test_raw_protocol_lines(tiny_model, tmp_path, serve_clip):
    """The documented JSON-lines protocol, spoken directly to the process."""
    np.save(tmp_path / "clip.npy", serve_clip.joints)
    requests = [
        {"id": 1, "task": "hello"},
        {"id": 2, "task": "text_to_motion", "text": "a person waves", "seconds": 1.5, "seed": 3},
        {"id": 3, "task": "describe", "motion": str(tmp_path / "clip.npy"), "fps": 20.0},
        {"id": 4, "task": "nonsense"},
    ]
    lines = "".join(json.dumps(r) + "\n" for r in requests) + "this is not json\n"
    done = subprocess.run([sys.executable, "-m", "engine.worker", "--model", str(tiny_model), "--device", "cpu",
                           "--exchange", str(tmp_path)], input=lines, capture_output=True, text=True,
                          cwd=REPO, timeout=120)
    assert done.returncode == 0, done.stderr
    replies = [json.loads(line) for line in done.stdout.splitlines()]
    final = {r["id"]: r for r in replies if "ok" in r}
    assert final[1]["ok"] and final[1]["loaded"] is False
    assert any(r.get("status", "").startswith("loading the MotionGPT model") for r in replies if r["id"] == 2)
    joints = np.load(final[2]["motion"])
    assert joints.shape == (30, 22, 3) and joints.dtype == np.float32 and np.isfinite(joints).all()
    assert isinstance(final[3]["text"], str)
    assert final[4] == {"id": 4, "ok": False, "kind": "input",
                        "error": "unknown task 'nonsense'; expected one of hello, load, text_to_motion, describe, "
                                 "predict, inbetween, timeline"}
    assert final[None]["kind"] == "input" and "bad request line" in final[None]["error"]


def test_four_tasks_through_the_client(worker, serve_clip):
    motion = worker.wait(worker.submit("text_to_motion", text="a person jumps", seconds=2.0, seed=1))
    assert isinstance(motion, Motion) and motion.joints.shape == (40, 22, 3) and motion.fps == 20.0
    again = worker.wait(worker.submit("text_to_motion", text="a person jumps", seconds=2.0, seed=1))
    np.testing.assert_array_equal(motion.joints, again.joints)            # a seed reproduces

    caption = worker.wait(worker.submit("describe", motions={"motion": serve_clip}))
    assert isinstance(caption, str)

    predicted = worker.wait(worker.submit("predict", motions={"motion": serve_clip}, seconds=1.0, seed=0))
    assert predicted.num_frames == serve_clip.num_frames + 20
    np.testing.assert_allclose(predicted.joints[:60], serve_clip.joints, atol=1e-6)

    filled = worker.wait(worker.submit("inbetween", motions={"before": serve_clip[:20], "after": serve_clip[40:]},
                                       frames=19, text="swings"))
    assert filled.joints.shape == (19, 22, 3)
    assert not list(worker.exchange.glob("*.npy"))                         # inputs and results cleaned up


def test_bad_input_is_a_reply_and_the_worker_goes_on(worker, serve_clip):
    with pytest.raises(WorkerError) as empty:
        worker.wait(worker.submit("text_to_motion", text="   ", seconds=2.0))
    assert empty.value.kind == "input" and "empty" in str(empty.value)
    with pytest.raises(WorkerError) as short:
        worker.wait(worker.submit("predict", motions={"motion": serve_clip}, seconds=-1.0))
    assert short.value.kind == "input" and "positive number of seconds" in str(short.value)
    assert worker.wait(worker.submit("hello"))["loaded"] is True
    assert worker.wait(worker.submit("text_to_motion", text="a person walks", seconds=1.0)).num_frames == 20


def test_missing_model_folder_is_a_clear_error(tmp_path):
    client = WorkerClient(settings_for(tmp_path / "no-such-model"))
    try:
        with pytest.raises(WorkerError) as missing:
            client.wait(client.submit("text_to_motion", text="a person walks", seconds=1.0))
        assert missing.value.kind == "input"
        assert "no-such-model: no such model folder" in str(missing.value)
        assert client.alive                                                # still serving
    finally:
        client.shutdown()


def test_a_killed_worker_fails_its_request_and_restarts(tiny_model):
    client = WorkerClient(settings_for(tiny_model))
    try:
        client.start()
        first_pid = client.pid
        request = client.submit("text_to_motion", text="a person walks", seconds=8.0)
        client.kill()
        with pytest.raises(WorkerError) as crash:
            client.wait(request)
        assert crash.value.kind == "crash" and "stopped unexpectedly" in str(crash.value)
        motion = client.wait(client.submit("text_to_motion", text="a person walks", seconds=1.0))
        assert motion.num_frames == 20 and client.pid != first_pid
    finally:
        client.shutdown()
    assert not client.alive


def test_cancel_drops_the_reply(worker):
    first = worker.submit("text_to_motion", text="a person runs", seconds=3.0, seed=0)
    second = worker.submit("text_to_motion", text="a person runs", seconds=3.0, seed=1)
    worker.cancel(second)
    with pytest.raises(WorkerError) as cancelled:
        second.result()
    assert cancelled.value.kind == "cancelled"
    assert worker.wait(first).num_frames == 60
    assert worker.wait(worker.submit("text_to_motion", text="a person runs", seconds=1.0)).num_frames == 20


def test_interpreter_missing_is_a_start_error(tiny_model):
    client = WorkerClient(WorkerSettings(python="/no/such/python", model=str(tiny_model)))
    try:
        with pytest.raises(WorkerError) as missing:
            client.submit("hello")
        assert missing.value.kind == "start" and "/no/such/python" in str(missing.value)
    finally:
        client.shutdown()


def test_a_rewritten_prompt_comes_back_as_read_as(tiny_model, tmp_path):
    """A model whose text side names action words (engine.text.lexicon) says how it read a prompt with
    words it does not know; a prompt it knows gets no read_as."""
    import shutil

    import torch

    from engine.data import action_words, training_vocabulary
    from engine.text.side import TextSide, TextSideConfig
    folder = tmp_path / "model"
    shutil.copytree(tiny_model, folder)
    torch.manual_seed(0)
    TextSide(TextSideConfig(d_model=32, known_words=sorted(training_vocabulary()),
                            action_words=action_words())).save_pretrained(folder / "lm")
    client = WorkerClient(settings_for(folder))
    client.start()
    try:
        unknown = client.submit("text_to_motion", text="a man perambulates", seconds=1.0, seed=0)
        known = client.submit("text_to_motion", text="a person walks forward", seconds=1.0, seed=0)
        assert client.wait(unknown).num_frames == 20 and client.wait(known).num_frames == 20
        assert unknown.reply["read_as"] == "a man walks" and "read_as" not in known.reply
    finally:
        client.shutdown()
