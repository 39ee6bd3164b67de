"""engine.official and ``--model official``, offline, against a Hugging Face cache prepared here.

The cache holds a checkpoint in the official layout (tests/support/official_checkpoint.py: the
notes' key TSV, full-size VQ-VAE, a small T5 with the official names and vocabulary) and a
flan-t5-layout tokenizer, where huggingface_hub would have put them after a download; the real
``hf_hub_download(local_files_only=True)`` finds them. No network is used (HF_HUB_OFFLINE=1).
"""
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from engine import MotionError
from engine.official import (CHECKPOINT_NAME, PARTIAL_PREFIX, READY_MARKER, Cancelled, ensure_official_model,
                             is_ready, official_folder, progress_bar_class)
from tests.support.official_checkpoint import (CHECKPOINT_REPO, TOKENIZER_REPO, hub_snapshot,
                                               prepare_hub_cache)

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def prepared_hub(tmp_path_factory) -> Path:
    """One prepared cache (its ``hub`` folder), shared read-only by the tests of this module."""
    return prepare_hub_cache(tmp_path_factory.mktemp("prepared")) / "hub"


@pytest.fixture()
def home(tmp_path, prepared_hub, monkeypatch) -> Path:
    """A fresh HF_HOME whose hub cache is the prepared one; downloads are off."""
    folder = tmp_path / "hf-home"
    folder.mkdir()
    (folder / "hub").symlink_to(prepared_hub, target_is_directory=True)
    monkeypatch.setenv("HF_HOME", str(folder))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return folder


def leftovers(home: Path) -> list[str]:
    """Anything besides the hub cache that a run left in HF_HOME."""
    return sorted(path.name for path in home.iterdir() if path.name != "hub")


def copy_tokenizer(prepared_hub: Path, home: Path) -> None:
    """Put the prepared cache's flan-t5-layout tokenizer into ``home``'s hub cache."""
    target = hub_snapshot(home, TOKENIZER_REPO)
    for source in hub_snapshot(prepared_hub.parent, TOKENIZER_REPO).iterdir():
        shutil.copyfile(source, target / source.name)


def cli(*args: str, env: dict, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "engine", *args], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=timeout)


def test_first_use_converts_from_the_cache_loads_and_generates(home):
    steps = []
    folder = ensure_official_model(home, online=False, progress=lambda step, done, total: steps.append(step))
    assert folder == official_folder(home) == home / "motiongpt-base" and is_ready(folder)
    assert steps == ["convert", "check"]                      # everything was in the cache: no download
    assert {p.name for p in folder.iterdir()} >= {"config.json", "tokenizer", "lm", READY_MARKER}
    assert leftovers(home) == ["motiongpt-base"]              # no temporary folder left
    from engine.model import MotionGPT
    model = MotionGPT.from_pretrained(folder, device="cpu")
    motion = model.text_to_motion("a person walks forward", seconds=2.0, seed=0)
    assert motion.num_frames >= 4 and motion.joints.shape[1:] == (22, 3)
    # a second call finds the converted folder and does nothing
    stamp = (folder / READY_MARKER).stat().st_mtime_ns
    steps.clear()
    assert ensure_official_model(home, online=False, progress=lambda *a: steps.append(a)) == folder
    assert steps == [] and (folder / READY_MARKER).stat().st_mtime_ns == stamp


def test_cli_model_official_converts_on_first_use_then_fetch_official_does_nothing(home, tmp_path):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    out = tmp_path / "walk.bvh"
    result = cli("generate", "a person walks forward", "--model", "official", "--seconds", "2", "--seed", "1",
                 "--device", "cpu", "--out", str(out), env=env)
    assert result.returncode == 0, result.stderr
    assert out.read_text().startswith("HIERARCHY") and is_ready(home / "motiongpt-base")
    again = cli("fetch-official", env=env)
    assert again.returncode == 0, again.stderr
    assert again.stdout.splitlines() == [f"ready {home / 'motiongpt-base'}"]


