"""engine.eval: the metrics on synthetic cases with known answers, the bundled evaluator on real
Bandai mocap, and the training / evaluation pipeline on a small dataset made of real clips."""
import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from engine import Normalizer
from engine.formats.bvh import read_bvh
from engine.data import HAND_OPEN_CONTENT, bandai_captions, split_of, working_hand
from engine.eval import (DEFAULT_EVALUATOR, EvalSettings, EvaluatorConfig, TextMotionEvaluator, ade_fde, bert_score,
                         bleu, caption_variants, cider, diversity, evaluate, foot_skating_ratio, format_table,
                         frechet_distance, linear_inbetween, matching_score, multimodality, r_precision, random_crop,
                         rouge_l, train_evaluator, true_motion_ranks)

SHARED_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
BANDAI = SHARED_DATA / "bandai" / "dataset-1" / "data"
# sha256 of assets/evaluator/model.safetensors: change it together with the retrained evaluator
EVALUATOR_SHA256 = "9827c4e47a2dc6ac6e679d8099ffd28b844e99cdba4909436e068559f17a272f"


# ----------------------------------------------------------------------------- embedding metrics

def test_fid_of_identical_sets_is_zero_and_of_a_shift_is_its_squared_length():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(400, 6))
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-8)
    shift = np.array([1.0, -2.0, 0.5, 0.0, 0.0, 0.0])
    assert frechet_distance(a, a + shift) == pytest.approx(float(shift @ shift), rel=1e-6)
    # two independent samples of one Gaussian: FID near 0, and it grows with the covariance change
    b = rng.normal(size=(4000, 6))
    c = rng.normal(size=(4000, 6))
    assert frechet_distance(b, c) < 0.02
    # N(0, I) vs N(0, 4 I) in 6-d: tr(I + 4I - 2 * 2I) = 6
    assert frechet_distance(b, 2.0 * c) == pytest.approx(6.0, rel=0.05)


def test_fid_with_fewer_samples_than_dimensions_is_finite():
    rng = np.random.default_rng(1)
    assert np.isfinite(frechet_distance(rng.normal(size=(10, 40)), rng.normal(size=(12, 40))))


def test_r_precision_of_a_perfect_and_of_a_shuffled_pairing():
    rng = np.random.default_rng(0)
    motion = rng.normal(size=(32 * 300, 16))
    np.testing.assert_allclose(r_precision(motion, motion), [1.0, 1.0, 1.0])
    shuffled_text = motion[rng.permutation(len(motion))]
    shuffled = r_precision(shuffled_text, motion)
    np.testing.assert_allclose(shuffled, [1 / 32, 2 / 32, 3 / 32], atol=0.01)
    ranks = true_motion_ranks(shuffled_text, motion)     # per row: the share of any rows is their top-1
    assert ranks.shape == (len(motion),) and (ranks == 0).mean() == shuffled[0] and ranks.max() <= 31


def test_r_precision_counts_whole_batches_of_32_only():
    rng = np.random.default_rng(0)
    text = rng.normal(size=(70, 4))
    motion = text.copy()
    motion[64:] = rng.normal(size=(6, 4))                  # wrong pairs past the last whole batch: dropped
    np.testing.assert_allclose(r_precision(text, motion), [1.0, 1.0, 1.0])


def test_matching_score_diversity_and_multimodality():
    rng = np.random.default_rng(0)
    text = rng.normal(size=(50, 3))
    assert matching_score(text, text + np.array([0.0, 0.3, 0.4])) == pytest.approx(0.5)
    assert diversity(np.ones((40, 8))) == 0.0
    two_points = np.array([[0.0, 0.0], [3.0, 4.0]] * 200)
    assert 0.0 < diversity(two_points) < 5.0
    assert diversity(two_points, pairs=300, seed=1) == pytest.approx(2.5, abs=0.5)    # half the pairs differ by 5
    same = np.repeat(rng.normal(size=(5, 1, 4)), 10, axis=1)
    assert multimodality(same) == 0.0
    spread = np.zeros((3, 10, 2))
    spread[:, :, 0] = np.arange(10)                        # generations 0..9 on a line: pair distance |i - j|
    assert 1.0 <= multimodality(spread) <= 9.0


# ----------------------------------------------------------------------------- joint metrics

