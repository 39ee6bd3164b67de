"""engine.training tokenizer: the loss goes down, resume continues exactly, two gloo processes agree.

The dataset folder is written by the fixture in the layout of ``python -m engine.data build``
from real motion: HumanML3D clip 012314 (a tennis serve), its mirror and slices of both.
"""
import json
import os
import socket
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp

from engine import Motion, MotionError, Normalizer
from engine.data import load_split, mirror_motion
from engine.tokenizer import MotionTokenizer
from engine.training.__main__ import main
from engine.training.loop import rank_device
from engine.training.tokenizer import (MotionWindows, TokenizerTraining, learning_rate, train_tokenizer,
                                       window_weights)

TINY = dict(code_num=16, code_dim=16, width=32, depth=2, batch=16, window=32, log_every=2, val_every=3, decay_at=[1000],
            warmup=2, device="cpu")


def write_dataset(folder: Path, shared_data: Path) -> Path:
    joints = np.load(shared_data / "humanml3d" / "new_joints" / "012314.npy")
    serve = Motion(joints)
    mirrored = mirror_motion(serve)
    clips = {"train": {"serve": serve, "Mserve": mirrored, "serve_end": serve[60:],
                       "Mserve_start": mirrored[:110]},
             "val": {"serve_mid": serve[30:130], "Mserve_mid": mirrored[20:120]}}
    for sub in ("features", "joints", "texts"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    train_features = []
    for split, items in clips.items():
        for name, motion in items.items():
            features = motion.to_features()
            np.save(folder / "features" / f"{name}.npy", features)
            np.save(folder / "joints" / f"{name}.npy", Motion.from_features(features).joints)
            (folder / "texts" / f"{name}.txt").write_text("a person serves a tennis ball\n")
            if split == "train":
                train_features.append(features)
        (folder / f"{split}.txt").write_text("\n".join(items) + "\n")
    Normalizer.fit(train_features).save(folder)
    (folder / "meta.json").write_text(json.dumps({"source": "humanml3d 012314"}))
    return folder


@pytest.fixture(scope="module")
def dataset(tmp_path_factory, shared_data):
    return write_dataset(tmp_path_factory.mktemp("dataset"), shared_data)


def read_log(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]


def test_training_lowers_the_loss_and_saves_the_best_model(dataset, tmp_path):
    run = tmp_path / "run"
    config = TokenizerTraining(data=str(dataset), out=str(run), steps=160, lr=1e-3,
                               **{**TINY, "log_every": 20, "val_every": 80})
    model = train_tokenizer(config)
    records = read_log(run)
    train_records = [r for r in records if "loss" in r]
    val_records = [r for r in records if r.get("split") == "val"]
    assert [r["step"] for r in train_records] == list(range(20, 161, 20))
    assert train_records[-1]["loss"] < 0.8 * train_records[0]["loss"]
    assert all(1 <= r["used_codes"] <= 16 and r["perplexity"] >= 1 for r in train_records)
    assert [r["step"] for r in val_records] == [80, 160]
    assert all(np.isfinite(r["mpjpe_mm"]) and r["mpjpe_mm"] > 0 for r in val_records)
    # best/ is a loadable model folder whose validation error is the best one logged
    best = MotionTokenizer.from_pretrained(run / "best", device="cpu")
    assert best.config.code_num == 16 and best.config.width == 32
    clip = load_split(dataset, "val")[0]
    tokens = best.encode(clip.features)
    assert tokens.dtype == np.int64 and len(tokens) == len(clip.features) // 4
    assert min(r["mpjpe_local_mm"] for r in val_records) == val_records[-1]["best_mpjpe_mm"]
    assert isinstance(model, MotionTokenizer)


def test_resume_continues_exactly_where_the_run_stopped(dataset, tmp_path):
    straight = TokenizerTraining(data=str(dataset), out=str(tmp_path / "straight"), steps=6, **TINY)
    reference = train_tokenizer(straight)
    first = replace(straight, out=str(tmp_path / "resumed"), steps=3)
    train_tokenizer(first)
    resumed = train_tokenizer(replace(first, steps=6, resume=True))
    for key, value in reference.state_dict().items():
        torch.testing.assert_close(resumed.state_dict()[key], value, rtol=1e-5, atol=1e-6, msg=key)
    torch.testing.assert_close(resumed.quantizer.code_count, reference.quantizer.code_count)
    steps = [r["step"] for r in read_log(tmp_path / "resumed") if "loss" in r]
    assert steps == [2, 3, 4, 6]


def test_resume_refuses_other_model_sizes(dataset, tmp_path):
    config = TokenizerTraining(data=str(dataset), out=str(tmp_path / "run"), steps=3, **TINY)
    train_tokenizer(config)
    with pytest.raises(MotionError, match="checkpoint.pt.*model sizes"):
        train_tokenizer(replace(config, width=24, steps=6, resume=True))


def test_bad_settings_are_reported(dataset, tmp_path):
    config = TokenizerTraining(data=str(dataset), out=str(tmp_path / "run"), steps=2, **TINY)
    with pytest.raises(MotionError, match="window"):
        train_tokenizer(replace(config, window=30))
    with pytest.raises(MotionError, match="no training clip has 400 frames"):
        train_tokenizer(replace(config, window=400))
    with pytest.raises(MotionError, match="statistics"):
        train_tokenizer(replace(config, data=str(tmp_path)))
    assert main(["tokenizer", "--data", str(tmp_path / "missing"), "--out", str(tmp_path / "o")]) == 2


def test_learning_rate_warms_up_then_steps_down():
    config = TokenizerTraining(lr=1e-3, warmup=10, steps=300, decay_at=[200], lr_gamma=0.05)
    assert learning_rate(config, 0) == pytest.approx(1e-4)
    assert learning_rate(config, 9) == pytest.approx(1e-3)
    assert learning_rate(config, 199) == pytest.approx(1e-3)
    assert learning_rate(config, 200) == pytest.approx(5e-5)


def _distributed_worker(rank: int, world: int, port: int, config: TokenizerTraining, result_dir: str):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world),
                      LOCAL_RANK=str(rank), LOCAL_WORLD_SIZE=str(world))
    import torch.distributed as dist
    model = train_tokenizer(config)
    torch.save({"state": model.state_dict(), "ema": model.quantizer.ema_state()},
               Path(result_dir) / f"rank{rank}.pt")
    dist.destroy_process_group()


