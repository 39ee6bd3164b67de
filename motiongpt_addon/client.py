"""The add-on's side of the engine worker process (``python -m engine.worker``).

Plain Python (no bpy, no torch), so the main thread never blocks: ``submit`` writes one JSON line
to the worker's stdin and returns a ``Request`` at once; a reader thread collects the worker's
replies; ``poll`` (called from a ``bpy.app.timers`` function, or in a loop by ``wait`` in
background mode) hands them to their requests. Motions cross as ``.npy`` files in a private
exchange folder. The protocol is documented in ``engine/worker.py``.

One worker per Blender session (``shared_client``) keeps the model loaded; it is replaced when
the settings change and restarted on the next request after it died. A crash of the worker (or
the machine killing it) becomes a failed reply with the end of its log, never an exception in
Blender's main loop.
"""
from __future__ import annotations

import itertools
import json
import os
import queue
import shutil
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from engine.motion import Motion

LOG_TAIL_LINES = 12


@dataclass(frozen=True)
class WorkerSettings:
    """How to start the worker: the interpreter, extra import folders, the model and device."""

    python: str
    pythonpath: tuple[str, ...] = ()
    model: str = "default"
    device: str = "auto"
    cache_dir: str = ""
    offline: bool = True


class WorkerError(Exception):
    """A request that failed; ``kind``: input, memory, engine, crash, start or cancelled."""

    def __init__(self, message: str, kind: str = "engine"):
        super().__init__(message)
        self.kind = kind


@dataclass
class Request:
    """One task sent to the worker; ``reply`` is set once it has finished (or failed)."""

    id: int
    task: str
    status: str = ""
    reply: dict | None = None
    inputs: list[Path] = field(default_factory=list)

    @property
    def done(self) -> bool:
        return self.reply is not None

    def result(self):
        """The reply's motion (``engine.Motion``), text, or other fields (dict); raises ``WorkerError`` for a failure."""
        if self.reply is None:
            raise WorkerError(f"request {self.id} ({self.task}) has not finished", "engine")
        if not self.reply.get("ok"):
            raise WorkerError(self.reply.get("error") or "the engine failed", self.reply.get("kind", "engine"))
        if "motion" in self.reply:
            path = Path(self.reply["motion"])
            try:
                joints = np.load(path, allow_pickle=False)
            finally:
                path.unlink(missing_ok=True)
            return Motion(joints, float(self.reply.get("fps", 20.0)))
        if "text" in self.reply:
            return self.reply["text"]
        return {k: v for k, v in self.reply.items() if k not in ("id", "ok")}


