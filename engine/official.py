"""The official MotionGPT weights, downloaded and converted once into the cache.

    python -m engine fetch-official [--cache-dir HF_HOME] [--offline]
    python -m engine generate "a person jumps" --model official --out jump.bvh

``ensure_official_model`` gets OpenMotionLab/MotionGPT-base's ``motiongpt_s3_h3d.tar`` and
google/flan-t5-base's tokenizer files with huggingface_hub into ``HF_HOME/hub`` (resumable; with
``online=False`` only the cache is read), converts them with ``engine.convert`` into
``HF_HOME/motiongpt-base/`` and loads the result once. The folder counts as a model only when it
holds the marker file ``MOTIONGPT_READY``: the conversion runs in a temporary sibling folder, the
marker is written after the load check, and one rename then puts the folder in place, so an
interrupted run (cancel, crash, full disk) never leaves a folder that looks like a model.

Progress lines of ``fetch-official`` (stdout, one per line, for the add-on)::

    progress download BYTES_DONE BYTES_TOTAL
    progress convert
    progress check
    ready FOLDER

Only the standard library is imported at module level: the add-on (no torch) imports
``official_folder`` and ``is_ready`` from here.
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path
from typing import Callable

from .errors import MotionError

CHECKPOINT_REPO = "OpenMotionLab/MotionGPT-base"
CHECKPOINT_NAME = "motiongpt_s3_h3d.tar"
TOKENIZER_REPO = "google/flan-t5-base"
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json")   # what the fast T5 tokenizer reads
FOLDER_NAME = "motiongpt-base"
READY_MARKER = "MOTIONGPT_READY"
PARTIAL_PREFIX = f".{FOLDER_NAME}.partial-"
DOWNLOAD_BYTES = 1_340_000_000     # motiongpt_s3_h3d.tar, 1.24 GiB
CONVERTED_BYTES = 1_000_000_000    # tokenizer/ + lm/ in float32 (vae + T5 without the evaluators)
REQUIRED_BYTES = DOWNLOAD_BYTES + CONVERTED_BYTES   # "about 2.3 GB"
COMMAND_HINT = "python -m engine fetch-official"

Progress = Callable[[str, int, int], None]   # (step, done, total): "download" bytes, "convert", "check"


class Cancelled(MotionError):
    """The caller's ``cancelled()`` returned True; nothing half-done is left behind."""


def default_cache_dir() -> Path:
    """huggingface_hub's HF_HOME: $HF_HOME, else $XDG_CACHE_HOME/huggingface, else ~/.cache/huggingface
    (the same rule as huggingface_hub.constants, without importing it)."""
    home = os.environ.get("HF_HOME") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "huggingface")
    return Path(os.path.expandvars(os.path.expanduser(home)))


def official_folder(cache_dir: str | Path | None = None) -> Path:
    """``<cache>/motiongpt-base``: where the converted official model lives (HF_HOME by default)."""
    return (Path(cache_dir).expanduser() if cache_dir else default_cache_dir()) / FOLDER_NAME


def is_ready(folder: str | Path) -> bool:
    """True when ``folder`` is a finished conversion (it holds the READY marker)."""
    return (Path(folder) / READY_MARKER).is_file()


def offline_from_environment() -> bool:
    """HF_HUB_OFFLINE / TRANSFORMERS_OFFLINE set to a true value."""
    value = os.environ.get("HF_HUB_OFFLINE") or os.environ.get("TRANSFORMERS_OFFLINE") or ""
    return value.strip().lower() in ("1", "true", "yes", "on")


def ensure_official_model(cache_dir: str | Path | None = None, online: bool | None = None,
                          progress: Progress | None = None, cancelled: Callable[[], bool] | None = None,
                          required_bytes: int = REQUIRED_BYTES, stats_dir: str | Path | None = None) -> Path:
    """The converted official model folder, downloading and converting it first when needed.

    ``online`` None: online unless HF_HUB_OFFLINE is set. ``required_bytes`` is the free space the
    download plus the conversion need (checked before anything is written). ``cancelled`` is polled
    during the download and between the steps. Every failure is one ``MotionError``.
    """
    folder = official_folder(cache_dir)
    if is_ready(folder):
        return folder
    online = not offline_from_environment() if online is None else online
    progress = progress or (lambda step, done, total: None)
    cancelled = cancelled or (lambda: False)
    remove_leftovers(folder)
    hub_cache = folder.parent / "hub"

    checkpoint = cached_file(hub_cache, CHECKPOINT_REPO, CHECKPOINT_NAME)
    if checkpoint is None and not online:
        raise MotionError(f"the official MotionGPT weights are not downloaded yet ({CHECKPOINT_REPO} is not in "
                          f"the cache {hub_cache}) and downloads are off (HF_HUB_OFFLINE or Blender's Allow "
                          f"Online Access): run '{COMMAND_HINT}' with network access, or press Download and "
                          "Convert in the add-on preferences with online access allowed")
    check_disk_space(folder.parent, required_bytes - (DOWNLOAD_BYTES if checkpoint is not None else 0))
    if checkpoint is None:
        checkpoint = download(hub_cache, CHECKPOINT_REPO, CHECKPOINT_NAME, online, progress, cancelled)
    tokenizer_folder = None
    for name in TOKENIZER_FILES:
        path = cached_file(hub_cache, TOKENIZER_REPO, name) or \
            download(hub_cache, TOKENIZER_REPO, name, online, progress, cancelled)
        tokenizer_folder = path.parent
    if cancelled():
        raise Cancelled("cancelled before the conversion; the download is kept in the cache")
    return convert_into_place(checkpoint, tokenizer_folder, folder, stats_dir, progress, cancelled)


