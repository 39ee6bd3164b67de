"""The engine process the Blender add-on talks to: ``python -m engine.worker --exchange DIR``.

One process per Blender session keeps the MotionGPT model loaded between requests. It never
imports bpy; the add-on never imports torch. Protocol: one JSON object per line.

Requests (stdin)::

    {"id": 7, "task": "text_to_motion", "text": "a person waves", "seconds": 3.0, "seed": 1}
    {"id": 8, "task": "describe", "motion": "DIR/in_8.npy", "fps": 20.0}
    {"id": 9, "task": "predict", "motion": "DIR/in_9.npy", "fps": 20.0, "seconds": 2.0}
    {"id": 10, "task": "inbetween", "before": "...npy", "after": "...npy", "fps": 20.0,
     "frames": 30, "text": "jumps"}
    {"id": 11, "task": "hello"}                 # answers at once, without loading the model
    {"id": 12, "task": "load"}                  # loads the model now (a later task would anyway)
    {"task": "cancel", "ids": [9, 10]}          # drop these requests if they have not started
    {"task": "shutdown"}                        # (closing stdin does the same)

A motion travels as a ``.npy`` file of joints (T, 22, 3) float32 inside the exchange folder plus
its ``fps`` in the JSON. Replies (stdout)::

    {"id": 7, "status": "loading the model from ..."}              # progress, any number
    {"id": 7, "ok": true, "motion": "DIR/result_7.npy", "fps": 20.0}
    {"id": 7, "ok": true, "motion": "...", "fps": 20.0, "read_as": "a man walks"}   # unknown words read
    {"id": 8, "ok": true, "text": "a person walks forward."}
    {"id": 9, "ok": false, "kind": "input", "error": "the motion is empty"}

``kind`` is "input" (``MotionError``: bad input or a bad model folder), "memory" (the GPU ran
out of memory; the worker frees its cache and keeps running) or "engine" (any other exception;
its traceback goes to stderr). The worker answers every request it starts and keeps running
after any error. Everything that is not protocol (library prints, warnings) goes to stderr.
"""
from __future__ import annotations

import argparse
import json
import os
import queue
import sys
import threading
import traceback
from pathlib import Path

import numpy as np

from .errors import MotionError
from .motion import Motion

TASKS = ("hello", "load", "text_to_motion", "describe", "predict", "inbetween")


class Worker:
    """Loads the model on first use and runs one request at a time."""

    def __init__(self, source: str, device: str | None, exchange: Path, send):
        self.source, self.device, self.exchange, self.send = source, device, exchange, send
        self.model = None

    # -- the model
    def ensure_model(self, request_id):
        if self.model is None:
            self.send({"id": request_id, "status": f"loading the MotionGPT model ({self.source})"})
            from .model import MotionGPT
            self.model = MotionGPT.from_pretrained(self.source, device=self.device)
        return self.model

    # -- motions through the exchange folder
    def read_motion(self, request: dict, key: str) -> Motion:
        path = request.get(key)
        if not isinstance(path, str):
            raise MotionError(f"request {request.get('id')}: '{key}' must be the path of a .npy file")
        try:
            joints = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as error:
            raise MotionError(f"{path}: cannot read the motion: {error}") from None
        return Motion(joints, float(request.get("fps", 20.0)))

    def write_motion(self, request_id, motion: Motion) -> dict:
        if not isinstance(motion, Motion):
            raise MotionError(f"the model returned {type(motion).__name__}, not an engine.Motion")
        path = self.exchange / f"result_{request_id}.npy"
        np.save(path, np.ascontiguousarray(motion.joints, dtype=np.float32))
        return {"motion": str(path), "fps": float(motion.fps)}

    # -- the tasks
    def run(self, request: dict) -> dict:
        task, request_id = request.get("task"), request.get("id")
        if task == "hello":
            return {"pid": os.getpid(), "python": sys.executable, "source": self.source,
                    "device": self.device or "auto", "loaded": self.model is not None}
        if task not in TASKS:
            raise MotionError(f"unknown task {task!r}; expected one of {', '.join(TASKS)}")
        model = self.ensure_model(request_id)
        if task == "load":
            return {"device": str(getattr(model, "device", self.device or "auto"))}
        if task == "text_to_motion":
            seconds = request.get("seconds")
            text = str(request.get("text", ""))
            motion = model.text_to_motion(text, seconds=None if seconds is None else float(seconds),
                                          seed=request.get("seed"))
            reply = self.write_motion(request_id, motion)
            read_as = model.read_as(text)
            if read_as != text:
                reply["read_as"] = read_as      # words the model does not know were rewritten or read as a label
            return reply
        if task == "describe":
            return {"text": str(model.describe(self.read_motion(request, "motion")))}
        if task == "predict":
            motion = model.predict(self.read_motion(request, "motion"), float(request.get("seconds", 0.0)),
                                   **_seed_of(request))
            return self.write_motion(request_id, motion)
        # inbetween
        text = request.get("text") or None
        motion = model.inbetween(self.read_motion(request, "before"), self.read_motion(request, "after"),
                                 int(request.get("frames", 0)), text=text, **_seed_of(request))
        return self.write_motion(request_id, motion)

    def answer(self, request: dict) -> None:
        """Run one request and send its reply, whatever happens."""
        request_id = request.get("id")
        try:
            reply = {"id": request_id, "ok": True, **self.run(request)}
        except MotionError as error:
            reply = {"id": request_id, "ok": False, "kind": "input", "error": str(error)}
        except Exception as error:  # the worker must survive anything the engine raises
            if _is_out_of_memory(error):
                _free_gpu_memory()
                reply = {"id": request_id, "ok": False, "kind": "memory",
                         "error": "the GPU ran out of memory (CUDA). Close other GPU programs, ask for a "
                                  "shorter clip, or choose the CPU device in the add-on preferences"}
            else:
                traceback.print_exc(file=sys.stderr)
                reply = {"id": request_id, "ok": False, "kind": "engine",
                         "error": f"{type(error).__name__}: {error}"}
        self.send(reply)