def test_ade_fde_in_metres():
    rng = np.random.default_rng(0)
    truth = rng.normal(size=(30, 22, 3))
    assert ade_fde(truth + np.array([0.1, 0.0, 0.0]), truth) == pytest.approx((0.1, 0.1))
    drift = truth + np.linspace(0.0, 0.29, 30)[:, None, None] * np.array([0.0, 0.0, 1.0])
    ade, fde = ade_fde(drift, truth)
    assert ade == pytest.approx(0.145) and fde == pytest.approx(0.29)


def still_pose(frames: int) -> np.ndarray:
    pose = np.zeros((22, 3))
    pose[:, 1] = np.linspace(0.0, 1.7, 22)
    pose[[10, 11], 1] = 0.0                                 # both feet on the floor
    pose[10, 0], pose[11, 0] = 0.1, -0.1
    return np.repeat(pose[None], frames, axis=0)


def test_foot_skating_is_zero_for_a_still_pose_and_high_for_a_sliding_foot():
    assert foot_skating_ratio(still_pose(40)) == 0.0
    sliding = still_pose(40)
    sliding[:, 10, 2] = np.arange(40) * 0.05                # left foot on the floor at 1 m/s (20 fps)
    assert foot_skating_ratio(sliding) > 0.9
    slow = still_pose(40)
    slow[:, 10, 2] = np.arange(40) * 0.01                   # 0.2 m/s: under the 0.5 m/s threshold
    assert foot_skating_ratio(slow) == 0.0
    lifted = sliding.copy()
    lifted[:, 10, 1] = 0.2                                  # the moving foot is 20 cm up: a swing, not a skate
    assert foot_skating_ratio(lifted) == 0.0


def test_foot_skating_of_real_mocap_is_low():
    walk = read_bvh(BANDAI / "dataset-1_walk_happy_001.bvh", bone_map="bandai").resample(20)
    assert foot_skating_ratio(walk.joints) < 0.15


def test_linear_inbetween_runs_straight_between_the_boundary_poses():
    start, end = np.zeros((22, 3)), np.ones((22, 3))
    line = linear_inbetween(start, end, 3)
    assert line.shape == (3, 22, 3)
    np.testing.assert_allclose(line[:, 0, 0], [0.25, 0.5, 0.75])


# ----------------------------------------------------------------------------- caption metrics

CAPTIONS = ["a person walks forward happily", "someone waves the left hand", "the person bows politely"]


def test_identical_captions_score_one():
    references = [[c] for c in CAPTIONS]
    assert bleu(CAPTIONS, references, 1) == pytest.approx(1.0)
    assert bleu(CAPTIONS, references, 4) == pytest.approx(1.0)
    assert rouge_l(CAPTIONS, references) == pytest.approx(1.0)
    assert cider(CAPTIONS, references) == pytest.approx(10.0)
    assert bert_score(CAPTIONS, references) == pytest.approx(1.0, abs=1e-5)


def test_caption_metrics_of_known_cases():
    # 2 of 3 words match, same length: BLEU-1 = ROUGE-L = 2/3; no matching bigram pair beyond "a person"
    assert bleu(["a person walks"], [["a person runs"]], 1) == pytest.approx(2 / 3)
    assert rouge_l(["a person walks"], [["a person runs"]]) == pytest.approx(2 / 3)
    # brevity penalty: 2 words against 4 -> exp(1 - 4 / 2)
    assert bleu(["a person"], [["a person walks forward"]], 1) == pytest.approx(np.exp(-1.0))
    # no shared word at all
    unrelated = ["jumps high"], [["a person bows"]]
    assert bleu(*unrelated, 1) == 0.0 and rouge_l(*unrelated) == 0.0 and cider(*unrelated) == 0.0
    # the best reference counts
    assert rouge_l(["a person bows"], [["someone kicks", "a person bows"]]) == pytest.approx(1.0)
    # a related paraphrase scores between an unrelated caption and the same caption
    close = bert_score(["a person walks forward"], [["someone walks ahead"]])
    far = bert_score(["a person walks forward"], [["the cat sleeps on a sofa"]])
    assert far < close < 1.0


def test_caption_variants_swap_only_the_subject():
    variants = caption_variants("a happy person runs forward")
    assert "a happy person runs forward" in variants and "a happy woman runs forward" in variants
    assert all(v.endswith("runs forward") for v in variants)


def test_random_crop_stays_inside_the_clip():
    rng = np.random.default_rng(0)
    for length in (24, 50, 300):
        for _ in range(50):
            start, stop = random_crop(length, rng)
            assert 0 <= start < stop <= length and min(length, 40) <= stop - start <= 196


