"""Model: *MotionGPT-base (official)*: download and convert the official weights once.

The work runs in the engine's interpreter (never in Blender: it needs torch) as
``PYTHON -m engine fetch-official`` (``engine/official.py``), in a background thread that reads its
progress lines. The engine process honours Blender's *Allow Online Access* (HF_HUB_OFFLINE) and the
*Cache Folder* (HF_HOME), like the worker. Cancel kills that process; the engine never leaves a
folder that passes for a model (it is renamed into place only once converted and loaded), and a
partial download resumes next time. On success the model setting becomes *MotionGPT-base*; on any
failure it goes back to the bundled model and the failure is one message.
"""
from __future__ import annotations

import subprocess
import threading

import bpy

from engine.official import CHECKPOINT_REPO, is_ready, official_folder

from .client import WorkerSettings, engine_environment, shutdown_shared_client
from .reporting import reports_errors

LICENCE_NOTE = ("Code: MIT (OpenMotionLab/MotionGPT). Weights trained on HumanML3D / AMASS:",
                "research and non-commercial use only.")


def folder_for(settings: WorkerSettings):
    """The converted model folder for these settings (the Cache Folder, else the default HF_HOME)."""
    return official_folder(settings.cache_dir or None)


class OfficialFetch:
    """One ``python -m engine fetch-official`` run in a thread; the UI reads its state."""

    def __init__(self, settings: WorkerSettings):
        self.command = [settings.python, "-m", "engine", "fetch-official"]
        if settings.cache_dir:
            self.command += ["--cache-dir", settings.cache_dir]
        if settings.offline:
            self.command.append("--offline")
        self.env = engine_environment(settings)
        self.step = "starting"          # starting, download, convert, check, ready
        self.done = self.total = 0
        self.folder = ""
        self.error = ""
        self.returncode: int | None = None
        self.cancelled = False
        self.applied = False            # the outcome was put into the preferences
        self._process: subprocess.Popen | None = None

    def start(self) -> None:
        threading.Thread(target=self._run, name="motiongpt-fetch-official", daemon=True).start()

    def _run(self) -> None:
        try:
            self._process = subprocess.Popen(self.command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                             text=True, errors="replace", env=self.env)
        except OSError as error:
            self.error = f"cannot run the engine with '{self.command[0]}': {error} (MotionGPT add-on preferences: Python)"
            self.returncode = -1
            return
        if self.cancelled:              # Cancel came before the process existed
            self._process.kill()
        for line in self._process.stdout:
            self._read(line.split())
        errors = self._process.stderr.read().splitlines()
        code = self._process.wait()
        if self.cancelled:
            self.error = "cancelled; nothing was kept but the downloaded part, which resumes next time"
        elif code:
            last = next((line for line in reversed(errors) if line.startswith("error: ")), "")
            self.error = last.removeprefix("error: ") or (errors[-1] if errors else f"exit code {code}")
        self.returncode = code or (-1 if self.error else 0)

    def _read(self, words: list[str]) -> None:
        if words[:1] == ["progress"] and len(words) >= 2:
            self.step = words[1]
            if words[1] == "download" and len(words) == 4:
                self.done, self.total = int(words[2]), int(words[3])
        elif words[:1] == ["ready"]:
            self.step, self.folder = "ready", " ".join(words[1:])

    def cancel(self) -> None:
        """Stop now (kills the engine process)."""
        self.cancelled = True
        if self._process is not None and self._process.poll() is None:
            self._process.kill()

    def wait(self) -> None:
        while self.returncode is None:
            threading.Event().wait(0.05)

    @property
    def running(self) -> bool:
        return self.returncode is None

    @property
    def fraction(self) -> float:
        """0-1 for the progress bar: the download is the first 80 %."""
        if self.step == "download" and self.total:
            return 0.8 * self.done / self.total
        return {"starting": 0.0, "download": 0.0, "convert": 0.8, "check": 0.95, "ready": 1.0}.get(self.step, 0.0)

    @property
    def progress_text(self) -> str:
        if self.step == "download":
            return f"downloading {self.done / 1e6:,.0f} of {self.total / 1e6:,.0f} MB"
        return {"starting": "starting the engine ...", "convert": "converting the checkpoint ...",
                "check": "checking that the model loads ...", "ready": "ready"}.get(self.step, self.step)


_fetch: OfficialFetch | None = None


def current_fetch() -> OfficialFetch | None:
    return _fetch


def cancel_running() -> None:
    """Kill a running fetch (the add-on is being disabled)."""
    if _fetch is not None and _fetch.running:
        _fetch.cancel()


