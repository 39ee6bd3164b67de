"""engine.training lm under DDP: two CPU processes (gloo, as torchrun would start them) train a few
steps and end with identical weights, different from the initial ones.

The processes are started with torch.multiprocessing and torchrun's environment variables, as in
test_train_tokenizer.py; the dataset is that test's (HumanML3D 012314, its mirror and slices) and
the motion tokenizer a tiny randomly initialised one.
"""
import json
import os
import socket
from pathlib import Path

import torch
import torch.multiprocessing as mp
from transformers import AutoTokenizer

from engine.lm import new_t5
from engine.model import MotionGPT
from engine.training.lm import LMTraining, train_lm
from tests.engine.test_train_tokenizer import write_dataset
from tests.engine.tiny_models import tiny_motion_tokenizer

TINY = dict(batch=8, warmup=2, d_model=32, layers=1, heads=2, d_ff=64, text_vocab=400, log_every=2,
            val_every=3, val_examples=8, device="cpu")


def _worker(rank: int, world: int, port: int, config: LMTraining, result_dir: str):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world),
                      LOCAL_RANK=str(rank), LOCAL_WORLD_SIZE=str(world))
    import torch.distributed as dist
    model = train_lm(config)
    torch.save(model.lm.t5.state_dict(), Path(result_dir) / f"rank{rank}.pt")
    dist.destroy_process_group()


def test_two_gloo_processes_end_with_identical_weights(tmp_path, shared_data):
    dataset = write_dataset(tmp_path / "dataset", shared_data)
    vq = tiny_motion_tokenizer(shared_data, code_num=32).save_pretrained(tmp_path / "vq")
    run = tmp_path / "ddp"
    config = LMTraining(data=str(dataset), tokenizer=str(vq), out=str(run), steps=4, pretrain_steps=2, **TINY)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    mp.spawn(_worker, args=(2, port, config, str(tmp_path)), nprocs=2, join=True)

    rank0 = torch.load(tmp_path / "rank0.pt", weights_only=True)
    rank1 = torch.load(tmp_path / "rank1.pt", weights_only=True)
    assert rank0.keys() == rank1.keys() and "lm_head.weight" in rank0
    for key, value in rank0.items():
        assert torch.equal(value, rank1[key]), key
    # training happened: the weights left their (seeded, identical on both ranks) initial values
    text_tokenizer = AutoTokenizer.from_pretrained(str(run / "text_tokenizer"))
    initial = new_t5(len(text_tokenizer), 32, 1, 2, 64, 0.1, seed=config.seed).state_dict()
    moved = [key for key, value in rank0.items() if not torch.equal(value, initial[key])]
    assert "lm_head.weight" in moved and "shared.weight" in moved
    # rank 0 alone logged, with the loss averaged over both ranks, and saved a loadable best/
    records = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if "loss" in r] == [2, 4]
    assert all(torch.isfinite(torch.tensor(r["loss"])) for r in records if "loss" in r)
    state = torch.load(run / "checkpoint.pt", map_location="cpu", weights_only=False)
    assert state["world"] == 2 and state["step"] == 4 and len(state["rng"]) == 2
    assert state["rng"][0] != state["rng"][1]                      # each rank draws its own examples
    best = MotionGPT.from_pretrained(run / "best", device="cpu")
    assert best.text_to_motion("a person serves a tennis ball", seconds=1, seed=0).num_frames == 20
