"""HumanML3D features both ways on the reference clip 012314 (170 frames, 20 fps), numpy on the CPU."""
import time
from pathlib import Path

import numpy as np

from engine import Motion

CLIP = Path(__file__).resolve().parents[2] / "shared" / "data" / "humanml3d" / "new_joints" / "012314.npy"
REPEATS = 5


def best_of(function, repeats: int = REPEATS) -> float:
    """Fastest of `repeats` calls, in seconds."""
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        function()
        times.append(time.perf_counter() - started)
    return min(times)


def run() -> dict:
    motion = Motion(np.load(CLIP), fps=20)
    features = motion.to_features()
    to_features_s = best_of(motion.to_features)
    from_features_s = best_of(lambda: Motion.from_features(features))
    return {
        "frames": motion.num_frames,
        "to_features_ms": to_features_s * 1000,
        "to_features_frames_per_s": motion.num_frames / to_features_s,
        "from_features_ms": from_features_s * 1000,
    }
