"""Big and hostile input files (issue 21): the memory of a 200 MB BVH import, a 50,000-deep hierarchy.

- ``bvh_file_mb`` / ``bvh_frames``: a ~200 MB BVH written to a temporary folder: the real CMU clip
  01_08 (2 MB, 120 fps) with its frame lines repeated.
- ``peak_rss_mb`` / ``peak_rss_ratio``: peak resident memory (``ru_maxrss``) of a child process that
  runs ``engine.formats.bvh.read_bvh`` on that file, and that peak divided by the file's size. Target
  ``TARGETS["peak_rss_ratio"]`` (the whole process, Python and numpy included: ``idle_rss_mb`` is
  the same child importing the engine without reading anything).
- ``import_s``: wall time of that child's ``read_bvh`` (parse + forward kinematics), one run.
- ``deep_hierarchy_s``: ``engine.formats.bvh.parse_bvh_file`` on a chain of 50,000 nested joints (refused
  at ``engine.formats.bvh.MAX_DEPTH`` with a MotionError naming the line), best of 3. Target
  ``TARGETS["deep_hierarchy_s"]``; ``deep_hierarchy_outcome`` says whether it parsed or was refused.
- ``targets_met``: both targets hold.
"""
from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
SOURCE = REPO_ROOT.parent / "shared" / "data" / "cmu" / "01_08.bvh"
FILE_MB = 200
DEEP = 50_000
TARGETS = {"peak_rss_ratio": 4.0, "deep_hierarchy_s": 1.0}

# Run in a fresh interpreter: read the file (or not), then report this process's own peak memory.
CHILD = """
import json, resource, sys, time
from engine.formats.bvh import read_bvh
started = time.perf_counter()
frames = read_bvh(sys.argv[1]).num_frames if len(sys.argv) > 1 else 0
seconds = time.perf_counter() - started
print(json.dumps({"frames": frames, "seconds": seconds,
                  "peak_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))
"""


def write_big_bvh(path: Path, megabytes: int = FILE_MB) -> int:
    """SOURCE with its frame lines repeated until the file holds about ``megabytes`` MB; returns the frames."""
    header, motion = SOURCE.read_text().split("MOTION\n", 1)
    lines = motion.splitlines()
    frame_time, body = lines[1], "\n".join(lines[2:]) + "\n"
    repeats = max(1, megabytes * 1_000_000 // len(body))
    frames = (len(lines) - 2) * repeats
    with open(path, "w") as file:
        file.write(f"{header}MOTION\nFrames: {frames}\n{frame_time}\n")
        for _ in range(repeats):
            file.write(body)
    return frames


def child_run(*arguments: str) -> dict:
    result = subprocess.run([sys.executable, "-c", CHILD, *arguments], cwd=REPO_ROOT, capture_output=True,
                            text=True, timeout=600, check=True)
    return json.loads(result.stdout)


def deep_chain(depth: int) -> str:
    """BVH text of ``depth`` joints, each the only child of the one before."""
    lines = ["HIERARCHY"]
    for i in range(depth):
        lines += [f"{'ROOT' if i == 0 else 'JOINT'} J{i}", "{", "\tOFFSET 0 1 0",
                  "\tCHANNELS 3 Zrotation Xrotation Yrotation"]
    lines += ["End Site", "{", "\tOFFSET 0 1 0", "}"] + ["}"] * depth
    lines += ["MOTION", "Frames: 1", "Frame Time: 0.0333333", " ".join(["0"] * 3 * depth)]
    return "\n".join(lines) + "\n"


def time_deep_hierarchy(repeats: int = 3) -> tuple[float, str]:
    from engine import MotionError
    from engine.formats.bvh import parse_bvh_file
    text = deep_chain(DEEP)
    best, outcome = float("inf"), ""
    for _ in range(repeats):
        started = time.perf_counter()
        try:
            outcome = f"parsed {len(parse_bvh_file(text, 'deep.bvh').names)} joints"
        except MotionError as error:
            outcome = f"refused: {error}"
        best = min(best, time.perf_counter() - started)
    return best, outcome


def run() -> dict:
    with tempfile.TemporaryDirectory(prefix="bench_files_") as folder:
        path = Path(folder) / "big.bvh"
        frames = write_big_bvh(path)
        size = path.stat().st_size
        idle = child_run()
        big = child_run(str(path))
    assert big["frames"] >= frames - 1, (big, frames)  # the CMU map drops the T-pose frame 0
    ratio = big["peak_kb"] * 1024 / size
    deep_s, outcome = time_deep_hierarchy()
    return {
        "bvh_file_mb": size / 1e6,
        "bvh_frames": frames,
        "peak_rss_mb": big["peak_kb"] / 1024,
        "idle_rss_mb": idle["peak_kb"] / 1024,
        "peak_rss_ratio": ratio,
        "peak_rss_ratio_target": TARGETS["peak_rss_ratio"],
        "import_s": big["seconds"],
        "deep_hierarchy_s": deep_s,
        "deep_hierarchy_target_s": TARGETS["deep_hierarchy_s"],
        "deep_hierarchy_outcome": outcome[:120],
        "targets_met": ratio <= TARGETS["peak_rss_ratio"] and deep_s < TARGETS["deep_hierarchy_s"],
    }
