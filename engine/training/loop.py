"""The training loop of both trainers (the motion tokenizer's, engine/training/tokenizer.py, and the
language model's, engine/training/lm.py), read top to bottom in ``train``:

1. ``--resume``: load the run folder's ``checkpoint.pt`` (model, optimiser, step, best validation
   score and every rank's random state), once its model sizes are checked against this run's;
2. wrap the model in DistributedDataParallel when ``torchrun`` started more than one process;
3. until ``steps``: set the learning rate, take one optimisation step, and
   - every ``log_every`` steps: log the step's numbers summed over the interval and the ranks,
     with ``seconds_per_step``;
   - every ``val_every`` steps: validate on rank 0, write ``best/`` when the score went down, and
     write ``checkpoint.pt`` with every rank's random state.

The model-specific parts (data, model, optimiser, the step, validation, ``best/``) come from a
trainer object (``Trainer`` lists them). Only rank 0 prints and writes files: ``log.jsonl``,
``best/`` and ``checkpoint.pt``.
"""
from __future__ import annotations

import json
import math
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol

import torch
import torch.distributed as dist

from ..errors import MotionError
from ..tokenizer import resolve_device


# ----------------------------------------------------------------------------- distributed helpers

@dataclass
class Ranks:
    rank: int = 0
    world: int = 1
    local: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0


def rank_device(device: torch.device, local_rank: int) -> torch.device:
    """``--device cuda`` (no index) means this process's own GPU, cuda:LOCAL_RANK, as with no
    --device at all: ``torch.cuda.set_device`` refuses a CUDA device without an index. Any other
    device stays as it is."""
    if device.type == "cuda" and device.index is None:
        return torch.device("cuda", local_rank)
    return device


def start_distributed(device_request: str | None) -> tuple[Ranks, torch.device]:
    """Join the torchrun process group when WORLD_SIZE > 1; pick this rank's device."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    ranks = Ranks(int(os.environ.get("RANK", "0")), world, int(os.environ.get("LOCAL_RANK", "0")))
    if device_request is None and torch.cuda.is_available():
        device = torch.device("cuda", ranks.local)
    else:
        device = rank_device(resolve_device(device_request or "cpu"), ranks.local)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    else:
        local_world = int(os.environ.get("LOCAL_WORLD_SIZE", str(world)))
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // max(1, local_world)))
    if world > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return ranks, device


def all_sum(tensor: torch.Tensor) -> torch.Tensor:
    if dist.is_initialized():
        dist.all_reduce(tensor)
    return tensor


def gather(value: Any, ranks: Ranks) -> list:
    """Every rank's ``value``, in rank order (on every rank)."""
    if ranks.world == 1:
        return [value]
    values = [None] * ranks.world
    dist.all_gather_object(values, value)
    return values


# ----------------------------------------------------------------------------- what a trainer supplies

class Trainer(Protocol):
    """The model-specific parts of a run, built by ``TokenizerTrainer(config, ranks, device)`` or
    ``LMTrainer(...)``: data, model and optimiser are ready, nothing is loaded from the run folder yet."""

    model: torch.nn.Module          # what DistributedDataParallel wraps: checkpoint.pt's "model"
    optimizer: torch.optim.Optimizer
    ddp_options: dict               # DistributedDataParallel's keyword arguments
    sizes: dict                     # {checkpoint.pt key: value} that must match for --resume
    score: str                      # the validation number that picks best/ (lower is better) ...
    best: str                       # ... and the name of its best value in log.jsonl and checkpoint.pt
    best_text: str                  # how "resumed ..." shows it: "best MPJPE {:.1f} mm"
    weights_only: bool              # torch.load's, for checkpoint.pt
    header: str                     # rank 0 prints it before the first step

    def learning_rate(self, step: int) -> float: ...

    def step(self, network: torch.nn.Module, step: int) -> torch.Tensor:
        """One optimisation step (``network``: ``model``, maybe in DDP); returns the float64
        numbers that the log sums over its interval and the ranks."""

    def record(self, step: int, lr: float, totals: torch.Tensor, count: int) -> dict:
        """The log record between "step" and "seconds_per_step", of ``totals`` (the step
        numbers summed over ``count`` steps of all ranks)."""

    def validate(self) -> dict:
        """Rank 0: the validation numbers to log, ``score`` among them."""

    def save_best(self, step: int, score: float) -> None:
        """Rank 0: write ``best/``."""

    def state(self) -> dict:
        """checkpoint.pt's entries besides the model, optimiser and loop's own."""

    def load(self, state: dict) -> None:
        """Take back ``state``'s entries (after the model's weights, before the optimiser's)."""

    def rng_state(self) -> Any:
        """This rank's random state, for checkpoint.pt."""

    def set_rng_state(self, saved: Any, step: int) -> None:
        """Continue ``saved``; None when the process count changed: start fresh, distinct
        streams for ``step``."""