def test_offline_without_the_weights_is_one_message_naming_what_to_run(tmp_path, monkeypatch):
    empty = tmp_path / "empty-home"
    monkeypatch.setenv("HF_HOME", str(empty))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(MotionError, match="not downloaded yet.*python -m engine fetch-official"):
        ensure_official_model()
    assert not official_folder().exists()
    result = cli("generate", "a person jumps", "--model", "official", "--out", str(tmp_path / "j.bvh"),
                 env={**os.environ, "PYTHONPATH": str(REPO)})
    assert result.returncode == 2 and result.stdout == ""
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
    assert "fetch-official" in result.stderr and CHECKPOINT_REPO in result.stderr
    assert not (tmp_path / "j.bvh").exists()


def test_a_checkpoint_that_would_run_code_is_refused_and_nothing_is_kept(tmp_path, prepared_hub, monkeypatch):
    payload_ran = tmp_path / "payload_ran"

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {payload_ran}",))

    home = tmp_path / "evil-home"
    torch.save({"state_dict": {"vae.x": torch.zeros(2)}, "hyper_parameters": Payload()},
               hub_snapshot(home, CHECKPOINT_REPO) / CHECKPOINT_NAME)
    copy_tokenizer(prepared_hub, home)
    with pytest.raises(MotionError, match=r"could not be converted.*refusing to load.*system"):
        ensure_official_model(home, online=False)
    assert not payload_ran.exists()
    assert leftovers(home) == []                              # no model folder, no marker, no partial folder


def test_a_truncated_download_is_one_message_and_nothing_is_kept(tmp_path, prepared_hub):
    home = tmp_path / "broken-home"
    whole = (hub_snapshot(prepared_hub.parent, CHECKPOINT_REPO) / CHECKPOINT_NAME).read_bytes()
    (hub_snapshot(home, CHECKPOINT_REPO) / CHECKPOINT_NAME).write_bytes(whole[: len(whole) // 2])
    copy_tokenizer(prepared_hub, home)
    with pytest.raises(MotionError, match=r"could not be converted: .*motiongpt_s3_h3d.tar"):
        ensure_official_model(home, online=False)
    assert leftovers(home) == []


def test_cancel_during_the_conversion_leaves_no_folder_and_a_later_run_converts(home):
    steps = []
    with pytest.raises(Cancelled, match="cancelled"):
        ensure_official_model(home, online=False, progress=lambda step, *_: steps.append(step),
                              cancelled=lambda: "convert" in steps)
    assert leftovers(home) == []
    assert is_ready(ensure_official_model(home, online=False))


def test_a_killed_fetch_leaves_nothing_that_passes_for_a_model(home):
    """The add-on's Cancel kills the process: whatever it left is removed, never used."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    process = subprocess.Popen([sys.executable, "-m", "engine", "fetch-official"], cwd=REPO, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert process.stdout.readline().strip() == "progress convert"
        time.sleep(0.5)                                       # let it write part of the temporary folder
    finally:
        process.kill()
        process.wait(30)
    assert not is_ready(official_folder(home)) and not official_folder(home).exists()
    # what a crash may leave: a partial folder and a model-looking folder without the marker
    (home / f"{PARTIAL_PREFIX}999999").mkdir(exist_ok=True)
    fake = official_folder(home)
    fake.mkdir()
    (fake / "config.json").write_text("{}")
    folder = ensure_official_model(home, online=False)
    assert is_ready(folder) and leftovers(home) == ["motiongpt-base"]


def test_too_little_disk_space_is_one_clear_message_before_anything_is_written(home):
    with pytest.raises(MotionError, match=r"not enough disk space .* needs about .* GB .* GB are free"):
        ensure_official_model(home, online=False, required_bytes=10 ** 18)
    assert leftovers(home) == []


def test_download_progress_reports_bytes_and_stops_when_cancelled():
    seen = []
    stop = {"now": False}
    bar = progress_bar_class(lambda *a: seen.append(a), lambda: stop["now"])(total=1000, unit="B")
    bar.update(400)
    assert seen == [("download", 400, 1000)]
    stop["now"] = True
    with pytest.raises(Cancelled, match="resumes next time"):
        bar.update(100)
    bar.close()
