"""Free wording (issue 9): does the model understand prompts worded unlike any training caption?

On the paraphrase set (tests/data/paraphrases.tsv, bench/paraphrases.py), in one run:

- ``round_trip_with`` / ``round_trip_without``: text-to-motion (4 s, three seeds per prompt:
  ``SEED_SETS``) from each paraphrase, then ``describe`` on the result by ONE judge (the bundled
  model's describe, for both rows); counts when the description names the prompt's action
  (``action_of_caption``).
  "with" = the bundled model (captions read by the pretrained text encoder); "without" = the first
  bundled language model with the tokenizer its tokens belong to, whose text side is its own byte-level
  BPE trained on our captions (read from git history, commit ``WITHOUT_COMMIT``).
- ``round_trip_no_reading``: the bundled model with its readings switched off (``engine.text.reading``:
  captions with unknown words left after the lexicon read as typed, as model v0.3.0 did);
  ``round_trip_as_typed``: the lexicon switched off too (no WordNet rewriting, ``engine.text.lexicon``);
  ``rewritten_by_lexicon``: how many prompts the lexicon changes; ``read_by_label``: how many are
  read as a label caption; ``read_as_right_action``: the share whose reading (``read_as``) names
  the prompt's action, i.e. how often the prompt was understood before anything was generated;
  ``read_as_right_action_minilm``: the same with the readings done by all-MiniLM-L6-v2 (the
  encoder the language model reads its captions with) instead of all-mpnet-base-v2.
- ``round_trip_one_sample``: the bundled model keeping its first sample instead of the nearest of
  ``text_to_motion_samples`` (``MotionGPT.text_to_motion_batch``).
- ``heldout_*``: the same on the held-out set (tests/data/paraphrases_heldout.tsv, 70 prompts
  written by someone who had not seen the first set nor the lexicon's rewrites of it: the first set
  was looked at while the lexicon and the readings were designed, the held-out one never before it
  was measured). ``blind_*``: the same on tests/data/paraphrases_blind.tsv (84 prompts, written for
  the readings by a helper who saw no paraphrase set, lexicon, caption bank or reading; measured
  once the readings were built).
- ``retrieval_top1`` (with only: "without" has no contrastive embedding): each paraphrase's
  contrastive text embedding against the embeddings of the validation clips of the seven actions;
  counts when the nearest clip shows the prompt's action. ``retrieval_class`` does the same
  against the mean embedding of each action's clips. ``retrieval_chance``: the share of the most
  common action among those clips.
- ``style_read_right``: on tests/data/style_paraphrases.tsv (60 prompts, 6 per style, each with one
  style word no training caption has: "a weary hiker trudges home"; written by a helper who saw
  none of this), the share of prompts whose reading names the prompt's style (``STYLE_ADVERBS``);
  ``style_read_right_no_style_words``: the same with the lexicon's style words switched off
  (``engine.text.lexicon.Lexicon.style_word``). Readings only: describe names styles too rarely (20 %
  on label captions) to judge generated motions by.
- ``latency_4s_s``: one 4 s generation, best of 3 after a warm-up (2 CPU threads unless a GPU).
"""
from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np

WITHOUT_COMMIT = "d987130"     # assets: the first bundled default model (BPE text side)
LM_FILES = ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json")
# The tokenizer whose tokens that language model reads: v0.2.0's decoder on v0.1.0's encoder and
# codebook (tokens unchanged through v0.3.0; the bundled v0.4.0 tokenizer has other tokens).
TOKENIZER_COMMIT = "f398843"
TOKENIZER_FILES = ("config.json", "model.safetensors", "mean.npy", "std.npy")
SECONDS = 4.0
SEED_SETS = 3       # each prompt generated 3 times: 408 round trips, about +-2.5 points of noise
DATA = Path(__file__).resolve().parents[1] / "tests" / "data"
OTHER_SETS = {"heldout_": DATA / "paraphrases_heldout.tsv", "blind_": DATA / "paraphrases_blind.tsv"}