def _seed_of(request: dict) -> dict:
    """``{"seed": n}`` when the request names a seed (predict / in-between take it as a keyword)."""
    return {} if request.get("seed") is None else {"seed": int(request["seed"])}


def _is_out_of_memory(error: BaseException) -> bool:
    name = type(error).__name__
    return name == "OutOfMemoryError" or (isinstance(error, RuntimeError) and "out of memory" in str(error))


def _free_gpu_memory() -> None:
    try:
        import torch
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    except Exception:  # freeing is best effort
        pass


def _protocol_channel():
    """The real stdout for protocol lines; fd 1 and ``sys.stdout`` are pointed at stderr so that
    stray prints (ours, a library's, C code's) cannot corrupt the protocol."""
    channel = os.fdopen(os.dup(1), "w", encoding="utf-8", buffering=1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    lock = threading.Lock()

    def send(message: dict) -> None:
        line = json.dumps(message)
        with lock:
            channel.write(line + "\n")
            channel.flush()
    return send


def serve(source: str, device: str | None, exchange: Path, stdin=None) -> int:
    """Read requests until ``shutdown`` or end of input; returns the exit code (0)."""
    send = _protocol_channel()
    worker = Worker(source, device, exchange, send)
    requests: queue.Queue = queue.Queue()
    cancelled: set = set()
    stdin = stdin or sys.stdin

    def read_requests() -> None:
        """Reads stdin on its own thread so that a cancel can overtake queued requests."""
        for line in stdin:
            line = line.strip()
            if not line:
                continue
            try:
                message = json.loads(line)
                if not isinstance(message, dict):
                    raise ValueError("not a JSON object")
            except ValueError as error:
                send({"id": None, "ok": False, "kind": "input", "error": f"bad request line: {error}"})
                continue
            if message.get("task") == "cancel":
                cancelled.update(message.get("ids", []))
                continue
            requests.put(message)
            if message.get("task") == "shutdown":
                return
        requests.put({"task": "shutdown"})

    threading.Thread(target=read_requests, name="requests", daemon=True).start()
    while True:
        request = requests.get()
        if request.get("task") == "shutdown":
            return 0
        if request.get("id") in cancelled:
            cancelled.discard(request.get("id"))
            send({"id": request.get("id"), "ok": False, "kind": "cancelled", "error": "cancelled"})
            continue
        worker.answer(request)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m engine.worker", description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="default", help='"default", a model folder or a hub repo id')
    parser.add_argument("--device", default="auto", help="auto, cuda or cpu")
    parser.add_argument("--exchange", required=True, type=Path, help="folder for the .npy motion files")
    args = parser.parse_args(argv)
    args.exchange.mkdir(parents=True, exist_ok=True)
    device = None if args.device in ("", "auto") else args.device
    return serve(args.model, device, args.exchange)


if __name__ == "__main__":
    sys.exit(main())
