"""The bundled motion tokenizer (assets/models/default/tokenizer): reconstruction and speed.

- reconstruction MPJPE (mm) on the validation split of the built dataset ($MOTIONGPT_CACHE/dataset,
  default cache/dataset; python -m engine.data build): whole clips encoded, decoded, turned into
  joints and compared with the ground-truth joints; also with the pelvis aligned ("local");
- codebook usage on those clips: perplexity and distinct codes used;
- encode + decode time for 10 s of motion (200 feature frames at 20 fps) on the CPU.

Raises MotionError when the bundled tokenizer or the dataset is not built yet.
"""
import time

import numpy as np
import torch

from engine.data import default_dataset_dir, load_split
from engine.tokenizer import MotionTokenizer
from engine.train import validate

REPEATS = 5
SECONDS = 10.0


def run() -> dict:
    model = MotionTokenizer.from_pretrained("default", device="cpu")
    data = default_dataset_dir()
    clips = [(clip.name, clip.features) for clip in load_split(data, "val")]
    reconstruction = validate(model, clips, data)

    features = clips[int(np.argmax([len(f) for _, f in clips]))][1]
    frames = int(SECONDS * 20)
    ten_seconds = np.resize(features, (frames, features.shape[1])) if len(features) < frames else features[:frames]
    times = []
    for _ in range(REPEATS):
        started = time.perf_counter()
        model.decode(model.encode(ten_seconds))
        times.append(time.perf_counter() - started)
    return {
        "mpjpe_mm": reconstruction["mpjpe_mm"],
        "mpjpe_local_mm": reconstruction["mpjpe_local_mm"],
        "perplexity": reconstruction["val_perplexity"],
        "used_codes": reconstruction["val_used_codes"],
        "code_num": model.config.code_num,
        "val_clips": reconstruction["val_clips"],
        "encode_decode_10s_cpu_ms": min(times) * 1000,
        "torch_threads": torch.get_num_threads(),
        "width": model.config.width,
    }
