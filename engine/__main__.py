"""The engine's command line: ``python -m engine <command> [arguments]`` (``--help`` lists them).

Every command is registered by name in ``COMMANDS``: a one-line help, a function that adds its
arguments to an argparse sub-parser, and a function that runs it (parsed arguments -> exit code).
A module that brings its own commands defines ``register_commands(register)``, calls
``register(...)`` for each, and is listed in ``COMMAND_MODULES``; it must stay cheap to import
(torch and friends are imported inside the command's function), because the CLI imports every
listed module to build ``--help``. Registering an existing name replaces that command.

Bad input never shows a traceback: ``engine.MotionError``, ``OSError`` (files) and Ctrl-C become
one line ``error: <message>`` on stderr and exit code 2, as do wrong arguments.
"""
from __future__ import annotations

import argparse
import importlib
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from .errors import MotionError
from .motion import MODEL_FPS

REPO_ROOT = Path(__file__).resolve().parent.parent
BUNDLED_MODEL = REPO_ROOT / "assets" / "models" / "default"
EXIT_BAD_INPUT = 2

# Modules that contribute commands through register_commands(register), e.g. "engine.model".
COMMAND_MODULES: tuple[str, ...] = ("engine.convert",)


@dataclass(frozen=True)
class Command:
    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int | None]


COMMANDS: dict[str, Command] = {}


def register(name: str, run: Callable[[argparse.Namespace], int | None],
             add_arguments: Callable[[argparse.ArgumentParser], None] = lambda parser: None,
             help: str = "") -> None:
    """Make ``python -m engine <name>`` call ``run(args)``; its return value (None = 0) is the exit code."""
    COMMANDS[name] = Command(help=help, add_arguments=add_arguments, run=run)


# ----------------------------------------------------------------------------- info, features

def add_bvh_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("bvh", type=Path, metavar="FILE.bvh", help="motion capture file")
    parser.add_argument("--bone-map", default=None, metavar="NAME|FILE.json",
                        help="how the file's bones map onto the 22 SMPL joints (default: detected)")


def run_info(args: argparse.Namespace) -> int:
    """Print a BVH file's frames, frame rate, duration and the bone map used (SMPL joint <- BVH joint)."""
    from .bone_maps import detect_bone_map, load_bone_map
    from .bvh import parse_bvh_file, read_bvh
    motion = read_bvh(args.bvh, bone_map=args.bone_map)  # checks the whole file first
    try:
        text = args.bvh.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        text = args.bvh.read_text(encoding="latin-1")
    joint_names = parse_bvh_file(text, source=str(args.bvh)).names
    bone_map = detect_bone_map(joint_names) if args.bone_map is None else load_bone_map(args.bone_map)
    print(f"file      {args.bvh}")
    print(f"frames    {motion.num_frames}")
    print(f"fps       {motion.fps:g}")
    print(f"duration  {motion.duration:.3f} s")
    print(f"bone map  {bone_map.source} ({'detected' if args.bone_map is None else 'given'}): {bone_map.name}")
    for joint, bvh_joint in bone_map.resolve(joint_names).items():
        print(f"  {joint:<14} <- {bvh_joint}")
    return 0


def add_features_arguments(parser: argparse.ArgumentParser) -> None:
    add_bvh_arguments(parser)
    parser.add_argument("--out", type=Path, required=True, metavar="X.npy",
                        help="where to write the (T-1, 263) float32 features")


def run_features(args: argparse.Namespace) -> int:
    """Write a BVH file's HumanML3D features at 20 fps: (T-1, 263) float32 .npy, T = frames at 20 fps."""
    if args.out.suffix != ".npy":
        raise MotionError(f"--out {args.out}: the output must be a .npy file")
    import numpy as np
    from .bvh import read_bvh
    motion = read_bvh(args.bvh, bone_map=args.bone_map).resample(MODEL_FPS)
    if motion.num_frames < 2:
        raise MotionError(f"{args.bvh}: {motion.num_frames} frame at {MODEL_FPS:g} fps; features need at least 2")
    features = motion.to_features().astype(np.float32)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.save(args.out, features)
    print(f"wrote {args.out}: {features.shape[0]} x {features.shape[1]} features "
          f"({motion.num_frames} frames at {MODEL_FPS:g} fps from {args.bvh})")
    return 0


# ----------------------------------------------------------------------------- demo

def add_demo_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("text", metavar="TEXT", help='what the person does, e.g. "a person walks forward and waves"')
    parser.add_argument("--model", type=Path, default=BUNDLED_MODEL, metavar="FOLDER",
                        help="model folder with config.json (default: the bundled model)")


def run_demo(args: argparse.Namespace) -> int:
    """Text to motion with the bundled model; until that model exists, says so."""
    if not (args.model / "config.json").is_file():
        if args.model.resolve() == BUNDLED_MODEL:
            raise MotionError("the bundled model is not built yet (assets/models/default/config.json is missing)")
        raise MotionError(f"{args.model}: not a model folder (no config.json)")
    raise MotionError(f"{args.model} has a config.json, but the demo is not connected to the model yet")


register("info", run_info, add_bvh_arguments, help="frames, fps, duration and bone map of a BVH file")
register("features", run_features, add_features_arguments, help="HumanML3D 263-d features (20 fps) of a BVH file")
register("demo", run_demo, add_demo_arguments, help="generate motion from text with the bundled model")


# ----------------------------------------------------------------------------- main

class ArgumentParser(argparse.ArgumentParser):
    """argparse that reports a wrong argument as one line ``error: ...`` and exit code 2."""

    def error(self, message: str):
        self.exit(EXIT_BAD_INPUT, f"error: {message} (see: {self.prog} --help)\n")


def build_parser() -> ArgumentParser:
    for module_name in COMMAND_MODULES:
        importlib.import_module(module_name).register_commands(register)
    parser = ArgumentParser(prog="python -m engine", description="MotionGPT engine command line.")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, command in COMMANDS.items():
        subparser = subparsers.add_parser(name, help=command.help, description=command.help)
        command.add_arguments(subparser)
        subparser.set_defaults(run=command.run)
    return parser


def describe_os_error(error: OSError) -> str:
    if error.filename is not None and error.strerror:
        return f"{error.filename}: {error.strerror}"
    return str(error)


def main(argv: list[str] | None = None) -> int:
    """Run one command; returns the exit code (0 ok, 2 bad input)."""
    try:
        args = build_parser().parse_args(argv)
        return args.run(args) or 0
    except BrokenPipeError:  # output piped into `head` and the like: not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except MotionError as error:
        message = str(error)
    except OSError as error:
        message = describe_os_error(error)
    except KeyboardInterrupt:
        message = "interrupted"
    print(f"error: {message}", file=sys.stderr)
    return EXIT_BAD_INPUT


if __name__ == "__main__":
    sys.exit(main())
