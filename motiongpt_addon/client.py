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

Disk faults end a request, never the session: the exchange folder (and the worker's log in it)
is made again when something (a tmp cleaner) deleted it, before the process starts and before
each request's inputs are written; a failed write or an unreadable result is a ``WorkerError``
naming the file, and the next request starts afresh.
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

from engine.errors import MotionError
from engine.files import load_npy, save_npy
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


def engine_environment(settings: WorkerSettings) -> dict:
    """The environment of an engine process (the worker, ``python -m engine fetch-official``):
    the import folders, the cache folder as HF_HOME, and HF_HUB_OFFLINE unless online access is on."""
    env = dict(os.environ)
    paths = [p for p in settings.pythonpath if p]
    if env.get("PYTHONPATH"):
        paths.append(env["PYTHONPATH"])
    env["PYTHONPATH"] = os.pathsep.join(paths)
    env["PYTHONUNBUFFERED"] = "1"
    env.pop("PYTHONHOME", None)        # Blender's own Python home must not leak into another interpreter
    if settings.cache_dir:
        env["HF_HOME"] = settings.cache_dir
    if settings.offline:
        env["HF_HUB_OFFLINE"] = "1"
        env["TRANSFORMERS_OFFLINE"] = "1"
    return env


class WorkerError(Exception):
    """A request that failed; ``kind``: input, memory, engine, crash, start, disk or cancelled."""

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
                return Motion(load_npy(path, "the engine's result"), float(self.reply.get("fps", 20.0)))
            except MotionError as error:
                message = str(error) if str(path) in str(error) else f"the engine's result {path}: {error}"
                raise WorkerError(message, "disk") from None
            finally:
                _remove(path)
        if "text" in self.reply:
            return self.reply["text"]
        return {k: v for k, v in self.reply.items() if k not in ("id", "ok")}


class WorkerClient:
    """A running ``engine.worker`` process and the requests sent to it."""

    def __init__(self, settings: WorkerSettings):
        self.settings = settings
        try:
            self.exchange = Path(tempfile.mkdtemp(prefix="motiongpt-"))
        except OSError as error:
            raise WorkerError(f"cannot make the engine's exchange folder in {tempfile.gettempdir()}: "
                              f"{_reason(error)}", "disk") from None
        self.log_path = self.exchange / "worker.log"
        self.requests_sent = 0          # how many tasks went to the worker (tests: nothing ran)
        self._ids = itertools.count(1)
        self._messages: queue.Queue = queue.Queue()
        self._pending: dict[int, Request] = {}
        self._process: subprocess.Popen | None = None
        self._log = None
        self._log_lock = threading.Lock()
        self._log_copier: threading.Thread | None = None
        self._closed = False            # after shutdown: late log lines must not make the folder again

    # -- the exchange folder and the log
    def ensure_exchange(self) -> None:
        """Make the private exchange folder again when it is missing (deleted by a tmp cleaner);
        ``WorkerError`` naming it when that fails or the path is taken by something else."""
        try:
            self.exchange.mkdir(mode=0o700)
            self._write_log(b"")            # the log too (a running worker's next lines go there)
        except FileExistsError:
            if not self.exchange.is_dir():
                raise WorkerError(f"the engine's exchange folder {self.exchange} is not a folder "
                                  "(something else took its name)", "disk") from None
            if hasattr(os, "getuid") and self.exchange.stat().st_uid != os.getuid():
                raise WorkerError(f"the engine's exchange folder {self.exchange} belongs to another user",
                                  "disk") from None
        except OSError as error:
            raise WorkerError(f"cannot make the engine's exchange folder {self.exchange}: {_reason(error)}",
                              "disk") from None

    def _write_log(self, data: bytes) -> None:
        """Append the worker's stderr to the log, reopening it when it was deleted; a log that
        cannot be written (a full disk) loses those lines, never the worker."""
        with self._log_lock:
            if self._closed:
                return
            try:
                if self._log is None or not self.log_path.exists():
                    if self._log is not None:
                        self._log.close()
                    self._log = None
                    self.exchange.mkdir(mode=0o700, exist_ok=True)
                    self._log = open(self.log_path, "ab")
                self._log.write(data)
                self._log.flush()
            except OSError:
                pass

    def _copy_log(self, stream) -> None:
        try:
            for line in stream:
                self._write_log(line)
        except (OSError, ValueError):
            pass
        finally:
            stream.close()

    # -- process
    def _environment(self) -> dict:
        return engine_environment(self.settings)

    def start(self) -> None:
        """Start the process (quick: the model loads on the first task)."""
        if self.alive:
            return
        python = self.settings.python
        if not python or not (Path(python).is_file() or shutil.which(python)):
            raise WorkerError(f"the Python interpreter for the engine was not found: '{python}' (set it in "
                              "the MotionGPT add-on preferences)", "start")
        self._closed = False
        self.ensure_exchange()
        self._write_log(b"")                # (re)creates the log
        command = [python, "-m", "engine.worker", "--model", self.settings.model,
                   "--device", self.settings.device, "--exchange", str(self.exchange)]
        try:
            self._process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                             stderr=subprocess.PIPE, env=self._environment(),
                                             cwd=str(self.exchange))
        except OSError as error:
            raise WorkerError(f"cannot start the engine process with '{python}': {error}", "start") from None
        self._messages = queue.Queue()
        self._log_copier = threading.Thread(target=self._copy_log, args=(self._process.stderr,),
                                            name="motiongpt-log", daemon=True)
        self._log_copier.start()
        threading.Thread(target=self._read_replies, args=(self._process, self._messages, self._log_copier),
                         name="motiongpt-replies", daemon=True).start()

    @property
    def alive(self) -> bool:
        return self._process is not None and self._process.poll() is None

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    @staticmethod
    def _read_replies(process: subprocess.Popen, messages: queue.Queue, log_copier: threading.Thread) -> None:
        for line in process.stdout:
            try:
                messages.put(json.loads(line))
            except ValueError:
                continue
        code = process.wait()
        log_copier.join(2.0)                # the log's last lines are there before the crash is told
        messages.put({"dead": code})

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
        self.ensure_exchange()
        request = Request(next(self._ids), task)
        message = {"id": request.id, "task": task, **fields}
        for key, motion in (motions or {}).items():
            path = self.exchange / f"in_{request.id}_{key}.npy"
            try:
                save_npy(path, np.ascontiguousarray(motion.joints, dtype=np.float32), "the motion for the engine")
            except MotionError as error:
                for written in request.inputs:
                    _remove(written)
                raise WorkerError(str(error), "disk") from None
            request.inputs.append(path)
            message[key] = str(path)
            message["fps"] = float(motion.fps)
        self._pending[request.id] = request
        self.requests_sent += 1
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
                    _remove(Path(message["motion"]))               # reply to a cancelled request
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
            _remove(path)

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
        if self._log_copier is not None:
            self._log_copier.join(2.0)
        with self._log_lock:
            self._closed = True
            if self._log is not None:
                self._log.close()
                self._log = None
        shutil.rmtree(self.exchange, ignore_errors=True)


def _reason(error: OSError) -> str:
    return error.strerror or str(error)


def _remove(path: Path) -> None:
    """Delete an exchange file; one that is gone already or cannot be deleted is left alone."""
    try:
        path.unlink(missing_ok=True)
    except OSError:
        pass


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
