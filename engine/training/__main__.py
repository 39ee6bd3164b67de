"""The training command line, one sub-command per model:

    python -m engine.training tokenizer --data DIR --out DIR [--steps N --batch 128 --window 64 ...]

    python -m engine.training lm --data DIR --tokenizer DIR --out DIR [--steps N --batch 64 ...]

    python -m engine.training relabel --tokenizer NEW --like OLD --data DIR --out DIR [--fp16]

(one training loop, engine/training/loop.py; the models' parts are in engine/training/tokenizer.py
and engine/training/lm.py; relabel, engine/training/relabel.py, gives a retrained tokenizer's codes
an earlier tokenizer's numbers, so that the language model can be fine-tuned from its old weights.)
"""
from __future__ import annotations

import argparse
import sys
from dataclasses import fields

import torch.distributed as dist

from ..errors import MotionError
from .lm import LMTraining, train_lm
from .relabel import Relabelling, relabel
from .tokenizer import TokenizerTraining, train_tokenizer

DATA_HELP = "dataset folder (python -m engine.data build)"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m engine.training", description="Train the engine's models.")
    commands = parser.add_subparsers(dest="command", required=True)
    add_flags(commands.add_parser("tokenizer", help="the motion tokenizer (VQ-VAE)"), TokenizerTraining,
              {"data": DATA_HELP, "out": "run folder: checkpoint.pt, log.jsonl, best/"})
    add_flags(commands.add_parser("lm", help="the language model (T5 with motion tokens)"), LMTraining,
              {"data": DATA_HELP, "tokenizer": "trained motion tokenizer folder (e.g. RUN/best)",
               "out": "run folder: tokens.json, checkpoint.pt, log.jsonl, best/"})
    add_flags(commands.add_parser("relabel", help="give a retrained tokenizer's codes an earlier one's numbers"),
              Relabelling, {"tokenizer": "the retrained tokenizer folder", "like": "the tokenizer whose numbers it takes",
                            "data": DATA_HELP + ": its training clips are encoded by both",
                            "out": "folder for the relabelled tokenizer"})
    args = parser.parse_args(argv)
    try:
        values = {k: v for k, v in vars(args).items() if k != "command"}
        if args.command == "tokenizer":
            train_tokenizer(TokenizerTraining(**values))
        elif args.command == "lm":
            train_lm(LMTraining(**values))
        elif args.command == "relabel":
            relabel(Relabelling(**values))
    except MotionError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
    return 0


def add_flags(parser: argparse.ArgumentParser, settings: type, required: dict[str, str]) -> None:
    """A flag for each field of the ``settings`` dataclass, named alike (``--log-every``), with its
    default; the ``required`` ones ({name: help}) first."""
    for name, text in required.items():
        parser.add_argument("--" + name, required=True, help=text)
    defaults = settings()
    for item in fields(settings):
        if item.name in required:
            continue
        flag = "--" + item.name.replace("_", "-")
        value = getattr(defaults, item.name)
        if isinstance(value, bool):
            parser.add_argument(flag, action="store_true")
        elif item.name == "decay_at":
            parser.add_argument(flag, type=int, nargs="*", default=[], help="steps where lr *= lr-gamma")
        elif item.name == "device":
            parser.add_argument(flag, default=None, help="cpu, cuda, cuda:1 (default: cuda when available)")
        else:
            parser.add_argument(flag, type=type(value), default=value, help=f"default {value!r}")


if __name__ == "__main__":
    raise SystemExit(main())
