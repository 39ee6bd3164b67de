"""The training command line, one sub-command per model:

    python -m engine.training tokenizer --data DIR --out DIR [--steps N --batch 128 --window 64 ...]

    python -m engine.training lm --data DIR --tokenizer DIR --out DIR [--steps N --batch 64 ...]

(the loops live in engine/training/tokenizer.py and engine/training/lm.py.)
"""
from __future__ import annotations

import argparse
import sys

import torch.distributed as dist

from ..errors import MotionError
from .lm import LMTraining, add_lm_arguments, train_lm
from .tokenizer import TokenizerTraining, add_tokenizer_arguments, train_tokenizer


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m engine.training", description="Train the engine's models.")
    commands = parser.add_subparsers(dest="command", required=True)
    add_tokenizer_arguments(commands.add_parser("tokenizer", help="the motion tokenizer (VQ-VAE)"))
    add_lm_arguments(commands.add_parser("lm", help="the language model (T5 with motion tokens)"))
    args = parser.parse_args(argv)
    try:
        values = {k: v for k, v in vars(args).items() if k != "command"}
        if args.command == "tokenizer":
            train_tokenizer(TokenizerTraining(**values))
        elif args.command == "lm":
            train_lm(LMTraining(**values))
    except MotionError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
