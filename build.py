#!/usr/bin/env python3
"""MotionGPT for Blender: the project's task runner (standard library only, Python 3.11+).

usage: python3 build.py <command> [arguments]

  setup            create .venv/ (engine + Blender 4.5 tests) and .venv-bpy5/ (Blender 5.0 tests)
                   with the pinned dependencies of pyproject.toml; quick when nothing changed
  test [ARGS]      setup, then pytest tests/ in .venv and pytest tests/addon/ in .venv-bpy5;
                   ARGS go to pytest (e.g. -k bvh); paths under tests/ given in ARGS replace
                   the default folders
  demo TEXT [...]  set up .venv, then run `python -m engine demo TEXT` in it: the bundled model
                   (or --model FOLDER / $MOTIONGPT_MODEL) -> out/demo.blend, out/demo.png, out/demo.txt
  bench [NAMES]    set up .venv, then run the benchmarks in bench/ (bench/run.py)
  extension [--model FOLDER | --without-model] [--out DIR]
                   build the installable Blender extension zip dist/motiongpt-<version>.zip (add-on +
                   engine + bone maps + the bundled model assets/models/default, or FOLDER) with
                   Blender's own extension tool from the bpy wheel, then validate the zip

Works from any directory; everything runs inside the virtual environments at the repo root.
"""
from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent
STAMP_NAME = "motiongpt-setup.stamp"  # inside each venv: hash of the requirement list it was set up with
PYTEST_TIMEOUT_S = 1800  # last resort: bpy 4.5 can hang at exit (tests/conftest.py guards against it)


class BuildError(Exception):
    """A failure with a message for the user; main() prints it as one line and exits 1."""


# ----------------------------------------------------------------------------- environments

@dataclass(frozen=True)
class Environment:
    folder: Path
    purpose: str
    requirements: tuple[str, ...]
    no_deps: tuple[str, ...] = ()      # installed after, with --no-deps ([tool.motiongpt] no-deps)

    @property
    def name(self) -> str:
        return self.folder.name

    @property
    def python(self) -> Path:
        return self.folder / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def environments() -> dict[str, Environment]:
    """The two virtual environments, keyed by folder name, with their pins from pyproject.toml."""
    import tomllib
    with open(ROOT / "pyproject.toml", "rb") as file:
        pyproject = tomllib.load(file)
    project = pyproject["project"]
    extras = project["optional-dependencies"]
    main = Environment(ROOT / ".venv", "engine + Blender 4.5 LTS tests",
                       tuple(project["dependencies"]) + tuple(extras["test"]),
                       tuple(pyproject.get("tool", {}).get("motiongpt", {}).get("no-deps", [])))
    blender5 = Environment(ROOT / ".venv-bpy5", "Blender 5.0 tests, no torch", tuple(extras["blender5-test"]))
    return {main.name: main, blender5.name: blender5}


def setup_hash(env: Environment) -> str:
    """What a finished setup of env is keyed by: its pins and where the checkout lives (the .pth file)."""
    return hashlib.sha256("\n".join(env.requirements + env.no_deps + (str(ROOT),)).encode()).hexdigest()


