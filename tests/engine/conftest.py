"""Fixtures shared by the MotionGPT model tests: a tiny real model folder (tests/engine/tiny_models.py),
that folder loaded, and the real reference clip 012314. Module-scoped: each test module gets its own."""
import pytest

from engine.model import MotionGPT
from tests.engine.tiny_models import serve, tiny_model_folder


@pytest.fixture(scope="module")
def folder(tmp_path_factory, shared_data):
    return tiny_model_folder(tmp_path_factory.mktemp("tiny_model"), shared_data)


@pytest.fixture(scope="module")
def model(folder):
    return MotionGPT.from_pretrained(folder, device="cpu")


@pytest.fixture(scope="module")
def clip(shared_data):
    return serve(shared_data)