def test_two_gloo_processes_keep_identical_weights_and_codebook(dataset, tmp_path):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = TokenizerTraining(data=str(dataset), out=str(tmp_path / "ddp"), steps=4, **TINY)
    mp.spawn(_distributed_worker, args=(2, port, config, str(tmp_path)), nprocs=2, join=True)
    rank0 = torch.load(tmp_path / "rank0.pt", weights_only=True)
    rank1 = torch.load(tmp_path / "rank1.pt", weights_only=True)
    for key, value in rank0["state"].items():
        assert torch.equal(value, rank1["state"][key]), key
    for key, value in rank0["ema"].items():
        assert torch.equal(value, rank1["ema"][key]), key
    # the codebook really moved away from its initial latents, and training happened
    assert rank0["ema"]["initialised"]
    assert [r["step"] for r in read_log(tmp_path / "ddp") if "loss" in r] == [2, 4]


def test_heading_aligned_error_is_the_pose_alone(shared_data):
    """A real clip whose whole path has turned 40 degrees and moved: every joint is off by up to a
    metre with the pelvis aligned ("local"), and by nothing once the heading is aligned too; a
    changed pose (the arms dropped 0.2 m) still counts in full."""
    from engine.training.tokenizer import heading_aligned
    truth = np.load(shared_data / "humanml3d" / "new_joints" / "012314.npy").astype(np.float64)
    angle = np.radians(40.0)
    turned = truth.copy()
    turned[..., 0] = truth[..., 0] * np.cos(angle) + truth[..., 2] * np.sin(angle)
    turned[..., 2] = -truth[..., 0] * np.sin(angle) + truth[..., 2] * np.cos(angle)
    turned += np.array([2.0, 0.0, -1.0])
    local = np.linalg.norm((turned - turned[:, :1]) - (truth - truth[:, :1]), axis=-1)
    assert local.max() > 0.4
    assert np.abs(heading_aligned(turned, truth) - truth).max() < 1e-9
    dropped = truth.copy()
    dropped[:, 16:22, 1] -= 0.2                     # shoulders, elbows and wrists 0.2 m lower
    error = np.linalg.norm(heading_aligned(dropped, truth) - truth, axis=-1)
    assert np.allclose(error[:, 16:22], 0.2, atol=1e-6) and error[:, :16].max() < 1e-9


