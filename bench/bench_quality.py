"""Measured quality (issue 10): HumanML3D-style metrics of a model on the validation split.

Evaluates the bundled model, or the model folder named by ``python3 build.py bench quality --model
DIR`` (bench/run.py passes it on as $MOTIONGPT_BENCH_MODEL), with ``engine.eval.evaluate``: the
text-motion evaluator in ``assets/evaluator``, a fixed subset of ``EvalSettings.clips`` = 160
validation clips of ``cache/dataset`` (fixed seed), the rest of the split as the FID reference.

- text-to-motion: R-precision top-1/2/3, FID, MM-Dist, Diversity, MultiModality (20 prompts x 10
  generations), foot skating ratio; the real-data row is the same code on the real motions;
- captioning: R-precision of the generated captions, BLEU@1/4, ROUGE-L, CIDEr, BERTScore (MiniLM);
  the real-data row is one of the clip's own captions against its others;
- prediction: ADE, FDE (metres), FID, against the last given pose held still;
- in-between at gaps of 0.25, 0.5, 1 and 2 s: ADE and FID, against linear interpolation;
- text-to-motion R-precision top-1 on every validation clip (the 160 and the reference clips,
  batches of 32 mixing the sources), overall and per data source (Bandai, CMU, HDM05, CMU
  prediction), beside the real motions' own top-1: where the model is weak by source.

Prints the markdown table and writes it to ``bench/results/quality.md`` (the default model's run) or
``bench/results/quality-<folder name>.md`` (another model). MOTIONGPT_BENCH_THREADS=N sets torch's
CPU threads (1 on a machine whose cores are busy). Needs the built dataset (python -m engine.data
build, ~90 s) and the evaluator (python -m engine.eval train).
"""
from __future__ import annotations

import os
import platform
from datetime import datetime, timezone
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def code_version() -> str:
    """The checkout's commit, with "+ local changes" when engine/ differs from it ("unknown" without git)."""
    import subprocess
    root = Path(__file__).resolve().parents[1]
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True,
                                check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "engine"], cwd=root, capture_output=True, text=True,
                               check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return commit + (" + local changes in engine/" if dirty else "")


def run() -> dict:
    import torch

    from engine.data import default_dataset_dir
    from engine.eval import EvalSettings, evaluate, format_table

    if os.environ.get("MOTIONGPT_BENCH_THREADS"):
        torch.set_num_threads(int(os.environ["MOTIONGPT_BENCH_THREADS"]))
    model = os.environ.get("MOTIONGPT_BENCH_MODEL") or "default"
    dataset = default_dataset_dir()
    if not (dataset / "val.txt").is_file():
        raise RuntimeError(f"{dataset}: build the dataset first (python -m engine.data build, ~90 s)")
    result = evaluate(model, dataset, settings=EvalSettings(by_source=True), device="cpu")
    table = format_table(result)
    name = "quality.md" if model == "default" else f"quality-{Path(model).name}.md"
    RESULTS.mkdir(exist_ok=True)
    header = (f"# Quality of `{model}` on the validation split\n\n"
              f"`python3 build.py bench quality{'' if model == 'default' else ' --model ' + model}`, "
              f"{datetime.now(timezone.utc).date()}, code {code_version()}, {platform.machine()} CPU, "
              f"{torch.get_num_threads()} torch "
              f"thread(s), {result['seconds']['total']:.0f} s in all. {result['clips']} validation clips "
              f"(fixed seed) are measured, the other {result['reference_clips']} are the FID reference. "
              "Evaluator: `assets/evaluator` (unit-vector embeddings: distances lie in [0, 2], so MM-Dist, "
              "Diversity, MultiModality and FID have another scale than HumanML3D's evaluator). The last "
              "column is the real data measured by the same code, or for prediction and in-between a "
              "simple baseline.\n\n")
    (RESULTS / name).write_text(header + table)
    print(table)
    flat = {"model": model, "code": code_version(), "clips": result["clips"], "reference_clips": result["reference_clips"],
            "threads": torch.get_num_threads()}
    for row in result["rows"]:
        key = f"{row['task'].split(' (')[0]} | {row['metric']}"
        flat[key] = round(row["model"], 4) if row["model"] is not None else None
        if row["real"] is not None:
            flat[key + " | real/baseline"] = round(row["real"], 4)
    flat.update({f"seconds | {task.split(' (')[0]}": value for task, value in result["seconds"].items()})
    return flat
