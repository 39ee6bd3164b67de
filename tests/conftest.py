"""Fixtures shared by every test folder: where the repository and the real mocap data are.

The data lives beside the checkout, at ../shared/data (CI clones the repo next to ../shared).
It is never copied into the repository and its absence is a failure, never a skip.
"""
import atexit
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def repo_root() -> Path:
    """The repository root (the folder holding build.py)."""
    return REPO_ROOT


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """../shared/data relative to the repository root: bandai/, cmu/, humanml3d/, motiongpt_meta/."""
    data = REPO_ROOT.parent / "shared" / "data"
    if not data.is_dir():
        pytest.fail(f"the shared mocap data is missing: expected the folder {data} "
                    f"(../shared/data beside the repository checkout)", pytrace=False)
    return data


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    """A tiny randomly initialised model folder (tokenizer/ + lm/ + config.json), built once per
    session by tests/support/tiny_model.py with the engine's own code, in the torch venv (.venv),
    so that tests running under the bpy 5.0 venv, which has no torch, get one too."""
    folder = tmp_path_factory.mktemp("models") / "tiny"
    torch_python = REPO_ROOT / ".venv" / "bin" / "python"
    subprocess.run([str(torch_python), str(REPO_ROOT / "tests" / "support" / "tiny_model.py"), str(folder)],
                   check=True, capture_output=True, timeout=300)
    return folder


# ----------------------------------------------------------------------------- leaving a bpy process

def pytest_sessionfinish(session):
    """In a process that imported bpy, end with os._exit once Python starts shutting down.

    bpy 4.2-4.5 can hang (4.5: forever, in the static destructor GlobalState::~GlobalState) or
    crash at process exit; /work/shared/notes/blender.md "EXIT TRAP" gives os._exit as the fix.
    Seen here: pytest on tests/addon + tests/engine/test_convert.py (bpy 4.5.15 next to torch)
    printed "54 passed" and then never exited. The atexit handler runs after pytest has printed
    everything and restored its output capture; the exit code stays pytest's.
    """
    if "bpy" in sys.modules:
        atexit.register(exit_without_blender_teardown, session)


def exit_without_blender_teardown(session) -> None:
    for stream in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__):
        stream.flush()
    os._exit(int(session.exitstatus))