class WorkerClient:
    """A running ``engine.worker`` process and the requests sent to it."""

    def __init__(self, settings: WorkerSettings):
        self.settings = settings
        self.exchange = Path(tempfile.mkdtemp(prefix="motiongpt-"))
        self.log_path = self.exchange / "worker.log"
        self._ids = itertools.count(1)
        self._messages: queue.Queue = queue.Queue()
        self._pending: dict[int, Request] = {}
        self._process: subprocess.Popen | None = None
        self._log = None

    # -- process
    def _environment(self) -> dict:
        env = dict(os.environ)
        paths = [p for p in self.settings.pythonpath if p]
        if env.get("PYTHONPATH"):
            paths.append(env["PYTHONPATH"])
        env["PYTHONPATH"] = os.pathsep.join(paths)
        env["PYTHONUNBUFFERED"] = "1"
        env.pop("PYTHONHOME", None)        # Blender's own Python home must not leak into another interpreter
        if self.settings.cache_dir:
            env["HF_HOME"] = self.settings.cache_dir
        if self.settings.offline:
            env["HF_HUB_OFFLINE"] = "1"
            env["TRANSFORMERS_OFFLINE"] = "1"
        return env

    def start(self) -> None:
        """Start the process (quick: the model loads on the first task)."""
        if self.alive:
            return
        python = self.settings.python
        if not python or not (Path(python).is_file() or shutil.which(python)):
            raise WorkerError(f"the Python interpreter for the engine was not found: '{python}' (set it in "
                              "the MotionGPT add-on preferences)", "start")
        self._log = open(self.log_path, "ab")
        command = [python, "-m", "engine.worker", "--model", self.settings.model,
                   "--device", self.settings.device, "--exchange", str(self.exchange)]
        try:
            self._process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                             stderr=self._log, env=self._environment(), cwd=str(self.exchange))
        except OSError as error:
            raise WorkerError(f"cannot start the engine process with '{python}': {error}", "start") from None
        self._messages = queue.Queue()
        threading.Thread(target=self._read_replies, args=(self._process, self._messages),
                         name="motiongpt-replies", daemon=True).start()

    @property
    def alive(self) -> bool:
        return self._process is not None and self._process.poll() is None

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    @staticmethod
    def _read_replies(process: subprocess.Popen, messages: queue.Queue) -> None:
        for line in process.stdout:
            try:
                messages.put(json.loads(line))
            except ValueError:
                continue
        messages.put({"dead": process.wait()})

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> str:
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""
        return "\n".join(text.strip().splitlines()[-lines:])

    # -- requests
    def submit(self, task: str, motions: dict[str, Motion] | None = None, **fields) -> Request:
        """Send a task; motions go as .npy files (key -> path, plus their common ``fps``)."""
        if not self.alive:
            self._fail_pending("the engine process is not running")
            self.start()
        request = Request(next(self._ids), task)
        message = {"id": request.id, "task": task, **fields}
        for key, motion in (motions or {}).items():
            path = self.exchange / f"in_{request.id}_{key}.npy"
            np.save(path, np.ascontiguousarray(motion.joints, dtype=np.float32))
            request.inputs.append(path)
            message[key] = str(path)
            message["fps"] = float(motion.fps)
        self._pending[request.id] = request
        try:
            self._send(message)
        except WorkerError as error:
            self._finish(request, {"ok": False, "kind": "crash", "error": str(error)})
        return request

    def _send(self, message: dict) -> None:
        try:
            self._process.stdin.write((json.dumps(message) + "\n").encode("utf-8"))
            self._process.stdin.flush()
        except (OSError, ValueError, AttributeError) as error:
            raise WorkerError(f"the engine process is gone ({error})", "crash") from None

    def cancel(self, request: Request) -> None:
        """Forget ``request``: its reply is dropped; the worker skips it if it has not started."""
        if request.done:
            return
        try:
            self._send({"task": "cancel", "ids": [request.id]})
        except WorkerError:
            pass
        self._finish(request, {"ok": False, "kind": "cancelled", "error": "cancelled"})

    def poll(self) -> None:
        """Hand every reply that has arrived to its request (never blocks)."""
        while True:
            try:
                message = self._messages.get_nowait()
            except queue.Empty:
                return
            if "dead" in message:
                self._fail_pending(f"the engine process stopped unexpectedly (exit code {message['dead']})")
                continue
            request = self._pending.get(message.get("id"))
            if request is None:
                if message.get("ok") is not None and message.get("motion"):
                    Path(message["motion"]).unlink(missing_ok=True)   # reply to a cancelled request
                continue
            if "status" in message and "ok" not in message:
                request.status = message["status"]
            else:
                self._finish(request, message)

    def wait(self, request: Request, should_stop=None, interval: float = 0.05):
        """Block until ``request`` finishes (background mode); ``should_stop()`` True cancels it.
        Returns ``request.result()``."""
        while not request.done:
            self.poll()
            if request.done:
                break
            if should_stop is not None and should_stop():
                self.cancel(request)
                break
            if not self.alive and self._messages.empty():
                time.sleep(interval)               # let the reader thread post the exit
                self.poll()
                if not request.done:
                    self._fail_pending("the engine process stopped unexpectedly")
                break
            time.sleep(interval)
        return request.result()

    def _finish(self, request: Request, reply: dict) -> None:
        if reply.get("kind") == "crash":
            tail = self.log_tail()
            if tail:
                reply = {**reply, "error": f"{reply['error']}; its log ends with:\n{tail}"}
        request.reply = reply
        self._pending.pop(request.id, None)
        for path in request.inputs:
            path.unlink(missing_ok=True)

    def _fail_pending(self, message: str) -> None:
        for request in list(self._pending.values()):
            self._finish(request, {"ok": False, "kind": "crash", "error": message})

    def kill(self) -> None:
        """Kill the process at once (what a crash looks like; also used by Cancel of a stuck job)."""
        if self.alive:
            self._process.kill()
            self._process.wait()

    def shutdown(self, timeout: float = 3.0) -> None:
        """Ask the worker to stop, kill it if it does not, and remove the exchange folder."""
        process, self._process = self._process, None
        if process is not None:
            try:
                process.stdin.write(b'{"task": "shutdown"}\n')
                process.stdin.close()
            except (OSError, ValueError):
                pass
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            if process.stdout:
                process.stdout.close()
        self._fail_pending("the engine process was shut down")
        if self._log is not None:
            self._log.close()
            self._log = None
        shutil.rmtree(self.exchange, ignore_errors=True)


_shared: WorkerClient | None = None


def shared_client(settings: WorkerSettings) -> WorkerClient:
    """The session's worker client for ``settings`` (a new one when the settings changed)."""
    global _shared
    if _shared is not None and _shared.settings != settings:
        _shared.shutdown()
        _shared = None
    if _shared is None:
        _shared = WorkerClient(settings)
    return _shared


def current_client() -> WorkerClient | None:
    """The session's worker client, if one was made."""
    return _shared


def shutdown_shared_client() -> None:
    """Stop the session's worker (unregister, Blender exit)."""
    global _shared
    if _shared is not None:
        _shared.shutdown()
        _shared = None
