"""build.py, the pins in pyproject.toml, the Blender manifest and the repository layout."""
import importlib.metadata
import importlib.util
import json
import shutil
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import pytest

ALLOWED_TOP_LEVEL = {"blender_manifest.toml", "motiongpt_addon", "engine", "assets", "tests", "build.py",
                     "README.md", "pyproject.toml", "bench", ".ci", "LICENSE", ".gitignore"}


def run_build(repo_root: Path, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    """Run build.py from a foreign working directory (it must work from anywhere)."""
    return subprocess.run([sys.executable, str(repo_root / "build.py"), *args], cwd=Path("/"),
                          capture_output=True, text=True, timeout=timeout)


def blender_ext_script() -> Path:
    """bl_pkg/cli/blender_ext.py inside the installed bpy wheel, found without importing bpy."""
    spec = importlib.util.find_spec("bpy")
    assert spec is not None, "bpy is not installed in this environment: run python3 build.py setup"
    package = Path(spec.submodule_search_locations[0])
    scripts = sorted(package.glob("*/scripts/addons_core/bl_pkg/cli/blender_ext.py"))
    assert scripts, f"no blender_ext.py under {package}"
    return scripts[0]


def test_manifest_validates_with_blenders_own_tool(repo_root, tmp_path):
    script = blender_ext_script()
    tags = script.parents[3] / "modules" / "_bpy_internal" / "extensions" / "tags.py"
    assert tags.is_file(), f"Blender's tag list is missing at {tags}"
    package = tmp_path / "motiongpt"
    package.mkdir()
    shutil.copy(repo_root / "blender_manifest.toml", package)
    (package / "__init__.py").write_text("def register():\n    pass\n\n\ndef unregister():\n    pass\n")
    result = subprocess.run([sys.executable, str(script), "validate", "--valid-tags", str(tags), str(package)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Success" in result.stdout

    manifest = tomllib.loads((repo_root / "blender_manifest.toml").read_text())
    assert manifest["id"] == "motiongpt"
    assert manifest["license"] == ["SPDX:GPL-3.0-or-later"]
    assert manifest["version"] == tomllib.loads((repo_root / "pyproject.toml").read_text())["project"]["version"]


def test_manifest_with_a_bad_tagline_is_rejected(repo_root, tmp_path):
    """The validation above is real: the same tool refuses a tagline ending in punctuation."""
    package = tmp_path / "motiongpt"
    package.mkdir()
    text = (repo_root / "blender_manifest.toml").read_text()
    tagline = tomllib.loads(text)["tagline"]
    (package / "blender_manifest.toml").write_text(text.replace(tagline, tagline + "."))
    (package / "__init__.py").write_text("")
    result = subprocess.run([sys.executable, str(blender_ext_script()), "validate", str(package)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert "tagline" in result.stdout + result.stderr


def test_unknown_command_exits_non_zero_with_usage(repo_root):
    result = run_build(repo_root, "no-such-command")
    assert result.returncode != 0
    assert "unknown command 'no-such-command'" in result.stderr
    assert "usage: python3 build.py <command>" in result.stderr
    assert "Traceback" not in result.stderr


def test_setup_a_second_time_is_quick_and_up_to_date(repo_root):
    first = run_build(repo_root, "setup")  # installs only if the pins changed since the last setup
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    started = time.perf_counter()
    second = run_build(repo_root, "setup")
    seconds = time.perf_counter() - started
    assert second.returncode == 0, second.stderr
    assert ".venv is up to date" in second.stdout
    assert ".venv-bpy5 is up to date" in second.stdout
    assert "installing" not in second.stdout
    assert seconds < 5, f"an up-to-date setup took {seconds:.1f} s"


def test_installed_versions_match_the_pins(repo_root):
    """This environment (.venv) holds exactly what pyproject.toml pins, the one source of truth."""
    project = tomllib.loads((repo_root / "pyproject.toml").read_text())["project"]
    for requirement in project["dependencies"] + project["optional-dependencies"]["test"]:
        name, pinned = requirement.split("==")
        installed = importlib.metadata.version(name)
        if pinned.endswith(".*"):
            assert installed.startswith(pinned[:-1]), f"{name} {installed} does not match {requirement}"
        else:  # a local build tag such as 2.13.0+cpu satisfies ==2.13.0
            assert installed.split("+")[0] == pinned, f"{name} {installed} does not match {requirement}"


def test_demo_without_the_bundled_model_says_so(repo_root, tmp_path, monkeypatch):
    monkeypatch.setenv("MOTIONGPT_ASSETS", str(tmp_path / "assets"))  # an assets folder with no model
    result = run_build(repo_root, "demo", "a person walks forward and waves")
    assert result.returncode != 0
    assert "the bundled model is not built yet" in result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_test_command_fails_when_no_tests_are_collected(repo_root):
    result = run_build(repo_root, "test", str(repo_root / "tests" / "test_build.py"), "-k", "no_test_has_this_name")
    assert result.returncode != 0
    assert "collected no tests" in result.stderr


def test_repository_top_level_holds_only_the_agreed_entries(repo_root):
    tracked = subprocess.run(["git", "ls-files"], cwd=repo_root, capture_output=True, text=True, check=True)
    top_level = {line.split("/")[0] for line in tracked.stdout.splitlines()}
    assert top_level <= ALLOWED_TOP_LEVEL, f"unexpected top-level entries: {sorted(top_level - ALLOWED_TOP_LEVEL)}"


def test_ci_script_is_executable_in_git(repo_root):
    entry = subprocess.run(["git", "ls-files", "--stage", ".ci/run"], cwd=repo_root, capture_output=True,
                           text=True, check=True).stdout
    assert entry.startswith("100755"), f".ci/run must be committed executable, git has: {entry!r}"


def test_bench_runner_records_results_and_failures(repo_root, tmp_path, monkeypatch, capsys):
    """bench/run.py runs every bench_*.py module's run(), keeps going past a broken one, writes JSON."""
    spec = importlib.util.spec_from_file_location("bench_runner", repo_root / "bench" / "run.py")
    runner = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(runner)
    monkeypatch.setattr(runner, "BENCH_DIR", tmp_path)
    monkeypatch.setattr(runner, "RESULTS_PATH", tmp_path / "results.json")
    monkeypatch.setattr(runner, "REPO_ROOT", tmp_path)

    assert runner.main([]) == 0
    assert "no benchmarks yet" in capsys.readouterr().out

    (tmp_path / "bench_sum.py").write_text("def run():\n    return {'total': sum(range(1000)), 'ms': 1.5}\n")
    (tmp_path / "bench_broken.py").write_text("def run():\n    raise RuntimeError('no model')\n")
    assert runner.main([]) == 1
    output = capsys.readouterr().out
    assert "sum" in output and "499500" in output and "FAILED" in output
    results = json.loads((tmp_path / "results.json").read_text())["benchmarks"]
    assert results["sum"]["ok"] and results["sum"]["results"] == {"total": 499500, "ms": 1.5}
    assert results["broken"] == results["broken"] | {"ok": False, "error": "RuntimeError: no model"}

    (tmp_path / "bench_broken.py").unlink()
    assert runner.main(["sum"]) == 0
    assert set(json.loads((tmp_path / "results.json").read_text())["benchmarks"]) == {"sum"}
    assert runner.main(["nope"]) == 2