# ----------------------------------------------------------------------------- the bundled evaluator

REAL_CLIPS = ["dataset-1_walk_happy_001", "dataset-1_bow_normal_001", "dataset-1_run_sad_001",
              "dataset-1_punch_normal_001", "dataset-1_walk-back_old_001", "dataset-1_kick_normal_001"]


def test_bundled_evaluator_is_small_and_pinned():
    weights = DEFAULT_EVALUATOR / "model.safetensors"
    assert sum(p.stat().st_size for p in DEFAULT_EVALUATOR.iterdir()) < 5_000_000
    assert hashlib.sha256(weights.read_bytes()).hexdigest() == EVALUATOR_SHA256
    assert (DEFAULT_EVALUATOR / "MODEL_CARD.md").read_text().count("CC BY-NC 4.0") >= 1


# validation-split clips (engine.data.split_of): the evaluator never trained on them or their mirrors
HELD_OUT = ["dataset-1_bow_active_001", "dataset-1_walk_tired_002", "dataset-1_walk-back_not-confident_001",
            "dataset-1_byebye_happy_001", "dataset-1_guide_angry_001", "dataset-1_walk-right_old_001"]


def test_bundled_evaluator_ranks_the_own_caption_first_on_held_out_mocap():
    evaluator = TextMotionEvaluator.from_pretrained()
    motions, captions = [], []
    for name in HELD_OUT:
        assert split_of(name) == "val"
        _, content, style, _ = name.split("_")
        motion = read_bvh(BANDAI / f"{name}.bvh", bone_map="bandai").resample(20)
        motions.append(motion)
        captions.append(bandai_captions(content, style, working_hand(motion) if content in HAND_OPEN_CONTENT else None)[0])
    motion_emb, text_emb = evaluator.embed_motions(motions), evaluator.embed_texts(captions)
    assert motion_emb.shape == text_emb.shape == (len(HELD_OUT), evaluator.config.embed_dim)
    np.testing.assert_allclose(np.linalg.norm(motion_emb, axis=1), 1.0, atol=1e-5)
    distance = np.linalg.norm(motion_emb[:, None] - text_emb[None], axis=-1)     # (motion, caption)
    assert (distance.argmin(axis=1) == np.arange(len(HELD_OUT))).all(), np.round(distance, 2)
    # the full-length motion and its first 9.8 s give the same embedding (the evaluator reads 196 frames)
    long = motions[0]
    np.testing.assert_allclose(evaluator.embed_motions([long]), evaluator.embed_motions([long[:197]]), atol=1e-6)


def test_bundled_evaluator_tells_apart_the_hdm05_classes_of_an_actor_it_never_saw(shared_data, tmp_path):
    """The evaluator is trained on all five sources: the first take of each of the 11 HDM05 classes
    by the held-out actor (every take of whom is in the test split) is nearest its own class's
    caption. (The evaluator trained on Bandai and CMU only placed 1 of the 11.)"""
    import tarfile

    from engine.data import HDM05_CLASSES, HDM05_MIN_SECONDS, HDM05_TEST_ACTOR, hold_to_length, phrased_captions
    from engine.formats.asf import find_asf, read_asf_amc
    first_takes = {}
    with tarfile.open(shared_data / "hdm05" / "hdm05-subset.tar.xz") as tar:
        members = sorted((m for m in tar.getmembers() if m.isfile() and f"/HDM_{HDM05_TEST_ACTOR}" in m.name),
                         key=lambda m: m.name)
        for member in members:
            if member.name.endswith(".amc"):
                first_takes.setdefault(member.name.rsplit("/", 1)[-1].split("_")[2], member.name)
        for member in members:
            if member.name.endswith(".asf") or member.name in first_takes.values():
                target = tmp_path / member.name
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(tar.extractfile(member).read())
    assert sorted(first_takes) == sorted(HDM05_CLASSES)
    motions, captions = [], []
    for label, name in sorted(first_takes.items()):
        path = tmp_path / name
        motions.append(hold_to_length(read_asf_amc(find_asf(path), path), HDM05_MIN_SECONDS).resample(20))
        captions.append(phrased_captions(HDM05_CLASSES[label][1])[0])
    evaluator = TextMotionEvaluator.from_pretrained()
    distance = np.linalg.norm(evaluator.embed_motions(motions)[:, None] - evaluator.embed_texts(captions)[None], axis=-1)
    assert (distance.argmin(axis=1) == np.arange(len(captions))).sum() >= 9, np.round(distance, 2)