def link_checkout(env: Environment) -> None:
    """Put the repository root on env's sys.path (a .pth file), so `python -m engine` works from any folder."""
    result = subprocess.run([str(env.python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                            capture_output=True, text=True)
    if result.returncode != 0:
        raise BuildError(f"cannot find the site-packages folder of {env.folder}: {result.stderr.strip()}")
    (Path(result.stdout.strip()) / "motiongpt-checkout.pth").write_text(f"{ROOT}\n")


@contextmanager
def setup_lock():
    """One setup at a time per checkout (several people or test runs may call it at once)."""
    try:
        import fcntl
    except ImportError:  # Windows: no locking
        yield
        return
    key = hashlib.sha256(str(ROOT).encode()).hexdigest()[:12]
    with open(Path(tempfile.gettempdir()) / f"motiongpt-setup-{key}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def python_version(python: Path) -> str:
    result = subprocess.run([str(python), "-c", "import sys; print(sys.version.split()[0])"],
                            capture_output=True, text=True)
    return result.stdout.strip() or "unknown"


def setup_environment(env: Environment) -> None:
    """Create env.folder if missing and pip-install its pins; nothing to do when the stamp matches."""
    stamp = env.folder / STAMP_NAME
    wanted = setup_hash(env)
    if env.python.exists() and stamp.exists() and stamp.read_text().strip() == wanted:
        print(f"setup: {env.name} is up to date ({len(env.requirements)} pinned requirements)")
        return
    if not env.python.exists():
        print(f"setup: creating {env.name}/ ({env.purpose}) with {sys.executable} "
              f"(Python {sys.version.split()[0]})", flush=True)
        result = subprocess.run([sys.executable, "-m", "venv", str(env.folder)])
        if result.returncode != 0 or not env.python.exists():
            raise BuildError(f"could not create {env.folder} with `{sys.executable} -m venv` "
                             f"(exit {result.returncode}); on Debian/Ubuntu install python3-venv")
    print(f"setup: installing into {env.name}/: {' '.join(env.requirements)}", flush=True)
    started = time.perf_counter()
    result = subprocess.run([str(env.python), "-m", "pip", "install", "--progress-bar", "off",
                             *env.requirements])
    if result.returncode == 0 and env.no_deps:
        print(f"setup: installing into {env.name}/ without their declared dependencies: {' '.join(env.no_deps)}",
              flush=True)
        result = subprocess.run([str(env.python), "-m", "pip", "install", "--progress-bar", "off", "--no-deps",
                                 *env.no_deps])
    if result.returncode != 0:
        version = python_version(env.python)
        hint = "" if version.startswith("3.11.") else (f"; note: {env.name} runs Python {version}, but the "
                                                       f"bpy 4.5 / 5.0 wheels exist for Python 3.11 only")
        raise BuildError(f"pip failed (exit {result.returncode}) installing into {env.folder}; "
                         f"pip's output above says why{hint}")
    link_checkout(env)
    stamp.write_text(wanted + "\n")
    print(f"setup: {env.name} ready ({time.perf_counter() - started:.0f} s)")


def setup(names: tuple[str, ...] = (".venv", ".venv-bpy5")) -> dict[str, Environment]:
    """Set up the named environments (all by default); returns every environment by name."""
    envs = environments()
    with setup_lock():
        for name in names:
            setup_environment(envs[name])
    return envs


# ----------------------------------------------------------------------------- commands

def command_setup(args: list[str]) -> int:
    if args:
        raise BuildError(f"setup takes no arguments, got {' '.join(args)}")
    setup()
    return 0


# pytest options that take a value (which may look like a path but is not a test target)
PYTEST_VALUE_OPTIONS = {"--ignore", "--ignore-glob", "--deselect", "--rootdir", "--confcutdir", "--basetemp",
                        "-c", "-p", "-k", "-m", "-o"}


def split_pytest_args(args: list[str]) -> tuple[list[tuple[Path, str]], list[str]]:
    """Split pytest arguments into test targets and everything else.

    A target is an existing path under tests/ (optionally with ::test_name); it is returned as
    (resolved path, absolute target string) because pytest runs from the repo root.
    """
    targets, options = [], []
    for i, arg in enumerate(args):
        path_part, _, node = arg.partition("::")
        path = Path(path_part).resolve()
        is_option_value = i > 0 and args[i - 1] in PYTEST_VALUE_OPTIONS
        if not arg.startswith("-") and not is_option_value and path.exists() and path.is_relative_to(ROOT / "tests"):
            targets.append((path, str(path) + ("::" + node if node else "")))
        else:
            options.append(arg)
    return targets, options


def has_tests(folder: Path) -> bool:
    return folder.is_dir() and (any(folder.rglob("test_*.py")) or any(folder.rglob("*_test.py")))


def command_test(args: list[str]) -> int:
    envs = setup()
    targets, options = split_pytest_args(args)
    addon = ROOT / "tests" / "addon"
    if targets:
        main_targets = [target for _, target in targets]
        addon_targets = [target for path, target in targets if path.is_relative_to(addon)]
    else:
        main_targets = ["tests"]
        addon_targets = ["tests/addon"] if has_tests(addon) else []
    runs = [(envs[".venv"], main_targets)]
    if addon_targets:
        runs.append((envs[".venv-bpy5"], addon_targets))
    else:
        print("test: no tests under tests/addon in this run, so nothing runs on bpy 5.0")

    NO_TESTS_COLLECTED = 5
    codes = []
    for env, paths in runs:
        print(f"\ntest: pytest {' '.join(paths + options)}  [{env.name}: {env.purpose}]", flush=True)
        try:
            code = subprocess.run([str(env.python), "-m", "pytest", *paths, *options], cwd=ROOT,
                                  timeout=PYTEST_TIMEOUT_S).returncode
        except subprocess.TimeoutExpired:
            raise BuildError(f"pytest in {env.name} did not finish within {PYTEST_TIMEOUT_S} s (a test that "
                             f"leaves a Blender class or timer registered makes bpy 4.5 hang at exit)")
        codes.append(code)
        if code < 0:
            raise BuildError(f"pytest in {env.name} was killed by signal {-code}")
    failed = [(env.name, code) for (env, _), code in zip(runs, codes) if code not in (0, NO_TESTS_COLLECTED)]
    if failed:  # both runs have reported by now, so one failure does not hide the other run's result
        print("test: FAILED in " + ", ".join(f"{name} (pytest exit {code})" for name, code in failed), file=sys.stderr)
        return failed[0][1]
    # "No tests collected" is a failure, unless pytest options (-k ...) selected nothing in one of
    # the two runs while the other ran tests.
    if all(code == NO_TESTS_COLLECTED for code in codes) or (not options and NO_TESTS_COLLECTED in codes):
        print("test: FAILED: pytest collected no tests", file=sys.stderr)
        return 1
    print("\ntest: all passed" + (" (bpy 4.5 in .venv and bpy 5.0 in .venv-bpy5)" if len(runs) == 2 else ""))
    return 0


def command_demo(args: list[str]) -> int:
    if not args:
        raise BuildError('demo needs a text prompt: python3 build.py demo "a person walks forward and waves"')
    envs = setup((".venv",))
    return subprocess.run([str(envs[".venv"].python), "-m", "engine", "demo", *args], cwd=ROOT).returncode


def command_bench(args: list[str]) -> int:
    envs = setup((".venv",))
    return subprocess.run([str(envs[".venv"].python), str(ROOT / "bench" / "run.py"), *args], cwd=ROOT).returncode


# ----------------------------------------------------------------------------- extension

EXTENSION_MODEL_PARTS = ("config.json", "tokenizer", "lm")   # what makes a folder a model folder


def blender_extension_tool(env: Environment) -> tuple[Path, Path]:
    """(blender_ext.py, tags.py) shipped inside env's bpy wheel (found without importing bpy)."""
    result = subprocess.run([str(env.python), "-c", "import importlib.util; "
                             "print(importlib.util.find_spec('bpy').submodule_search_locations[0])"],
                            capture_output=True, text=True)
    if result.returncode != 0:
        raise BuildError(f"bpy is not installed in {env.folder}; run `python3 build.py setup`")
    bpy_folder = Path(result.stdout.strip())
    tools = sorted(bpy_folder.glob("*/scripts/addons_core/bl_pkg/cli/blender_ext.py"))
    tags = sorted(bpy_folder.glob("*/scripts/modules/_bpy_internal/extensions/tags.py"))
    if not tools or not tags:
        raise BuildError(f"Blender's extension tool (bl_pkg/cli/blender_ext.py) is missing from {bpy_folder}")
    return tools[-1], tags[-1]


def parse_extension_args(args: list[str]) -> tuple[Path | None, bool, Path]:
    """(model folder or None for the bundled one, without_model, output folder)."""
    model, without_model, out = None, False, ROOT / "dist"
    rest = list(args)
    while rest:
        arg = rest.pop(0)
        if arg in ("--model", "--out"):
            if not rest:
                raise BuildError(f"{arg} needs a folder")
            value = Path(rest.pop(0)).expanduser().resolve()
            if arg == "--model":
                model = value
            else:
                out = value
        elif arg == "--without-model":
            without_model = True
        else:
            raise BuildError(f"unknown argument {arg!r}; usage: extension [--model FOLDER | --without-model] "
                             f"[--out DIR]")
    if model is not None and without_model:
        raise BuildError("--model and --without-model exclude each other")
    return model, without_model, out


def check_model_folder(folder: Path) -> None:
    missing = [part for part in EXTENSION_MODEL_PARTS if not (folder / part).exists()]
    if missing:
        raise BuildError(f"{folder} is not a MotionGPT model folder (missing: {', '.join(missing)})")


def stage_extension(staging: Path, model: Path | None) -> None:
    """Lay out the extension's source folder: the add-on package at the top (it is the extension's
    Python package), the manifest, the engine package and the assets inside it. The add-on's
    __init__ puts its own folder on sys.path when it holds engine/, so `import engine` finds the
    packaged engine, and the engine finds assets/ next to itself."""
    import shutil
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", ".*")
    shutil.copytree(ROOT / "motiongpt_addon", staging, ignore=ignore)
    shutil.copy2(ROOT / "blender_manifest.toml", staging / "blender_manifest.toml")
    shutil.copy2(ROOT / "LICENSE", staging / "LICENSE")
    shutil.copytree(ROOT / "engine", staging / "engine", ignore=ignore)
    shutil.copytree(ROOT / "assets" / "bone_maps", staging / "assets" / "bone_maps", ignore=ignore)
    shutil.copytree(ROOT / "assets" / "motiongpt_meta", staging / "assets" / "motiongpt_meta", ignore=ignore)
    if model is not None:
        shutil.copytree(model, staging / "assets" / "models" / "default", ignore=ignore)


def command_extension(args: list[str]) -> int:
    import zipfile
    model, without_model, out = parse_extension_args(args)
    if model is None and not without_model:
        model = ROOT / "assets" / "models" / "default"
        if not (model / "config.json").is_file():
            raise BuildError("the bundled model is not built yet (assets/models/default/config.json is missing); "
                             "train it first, pass --model FOLDER to bundle another model folder, or "
                             "--without-model for a zip whose users pick a model in the preferences")
    if model is not None:
        check_model_folder(model)
    envs = setup((".venv",))
    tool, tags = blender_extension_tool(envs[".venv"])
    started = time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)            # blender_ext.py build does not create it
    with tempfile.TemporaryDirectory(prefix="motiongpt-extension-") as folder:
        staging = Path(folder) / "motiongpt"
        stage_extension(staging, model)
        for step in (["validate", str(staging)],
                     ["build", "--source-dir", str(staging), "--output-dir", str(out), "--valid-tags", str(tags)]):
            result = subprocess.run([sys.executable, str(tool), *step], capture_output=True, text=True)
            if result.returncode != 0:
                raise BuildError(f"blender_ext.py {step[0]} failed: "
                                 f"{(result.stdout + result.stderr).strip().splitlines()[-1:]}")
    import tomllib
    with open(ROOT / "blender_manifest.toml", "rb") as file:
        manifest = tomllib.load(file)
    package = out / f"{manifest['id']}-{manifest['version']}.zip"
    result = subprocess.run([sys.executable, str(tool), "validate", "--valid-tags", str(tags), str(package)],
                            capture_output=True, text=True)
    if result.returncode != 0:
        raise BuildError(f"the built zip {package} does not validate: {(result.stdout + result.stderr).strip()}")
    with zipfile.ZipFile(package) as archive:
        names = archive.namelist()
        unpacked = sum(info.file_size for info in archive.infolist())
    print(f"extension: built and validated {package}")
    print(f"extension: {package.stat().st_size / 1e6:.2f} MB zipped, {unpacked / 1e6:.2f} MB unpacked, "
          f"{len(names)} files; model: {model if model is not None else 'none (--without-model)'}; "
          f"{time.perf_counter() - started:.1f} s")
    print("extension: install it in Blender 4.2+ with Edit > Preferences > Get Extensions > Install from Disk")
    return 0


COMMANDS = {
    "setup": command_setup,
    "test": command_test,
    "demo": command_demo,
    "bench": command_bench,
    "extension": command_extension,
}


def main(argv: list[str]) -> int:
    if sys.version_info < (3, 11):
        print(f"build.py: error: needs Python 3.11 or newer (tomllib); this is {sys.version.split()[0]}",
              file=sys.stderr)
        return 1
    if not argv:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    if argv[0] in ("-h", "--help", "help"):
        print(__doc__.strip())
        return 0
    command, args = argv[0], argv[1:]
    if command not in COMMANDS:
        print(f"build.py: error: unknown command {command!r}\n\n{__doc__.strip()}", file=sys.stderr)
        return 2
    try:
        return COMMANDS[command](args)
    except BuildError as error:
        print(f"build.py {command}: error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"build.py {command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
