"""Run the benchmarks: each bench/bench_<name>.py module's ``run() -> dict``.

usage: python bench/run.py [NAME ...] [--model DIR]
       (NAME: the module name without "bench_"; default: all. --model DIR: the model folder that
       model benchmarks such as bench_quality evaluate instead of the bundled one; it is passed on
       as the environment variable MOTIONGPT_BENCH_MODEL)

Prints a table and writes bench/results.json, keeping the last results of benchmarks not run now.
Exit code 1 when a benchmark fails (its traceback is printed, the others still run).
"""
from __future__ import annotations

import importlib.util
import json
import os
import platform
import sys
import time
import traceback
from datetime import datetime, timezone
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
RESULTS_PATH = BENCH_DIR / "results.json"
sys.path.insert(0, str(REPO_ROOT))  # so benchmarks can `import engine`


def discover() -> dict[str, Path]:
    """Benchmark name -> module path, for every bench/bench_*.py."""
    return {path.stem.removeprefix("bench_"): path for path in sorted(BENCH_DIR.glob("bench_*.py"))}


def machine() -> dict:
    """Where the numbers were measured (torch details only if a benchmark imported torch)."""
    info = {"platform": platform.platform(), "python": platform.python_version(),
            "cpu_count": os.cpu_count(), "processor": platform.processor() or platform.machine()}
    torch = sys.modules.get("torch")
    if torch is not None:
        info["torch"] = torch.__version__
        info["cuda"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
        info["torch_threads"] = torch.get_num_threads()
    return info


def run_benchmark(name: str, path: Path) -> dict:
    """Import the module and call its run(); returns {"ok", "results" or "error", "seconds", "date"}."""
    started = time.perf_counter()
    try:
        spec = importlib.util.spec_from_file_location(f"bench_{name}", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        results = module.run()
        if not isinstance(results, dict):
            raise TypeError(f"{path.name}: run() must return a dict, got {type(results).__name__}")
        entry = {"ok": True, "results": results}
    except Exception as error:  # one broken benchmark must not hide the others' numbers
        traceback.print_exc()
        entry = {"ok": False, "error": f"{type(error).__name__}: {error}"}
    entry["seconds"] = round(time.perf_counter() - started, 3)
    entry["date"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    return entry


def format_value(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def print_table(entries: dict[str, dict]) -> None:
    rows = [("benchmark", "measure", "value")]
    for name, entry in entries.items():
        if entry["ok"]:
            rows += [(name, key, format_value(value)) for key, value in entry["results"].items()]
            rows.append((name, "wall seconds", format_value(entry["seconds"])))
        else:
            rows.append((name, "FAILED", entry["error"]))
    widths = [max(len(row[i]) for row in rows) for i in range(2)]
    for i, (name, key, value) in enumerate(rows):
        print(f"{name:<{widths[0]}}  {key:<{widths[1]}}  {value}")
        if i == 0:
            print(f"{'-' * widths[0]}  {'-' * widths[1]}  -----")


def to_json(value):
    """numpy scalars and arrays -> plain Python numbers and lists; anything else -> str."""
    if hasattr(value, "tolist"):
        return value.tolist()
    return str(value)


def main(names: list[str]) -> int:
    if "--model" in names:
        at = names.index("--model")
        if at + 1 >= len(names):
            print("error: --model needs a model folder", file=sys.stderr)
            return 2
        os.environ["MOTIONGPT_BENCH_MODEL"] = names[at + 1]
        names = names[:at] + names[at + 2:]
    available = discover()
    if not available:
        print("no benchmarks yet: add bench/bench_<name>.py with a function run() -> dict (see bench/README.md)")
        return 0
    unknown = [name for name in names if name not in available]
    if unknown:
        print(f"error: no benchmark named {', '.join(unknown)}; there are: {', '.join(available)}", file=sys.stderr)
        return 2
    selected = {name: available[name] for name in (names or available)}
    entries = {}
    for name, path in selected.items():
        print(f"bench: {name} ({path.name}) ...", flush=True)
        entries[name] = run_benchmark(name, path)
    print()
    print_table(entries)

    results = json.loads(RESULTS_PATH.read_text()) if RESULTS_PATH.exists() else {"benchmarks": {}}
    results["benchmarks"] = {name: entry for name, entry in results.get("benchmarks", {}).items()
                             if name in available}  # drop results of benchmarks that no longer exist
    for name, entry in entries.items():
        results["benchmarks"][name] = entry | {"machine": machine()}
    RESULTS_PATH.write_text(json.dumps(results, indent=2, default=to_json) + "\n")
    print(f"\nwrote {RESULTS_PATH.relative_to(REPO_ROOT)}")
    return 0 if all(entry["ok"] for entry in entries.values()) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