def test_window_weights_mix_the_source_share_with_the_label_balance():
    clips = [(name, np.zeros((frames, 263), np.float32)) for name, frames in
             (("dataset-2_bow_sad_001", 60), ("dataset-2_walk_normal_001", 60), ("dataset-2_walk_normal_002", 60),
              ("cmu_01_04", 720))]
    assert window_weights(clips, 0.0, 0.0) is None                        # uniform over clips
    np.testing.assert_allclose(window_weights(clips, 0.0, 1.0), [1 / 6, 1 / 6, 1 / 6, 1 / 2])
    half = window_weights(clips, 0.0, 0.5)
    np.testing.assert_allclose(half, 0.5 * np.full(4, 0.25) + 0.5 * np.array([1 / 6, 1 / 6, 1 / 6, 1 / 2]))
    with pytest.raises(MotionError, match="source_share 1.5"):
        window_weights(clips, 0.0, 1.5)


def test_device_cuda_without_index_is_the_ranks_own_gpu():
    # `--device cuda` crashed in torch.cuda.set_device ("Expected a torch.device with a specified
    # index") on a GPU machine: it now means cuda:LOCAL_RANK, as no --device does
    assert rank_device(torch.device("cuda"), 0) == torch.device("cuda", 0)
    assert rank_device(torch.device("cuda"), 3) == torch.device("cuda", 3)
    assert rank_device(torch.device("cuda", 1), 3) == torch.device("cuda", 1)
    assert rank_device(torch.device("cpu"), 2) == torch.device("cpu")


def test_time_warp_plays_a_real_clip_at_its_speed(dataset, shared_data):
    serve = Motion(np.load(shared_data / "humanml3d" / "new_joints" / "012314.npy")).to_features()
    normalizer = Normalizer.load(dataset)
    windows = MotionWindows([normalizer.normalize(serve)], 48, "serve", time_warp=0.25, normalizer=normalizer)
    clip = torch.tensor([0])

    def played(start: float, speed: float) -> np.ndarray:
        window = windows.play(clip, torch.tensor([start]), torch.tensor([speed]))[0].numpy()
        return normalizer.denormalize(window)

    np.testing.assert_allclose(played(10, 1.0), serve[10:58], atol=1e-5)
    # twice as fast: every second frame, each frame's velocities the moves of two frames
    double = played(4, 2.0)
    positions = slice(3, 193)                                           # root height, joints, rotations
    np.testing.assert_allclose(double[:, positions], serve[4:100:2, positions], atol=1e-5)
    velocities = np.r_[0:3, 193:259]
    np.testing.assert_allclose(double[:, velocities], serve[4:100:2, velocities] + serve[5:101:2, velocities],
                               atol=1e-5)
    # the body covers the same ground in fewer frames: at 1.25x the pelvis path integrated from the
    # warped velocities follows the original path read at the same times within 2 cm over 2 m.
    # (The moves summed over a span stay in their own frames' headings: exact without turning,
    # 1.5 cm off here at 1.25x, 9 cm at 2x for this turning serve.)
    fast_path = Motion.from_features(played(4, 1.25)).joints[:, 0]
    times = 1.25 * np.arange(48)
    original = Motion.from_features(serve[4:]).joints[:, 0]
    along = np.stack([np.interp(times, np.arange(len(original)), original[:, axis]) for axis in range(3)], axis=1)
    assert np.abs(fast_path - along).max() < 0.02 and np.abs(along - along[0]).max() > 1.0
    # between frames: interpolated, and foot contacts stay 0 or 1
    between = played(7.5, 1.5)
    np.testing.assert_allclose(between[0, 4:67], (serve[7, 4:67] + serve[8, 4:67]) / 2, atol=1e-5)
    np.testing.assert_allclose(between[1, 4:67], serve[9, 4:67], atol=1e-5)
    contacts = windows.sample(64, torch.Generator().manual_seed(0)).numpy()
    assert set(np.unique(normalizer.denormalize(contacts)[..., 259:].round(5))) <= {0.0, 1.0}
    # a speed-up never runs past the clip's last frame (which would hold it, frame after frame):
    # a clip just one window long plays at 1x at most
    short = MotionWindows([normalizer.normalize(serve[:48])], 48, "short", time_warp=1.0, normalizer=normalizer)
    for window in short.sample(32, torch.Generator().manual_seed(1)).numpy():
        assert np.abs(np.diff(window[:, 4:67], axis=0)).max(axis=1).min() > 1e-6


def test_time_warp_trains_and_refuses_bad_values(dataset, tmp_path):
    config = TokenizerTraining(data=str(dataset), out=str(tmp_path / "run"), steps=4, time_warp=0.25, **TINY)
    train_tokenizer(config)
    assert [r["step"] for r in read_log(tmp_path / "run") if "loss" in r] == [2, 4]
    with pytest.raises(MotionError, match="time_warp -0.5"):
        train_tokenizer(replace(config, time_warp=-0.5))