# ----------------------------------------------------------------------------- the training loop

def train(trainer: Trainer, config, ranks: Ranks, device: torch.device) -> None:
    """Train (or with ``config.resume``, continue) up to ``config.steps`` as described in the
    module docstring. ``config`` is the trainer's dataclass: out, steps, log_every, val_every,
    resume are read here, and all of it but resume is saved in checkpoint.pt."""
    out = Path(config.out)
    checkpoint_path = out / "checkpoint.pt"
    model, optimizer = trainer.model, trainer.optimizer
    step, best = 0, math.inf

    if config.resume and checkpoint_path.is_file():
        state = torch.load(checkpoint_path, map_location="cpu", weights_only=trainer.weights_only)
        for key, sizes in trainer.sizes.items():
            if state[key] != sizes:
                raise MotionError(f"{checkpoint_path}: the run was started with model sizes {state[key]}, "
                                  f"not {sizes}")
        model.load_state_dict(state["model"])
        trainer.load(state)
        optimizer.load_state_dict(state["optimizer"])
        step, best = state["step"], state[trainer.best]
        trainer.set_rng_state(state["rng"][ranks.rank] if state["world"] == ranks.world else None, step)
        if ranks.main:
            print(f"resumed {checkpoint_path} at step {step} ({trainer.best_text.format(best)})", flush=True)
    elif config.resume and ranks.main:
        print(f"--resume: no {checkpoint_path} yet, starting from scratch", flush=True)

    network = model
    if ranks.world > 1:
        network = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None, **trainer.ddp_options)

    log = None
    if ranks.main:
        out.mkdir(parents=True, exist_ok=True)
        print(trainer.header, flush=True)
        log = (out / "log.jsonl").open("a", encoding="utf-8")
    sums, interval_start, interval_steps = None, time.time(), 0

    while step < config.steps:
        lr = trainer.learning_rate(step)
        for group in optimizer.param_groups:
            group["lr"] = lr
        numbers = trainer.step(network, step)
        step += 1
        sums = numbers if sums is None else sums + numbers
        interval_steps += 1

        if step % config.log_every == 0 or step == config.steps:
            totals = all_sum(sums.to(device)).cpu()
            record = {"step": step, **trainer.record(step, lr, totals, interval_steps * ranks.world),
                      "seconds_per_step": (time.time() - interval_start) / interval_steps}
            if ranks.main:
                _emit(record, log)
            sums, interval_start, interval_steps = None, time.time(), 0

        if step % config.val_every == 0 or step == config.steps:
            if ranks.main:
                result = trainer.validate()
                improved = result[trainer.score] < best
                if improved:
                    best = result[trainer.score]
                    trainer.save_best(step, best)
                _emit({"step": step, "split": "val", **result, trainer.best: best, "saved_best": improved}, log)
            rngs = gather(trainer.rng_state(), ranks)
            if ranks.main:
                _save_checkpoint(checkpoint_path, {
                    "model": {k: v.cpu() for k, v in model.state_dict().items()}, **trainer.state(),
                    "optimizer": optimizer.state_dict(), "step": step, trainer.best: best, "rng": rngs,
                    "world": ranks.world, **trainer.sizes,
                    "training": {k: v for k, v in asdict(config).items() if k != "resume"}})
            if ranks.world > 1:
                dist.barrier()
            interval_start = time.time()

    if log is not None:
        log.close()


def _emit(record: dict, log) -> None:
    print(" ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in record.items()), flush=True)
    log.write(json.dumps(record) + "\n")
    log.flush()


def _save_checkpoint(path: Path, state: dict) -> None:
    """torch.save to a temporary file, then rename: a crash never leaves half a checkpoint."""
    temporary = path.with_suffix(".tmp")
    torch.save(state, temporary)
    os.replace(temporary, path)