# ----------------------------------------------------------------------------- training and evaluation

@pytest.fixture(scope="module")
def small_dataset(tmp_path_factory):
    """A dataset folder (engine.data layout) of 30-60-frame windows of six real Bandai clips: 48 train, 64 val."""
    folder = tmp_path_factory.mktemp("eval_dataset")
    for sub in ("features", "texts"):
        (folder / sub).mkdir()
    rng = np.random.default_rng(0)
    sources = []
    for name in REAL_CLIPS:
        _, content, style, _ = name.split("_")
        features = read_bvh(BANDAI / f"{name}.bvh", bone_map="bandai").resample(20).to_features()
        sources.append((features, bandai_captions(content, style, None)))
    splits = {"train": [], "val": []}
    for split, count in (("train", 48), ("val", 64)):
        for i in range(count):
            features, captions = sources[i % len(sources)]
            start, stop = random_crop(len(features), rng, 30, 60)
            clip = f"{split}_{i:03d}"
            np.save(folder / "features" / f"{clip}.npy", features[start:stop].astype(np.float32))
            (folder / "texts" / f"{clip}.txt").write_text("\n".join(captions) + "\n")
            splits[split].append(clip)
    for split, names in splits.items():
        (folder / f"{split}.txt").write_text("\n".join(names) + "\n")
    Normalizer.fit([src[0] for src in sources]).save(folder)
    (folder / "meta.json").write_text(json.dumps({"sources": ["bandai2"]}))
    return folder


def test_train_evaluator_writes_a_loadable_folder(small_dataset, tmp_path):
    torch.set_num_threads(1)
    summary = train_evaluator(small_dataset, tmp_path / "evaluator", minutes=1.0, steps=6, batch=16,
                              val_every=3, log=lambda message: None)
    assert summary["steps"] == 6 and 0.0 <= summary["val_top1"] <= summary["val_top3"] <= 1.0
    loaded = TextMotionEvaluator.from_pretrained(tmp_path / "evaluator")
    assert loaded.config == EvaluatorConfig(**json.loads((tmp_path / "evaluator" / "config.json").read_text()))
    assert json.loads((tmp_path / "evaluator" / "training.json").read_text())["summary"]["steps"] == 6
    card = (tmp_path / "evaluator" / "MODEL_CARD.md").read_text()
    assert "Bandai Namco Research Motion dataset 2" in card and "HDM05" not in card    # the data it saw


def test_evaluate_gives_every_row_with_real_references(small_dataset, folder):
    evaluator = TextMotionEvaluator.from_pretrained()
    settings = EvalSettings(clips=32, mm_prompts=2, mm_generations=3, gaps_seconds=(0.5,), by_source=True)
    result = evaluate(folder, small_dataset, evaluator, settings, log=lambda message: None)
    assert result["clips"] == 32 and result["reference_clips"] == 32
    metrics = {(row["task"].split(" (")[0], row["metric"]): row for row in result["rows"]}
    # every validation clip, per source (this dataset's clips are of one source, so the two rows agree)
    everything = metrics[("text-to-motion by source", "R-precision top-1, all sources")]
    assert everything["task"] == "text-to-motion by source (64 clips)"
    sources = [row for (task, metric), row in metrics.items() if task == "text-to-motion by source"
               and metric != "R-precision top-1, all sources"]
    assert len(sources) == 1 and sources[0]["metric"].endswith("(64 clips)")
    assert sources[0]["model"] == everything["model"] and sources[0]["real"] == everything["real"]
    assert 0.0 <= everything["model"] <= 1.0 and 0.0 <= everything["real"] <= 1.0
    for key in [("text-to-motion", "R-precision top-1"), ("text-to-motion", "FID"), ("text-to-motion", "Diversity"),
                ("captioning", "BLEU@4"), ("captioning", "CIDEr"), ("prediction", "ADE (m)"),
                ("prediction", "FDE (m)"), ("in-between 0.5 s", "ADE (m)")]:
        assert key in metrics and np.isfinite(metrics[key]["model"]), key
        assert metrics[key]["real"] is not None and np.isfinite(metrics[key]["real"]), key
    assert metrics[("text-to-motion", "MultiModality (2 x 3)")]["real"] is None
    table = format_table(result)
    assert table.startswith("| task | metric | model | real data / baseline |")
    assert "linear interpolation" in table and "last pose held" in table
    assert len(table.strip().splitlines()) == 2 + len(result["rows"])