def previous_model(folder: Path) -> Path | None:
    """A model folder with the BPE-only language model of WITHOUT_COMMIT and the tokenizer of
    TOKENIZER_COMMIT (the one its tokens belong to), or None when git history is not available."""
    from engine.model import DEFAULT_MODEL
    repo = Path(__file__).resolve().parents[1]
    wanted = [(WITHOUT_COMMIT, "lm", name) for name in LM_FILES] + \
        [(TOKENIZER_COMMIT, "tokenizer", name) for name in TOKENIZER_FILES]
    for commit, part, name in wanted:
        result = subprocess.run(["git", "show", f"{commit}:assets/models/default/{part}/{name}"],
                                cwd=repo, capture_output=True)
        if result.returncode != 0:
            return None
        (folder / part).mkdir(parents=True, exist_ok=True)
        (folder / part / name).write_bytes(result.stdout)
    shutil.copy(DEFAULT_MODEL / "config.json", folder / "config.json")
    return folder


def round_trip(model, judge, prompts: list[tuple[str, str]]) -> tuple[float, list[tuple[str, str, str]]]:
    """Share of (prompt, seed set) pairs whose motion ``judge`` describes with the prompt's action,
    over ``SEED_SETS`` seed sets (set k, row i: seed 1000 k + i); and (prompt, action, caption)
    of every generation."""
    from bench.paraphrases import action_of_caption
    texts = [p for p, _ in prompts]
    rows = []
    for seed_set in range(SEED_SETS):
        motions = model.text_to_motion_batch(texts, seconds=SECONDS, seed=1000 * seed_set)
        rows += [(p, a, judge.describe(m)) for (p, a), m in zip(prompts, motions)]
    return float(np.mean([action_of_caption(c) == a for _, a, c in rows])), rows


def retrieval(model, prompts: list[tuple[str, str]]) -> dict:
    import torch
    from bench.paraphrases import action_of_clip
    from engine.data import default_dataset_dir, load_split

    side, lm = model.lm.text_side, model.lm
    dataset = default_dataset_dir()
    if not (dataset / "val.txt").is_file():
        raise RuntimeError(f"{dataset}: build the dataset first (python -m engine.data build)")
    gallery = [(c, action_of_clip(c.name)) for c in load_split(dataset, "val")]
    gallery = [(c, a) for c, a in gallery if a is not None and len(c.features) >= 8]
    with torch.inference_mode():
        codes = [model.tokenizer.encode(c.features[:196]) for c, _ in gallery]
        ids = lm.text_tokenizer([lm.vocab.motion_string(k) for k in codes], padding=True, return_tensors="pt")
        motion = torch.cat([side.motion_embedding(lm.t5, ids["input_ids"][i:i + 64].to(lm.device),
                                                  ids["attention_mask"][i:i + 64].to(lm.device))
                            for i in range(0, len(codes), 64)]).float().cpu()
        text = side.text_embedding([p for p, _ in prompts]).float().cpu()
    actions = np.array([a for _, a in gallery])
    truth = np.array([a for _, a in prompts])
    nearest = actions[(text @ motion.t()).argmax(1).numpy()]
    names = sorted(set(actions))
    means = torch.nn.functional.normalize(torch.stack([motion[torch.from_numpy(actions == n)].mean(0)
                                                       for n in names]), dim=-1)
    by_class = np.array(names)[(text @ means.t()).argmax(1).numpy()]
    return {"retrieval_top1": float(np.mean(nearest == truth)), "retrieval_class": float(np.mean(by_class == truth)),
            "retrieval_chance": Counter(actions).most_common(1)[0][1] / len(actions), "gallery_clips": len(gallery)}


