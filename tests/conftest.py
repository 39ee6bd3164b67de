"""Fixtures shared by every test folder: where the repository and the real mocap data are.

The data lives beside the checkout, at ../shared/data (CI clones the repo next to ../shared).
It is never copied into the repository and its absence is a failure, never a skip.
"""
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