def remove_leftovers(folder: Path) -> None:
    """Delete a model folder without the READY marker and the temporary folders of interrupted runs
    (one fetch at a time per cache: a second process started meanwhile would remove the first's)."""
    stale = [folder] if folder.exists() else []
    if folder.parent.is_dir():
        stale += [path for path in folder.parent.iterdir() if path.name.startswith(PARTIAL_PREFIX)]
    for path in stale:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)


def check_disk_space(where: Path, needed: int) -> None:
    """MotionError naming the sizes when the disk holding ``where`` has less than ``needed`` bytes free."""
    where.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(where).free
    if free < needed:
        raise MotionError(f"not enough disk space for the official MotionGPT model in {where}: it needs about "
                          f"{needed / 1e9:.1f} GB (download + converted model), {free / 1e9:.1f} GB are free; "
                          "free some space or choose another Cache Folder")


def cached_file(hub_cache: Path, repo_id: str, filename: str) -> Path | None:
    """The file from the huggingface_hub cache, or None when it is not there (no network)."""
    from huggingface_hub import hf_hub_download
    try:
        return Path(hf_hub_download(repo_id, filename, cache_dir=str(hub_cache), local_files_only=True))
    except Exception:   # LocalEntryNotFoundError and friends: not cached
        return None


def download(hub_cache: Path, repo_id: str, filename: str, online: bool, progress: Progress,
             cancelled: Callable[[], bool]) -> Path:
    """``hf_hub_download`` with byte progress; a cancelled or broken download resumes next time."""
    if not online:
        raise MotionError(f"{repo_id}/{filename} is not in the cache {hub_cache} and downloads are off; "
                          f"run '{COMMAND_HINT}' with network access")
    from huggingface_hub import hf_hub_download
    try:
        return Path(hf_hub_download(repo_id, filename, cache_dir=str(hub_cache),
                                    tqdm_class=progress_bar_class(progress, cancelled)))
    except Cancelled:
        raise
    except OSError as error:
        if error.errno == 28:   # ENOSPC
            raise MotionError(f"the disk is full while downloading {filename} into {hub_cache}; free some "
                              "space and try again (the download resumes)") from None
        raise MotionError(f"cannot download {filename} from {repo_id}: {type(error).__name__}: {error} "
                          "(the download resumes next time)") from None
    except Exception as error:  # offline, network, missing repo: one message
        raise MotionError(f"cannot download {filename} from {repo_id}: {type(error).__name__}: {error} "
                          "(the download resumes next time)") from None


def progress_bar_class(progress: Progress, cancelled: Callable[[], bool]):
    """A silent tqdm class for hf_hub_download that reports bytes and stops when cancelled (for a
    Xet-stored file the updates come from hf_xet's callback, where raising may not stop it: the
    add-on cancels by killing the process)."""
    from tqdm import tqdm

    class Bar(tqdm):
        def __init__(self, *args, **kwargs):
            kwargs.pop("name", None)
            super().__init__(*args, **{**kwargs, "disable": False, "file": open(os.devnull, "w")})

        def update(self, n=1):
            result = super().update(n)
            progress("download", int(self.n), int(self.total or 0))
            if cancelled():
                raise Cancelled("download cancelled; it resumes next time")
            return result

        def close(self):
            file = self.fp
            super().close()
            file.close()

    return Bar


def convert_into_place(checkpoint: Path, tokenizer_folder: Path, folder: Path, stats_dir: str | Path | None,
                       progress: Progress, cancelled: Callable[[], bool]) -> Path:
    """Convert into a temporary sibling, load it once, write the marker, rename it to ``folder``."""
    from .formats.bone_maps import assets_dir
    from .convert import convert_motiongpt
    from .model import MotionGPT

    partial = folder.parent / f"{PARTIAL_PREFIX}{os.getpid()}"
    try:
        progress("convert", 0, 1)
        try:
            convert_motiongpt(checkpoint, stats_dir or assets_dir() / "motiongpt_meta", partial,
                              text_tokenizer=tokenizer_folder)
        except MotionError as error:
            raise MotionError(f"the official checkpoint could not be converted: {error}") from None
        if cancelled():
            raise Cancelled("cancelled during the conversion; nothing was kept")
        progress("check", 0, 1)
        MotionGPT.from_pretrained(partial, device="cpu")
        (partial / READY_MARKER).write_text(f"{CHECKPOINT_REPO}/{CHECKPOINT_NAME}\n", encoding="utf-8")
        os.replace(partial, folder)
    except OSError as error:
        if error.errno == 28:
            raise MotionError(f"the disk is full while converting into {folder.parent}; free some space and "
                              "try again") from None
        raise
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    return folder


# ----------------------------------------------------------------------------- command line

def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--cache-dir", default=None, help="HF_HOME-style cache folder (default: HF_HOME)")
    parser.add_argument("--offline", action="store_true", help="use only the cache (also: HF_HUB_OFFLINE=1)")


def run(args: argparse.Namespace) -> int:
    """Print progress lines and ``ready FOLDER``; errors go through the CLI as one line."""
    def report(step: str, done: int, total: int) -> None:
        print(f"progress {step} {done} {total}" if step == "download" else f"progress {step}", flush=True)

    folder = ensure_official_model(args.cache_dir, online=False if args.offline else None, progress=report)
    print(f"ready {folder}", flush=True)
    return 0


def register_commands(register) -> None:
    """Add ``fetch-official`` to ``python -m engine``."""
    register("fetch-official", run, add_arguments,
             help=f"download {CHECKPOINT_REPO} once and convert it into HF_HOME/{FOLDER_NAME} (--model official)")


if __name__ == "__main__":   # pragma: no cover - use python -m engine fetch-official
    from .__main__ import main
    sys.exit(main(["fetch-official", *sys.argv[1:]]))