def measure_set(model, without, prompts: list[tuple[str, str]], prefix: str) -> dict:
    """The round trips of one paraphrase set: the bundled model, the BPE-only model (``without``,
    may be None) and the bundled model with its lexicon off; keys start with ``prefix``."""
    import dataclasses

    from bench.paraphrases import action_of_caption
    from engine.text.reading import Reader
    results = {}
    accuracy, rows = round_trip(model, model, prompts)
    results[f"{prefix}round_trip_with"] = round(accuracy, 3)
    results[f"{prefix}round_trip_without"] = round(round_trip(without, model, prompts)[0], 3) if without else None
    side = model.lm.text_side
    config = side.config
    readings, action_words = config.readings, config.action_words

    def read_right() -> float:
        return round(float(np.mean([action_of_caption(model.read_as(p)) == a for p, a in prompts])), 3)

    results[f"{prefix}read_as_right_action"] = read_right()
    reader = side.reader
    try:       # the readings with the language model's own encoder (all-MiniLM-L6-v2)
        side.__dict__["reader"] = Reader(config.known_words, config.readings, config.styles, side.encoder)
        results[f"{prefix}read_as_right_action_minilm"] = read_right()
    finally:
        side.__dict__["reader"] = reader
    samples = model.config
    try:       # the first sample kept
        model.config = dataclasses.replace(samples, text_to_motion_samples=1)
        results[f"{prefix}round_trip_one_sample"] = round(round_trip(model, model, prompts)[0], 3)
    finally:
        model.config = samples
    try:       # the same model with its readings (engine.text.reading), then its lexicon too, switched off
        config.readings = {}
        results[f"{prefix}rewritten_by_lexicon"] = sum(side.normalise(p) != p for p, _ in prompts)
        results[f"{prefix}read_by_label"] = sum(side.reader.needs_reading(side.normalise(p)) for p, _ in prompts) \
            if readings else 0
        results[f"{prefix}round_trip_no_reading"] = round(round_trip(model, model, prompts)[0], 3)
        config.action_words = []
        results[f"{prefix}round_trip_as_typed"] = round(round_trip(model, model, prompts)[0], 3)
    finally:
        config.readings, config.action_words = readings, action_words
    per_action = {}
    for _, action, caption in rows:
        per_action.setdefault(action, []).append(action_of_caption(caption) == action)
    results[f"{prefix}round_trip_with_by_action"] = {a: round(float(np.mean(v)), 2) for a, v in sorted(per_action.items())}
    results[f"{prefix}examples"] = [f"{p!r} (read as {side.normalise(p)!r}) -> {c!r}"
                                    for p, _, c in rows[:len(prompts):max(1, len(prompts) // 8)]]
    return results


def style_read_right(model, prompts: list[tuple[str, str]]) -> float:
    """Share of (prompt, style) pairs whose reading (``MotionGPT.read_as``) names the style."""
    from bench.paraphrases import STYLE_ADVERBS
    right = []
    for prompt, style in prompts:
        right.append(model.lm.text_side.reader.style_of(model.read_as(prompt).lower()) in STYLE_ADVERBS[style])
    return round(float(np.mean(right)), 3)


def run() -> dict:
    import torch
    from bench.paraphrases import STYLE_PATH, load_paraphrases
    from engine import MotionGPT

    if not torch.cuda.is_available():
        torch.set_num_threads(int(os.environ.get("MOTIONGPT_BENCH_THREADS", 2)))
    prompts = load_paraphrases()
    started = time.perf_counter()
    model = MotionGPT.from_pretrained("default")
    model.text_to_motion(prompts[0][0], seconds=SECONDS, seed=0)
    load_s = time.perf_counter() - started
    latency = []
    for seed in range(3):
        start = time.perf_counter()
        model.text_to_motion(prompts[seed][0], seconds=SECONDS, seed=seed)
        latency.append(time.perf_counter() - start)
    results = {"prompts": len(prompts), "latency_4s_s": round(min(latency), 3), "load_and_first_s": round(load_s, 2)}
    if model.lm.text_side is None:
        raise RuntimeError("the bundled model has no pretrained text side (lm/text_side.json)")

    with tempfile.TemporaryDirectory() as temporary:
        folder = previous_model(Path(temporary) / "without")
        without = MotionGPT.from_pretrained(folder) if folder is not None else None
    if without is None:
        results["without_note"] = f"git history with {WITHOUT_COMMIT} is not available"
    results.update(measure_set(model, without, prompts, ""))
    results.update({k: round(v, 3) if isinstance(v, float) else v for k, v in retrieval(model, prompts).items()})
    styles = load_paraphrases(STYLE_PATH, header="prompt\tstyle")
    results["style_prompts"] = len(styles)
    results["style_read_right"] = style_read_right(model, styles)
    lexicon = model.lm.text_side.lexicon
    saved, lexicon.style_targets = lexicon.style_targets, {}
    try:
        results["style_read_right_no_style_words"] = style_read_right(model, styles)
    finally:
        lexicon.style_targets = saved
    for prefix, path in OTHER_SETS.items():
        other = load_paraphrases(path)
        results[f"{prefix}prompts"] = len(other)
        results.update(measure_set(model, without, other, prefix))
    return results