def apply_outcome(fetch: OfficialFetch, prefs) -> str | None:
    """Put a finished fetch into the preferences once: the official model on success, the bundled
    one on failure. Returns the error message (None on success)."""
    if fetch.applied or fetch.running:
        return fetch.error or None
    fetch.applied = True
    if prefs is not None:
        prefs.model_source = 'DEFAULT' if fetch.error else 'OFFICIAL'
    if not fetch.error:
        shutdown_shared_client()        # the next request starts a worker with the new model
    return fetch.error or None


def status_lines(prefs, settings: WorkerSettings) -> list[tuple[str, str]]:
    """(text, icon) lines the preferences show under the model choice."""
    lines = []
    fetch = _fetch
    if prefs.model_source == 'OFFICIAL':
        lines += [(LICENCE_NOTE[0], 'INFO'), (LICENCE_NOTE[1], 'BLANK1')]
        if is_ready(folder_for(settings)):
            lines.append((f"Converted: {folder_for(settings)}", 'CHECKMARK'))
    if fetch is not None and not fetch.running and fetch.error:
        lines.append((f"MotionGPT-base: {fetch.error}"[:240], 'ERROR'))
    return lines


class MOTIONGPT_OT_fetch_official(bpy.types.Operator):
    """Download MotionGPT's official weights (1.2 GB) once and convert them for the engine"""

    bl_idname = "motiongpt.fetch_official"
    bl_label = "Download and Convert"
    bl_options = {'REGISTER', 'INTERNAL'}

    @reports_errors
    def execute(self, context):
        global _fetch
        from .preferences import addon_preferences, worker_settings
        prefs = addon_preferences(context)
        if _fetch is not None and _fetch.running:
            self.report({'ERROR'}, "the official model is being downloaded already")
            return {'CANCELLED'}
        settings = worker_settings(context)
        folder = folder_for(settings)
        if is_ready(folder):
            if prefs is not None:
                prefs.model_source = 'OFFICIAL'
            self.report({'INFO'}, f"the official model is ready: {folder}")
            return {'FINISHED'}
        _fetch = OfficialFetch(settings)
        _fetch.start()
        if bpy.app.background:
            _fetch.wait()
            return self._finish(_fetch, prefs)
        bpy.app.timers.register(_watch_fetch, first_interval=0.5)
        self.report({'INFO'}, "downloading and converting the official MotionGPT model ...")
        return {'FINISHED'}

    def _finish(self, fetch: OfficialFetch, prefs):
        error = apply_outcome(fetch, prefs)
        if error:
            self.report({'ERROR'}, f"{error} (the bundled model stays selected)")
            return {'CANCELLED'}
        self.report({'INFO'}, f"the official model is ready: {fetch.folder}")
        return {'FINISHED'}


class MOTIONGPT_OT_cancel_fetch_official(bpy.types.Operator):
    """Stop downloading / converting the official weights (the download resumes next time)"""

    bl_idname = "motiongpt.cancel_fetch_official"
    bl_label = "Cancel"
    bl_options = {'REGISTER', 'INTERNAL'}

    def execute(self, context):
        if _fetch is None or not _fetch.running:
            self.report({'WARNING'}, "nothing is being downloaded")
            return {'CANCELLED'}
        _fetch.cancel()
        return {'FINISHED'}


def _watch_fetch():
    """Timer: redraw the preferences while the fetch runs, then apply its outcome once."""
    from .preferences import addon_preferences
    for window in bpy.context.window_manager.windows:
        for area in window.screen.areas:
            if area.type == 'PREFERENCES':
                area.tag_redraw()
    fetch = _fetch
    if fetch is None:
        return None
    if fetch.running:
        return 0.5
    error = apply_outcome(fetch, addon_preferences())
    if error:
        print(f"MotionGPT: {error}")
    return None


def draw(layout, prefs, settings: WorkerSettings) -> None:
    """The official model's rows in the preferences: licence, status, button or progress + Cancel."""
    fetch = _fetch
    if prefs.model_source == 'OFFICIAL':
        if fetch is not None and fetch.running:
            row = layout.row()
            row.progress(factor=fetch.fraction, type='BAR', text=fetch.progress_text)
            row.operator(MOTIONGPT_OT_cancel_fetch_official.bl_idname, icon='CANCEL')
        elif not is_ready(folder_for(settings)):
            layout.operator(MOTIONGPT_OT_fetch_official.bl_idname, icon='IMPORT')
    for text, icon in status_lines(prefs, settings):
        layout.label(text=text, icon=icon)


classes = (MOTIONGPT_OT_fetch_official, MOTIONGPT_OT_cancel_fetch_official)
