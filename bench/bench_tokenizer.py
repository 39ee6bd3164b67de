"""The motion tokenizer: reconstruction per data source, on captures never trained on, and speed.

- reconstruction MPJPE (mm) of whole clips (encoded, decoded, turned into joints and compared with
  the ground-truth joints), with the global root path, with the pelvis aligned ("local") and with
  the pelvis and the heading aligned ("body": the pose alone; a 40 s playground take's root path
  drifts in heading, which turns the whole body and counts in "local"), on
  the validation split of the built dataset ($MOTIONGPT_CACHE/dataset, default cache/dataset;
  ``python -m engine.data build``) per source (Bandai, CMU, HDM05, CMU prediction), and on its
  test split: every take of an HDM05 actor no model was trained on (``engine.data.HDM05_TEST_ACTOR``);
- the same pelvis-aligned MPJPE on windows of 9.8 s (``WINDOW_FRAMES``: the most the model
  generates or describes at once), each window encoded and decoded on its own and compared with
  the joints of its own features ("window"): what a user's clip goes through, without the
  heading drift of a whole long take;
- codebook usage on the validation clips: perplexity and distinct codes used;
- encode + decode time for 10 s of motion (200 feature frames at 20 fps) on the CPU.

The bundled tokenizer, and side by side the one of ``--model DIR`` ($MOTIONGPT_BENCH_MODEL) when
given. Raises MotionError when the dataset is not built yet.
"""
import os
import time
from pathlib import Path

import numpy as np
import torch

from engine.data import default_dataset_dir, load_split, source_of_clip
from engine.motion import Motion
from engine.tokenizer import MotionTokenizer
from engine.training.tokenizer import validate

REPEATS = 5
SECONDS = 10.0
WINDOW_FRAMES = 196      # 49 tokens x 4 frames: the longest motion the model generates or describes


def _tokenizer_folder(model: str) -> str:
    folder = Path(model)
    return str(folder / "tokenizer") if (folder / "tokenizer").is_dir() else model


def window_mpjpe_local(model: MotionTokenizer, clips: list[tuple[str, np.ndarray]]) -> float:
    """Pelvis-aligned MPJPE (mm) over ``WINDOW_FRAMES``-frame windows of ``clips`` (name, (T, 263)
    features; the last window of a clip shorter, two tokens at least), each encoded and decoded
    on its own and compared with the joints its own features give."""
    step = model.config.frames_per_token
    errors = []
    for _, features in clips:
        for start in range(0, len(features), WINDOW_FRAMES):
            window = features[start:start + WINDOW_FRAMES]
            window = window[:len(window) // step * step]
            if len(window) < 2 * step:
                continue
            decoded, truth = model.decode(model.encode(window)).joints, Motion.from_features(window).joints
            frames = min(len(decoded), len(truth))
            decoded, truth = decoded[:frames], truth[:frames]
            errors.append(np.linalg.norm((decoded - decoded[:, :1]) - (truth - truth[:, :1]), axis=-1).reshape(-1))
    return float(np.concatenate(errors).mean() * 1000)


def measure(model: MotionTokenizer, data: Path) -> dict:
    """Reconstruction per source and on the test split, codebook usage and speed of ``model``."""
    val = [(clip.name, clip.features) for clip in load_split(data, "val")]
    overall = validate(model, val, data)
    results = {"mpjpe_mm": overall["mpjpe_mm"], "mpjpe_local_mm": overall["mpjpe_local_mm"],
               "mpjpe_body_mm": overall["mpjpe_body_mm"],
               "perplexity": overall["val_perplexity"], "used_codes": overall["val_used_codes"],
               "val_clips": overall["val_clips"]}
    for source in sorted({source_of_clip(name) for name, _ in val}):
        clips = [c for c in val if source_of_clip(c[0]) == source]
        part = validate(model, clips, data)
        results[f"{source}_val_mpjpe_local_mm"] = part["mpjpe_local_mm"]
        results[f"{source}_val_mpjpe_body_mm"] = part["mpjpe_body_mm"]
        results[f"{source}_val_window_mpjpe_local_mm"] = window_mpjpe_local(model, clips)
        results[f"{source}_val_clips"] = part["val_clips"]
    test = [(clip.name, clip.features) for clip in load_split(data, "test")] if (data / "test.txt").is_file() else []
    if test:
        held_out = validate(model, test, data)
        results["unseen_actor_mpjpe_local_mm"] = held_out["mpjpe_local_mm"]
        results["unseen_actor_mpjpe_body_mm"] = held_out["mpjpe_body_mm"]
        results["unseen_actor_window_mpjpe_local_mm"] = window_mpjpe_local(model, test)
        results["unseen_actor_mpjpe_mm"] = held_out["mpjpe_mm"]
        results["unseen_actor_clips"] = held_out["val_clips"]

    features = val[int(np.argmax([len(f) for _, f in val]))][1]
    frames = int(SECONDS * 20)
    ten_seconds = np.resize(features, (frames, features.shape[1])) if len(features) < frames else features[:frames]
    times = []
    for _ in range(REPEATS):
        started = time.perf_counter()
        model.decode(model.encode(ten_seconds))
        times.append(time.perf_counter() - started)
    results.update({"code_num": model.config.code_num, "width": model.config.width,
                    "encode_decode_10s_cpu_ms": min(times) * 1000})
    return results


def run() -> dict:
    data = default_dataset_dir()
    results = {"torch_threads": torch.get_num_threads()}
    results.update(measure(MotionTokenizer.from_pretrained("default", device="cpu"), data))
    other = os.environ.get("MOTIONGPT_BENCH_MODEL")
    if other and other != "default":
        candidate = measure(MotionTokenizer.from_pretrained(_tokenizer_folder(other), device="cpu"), data)
        results.update({f"candidate_{key}": value for key, value in candidate.items()})
    return results
