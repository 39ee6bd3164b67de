"""The engine's command line: ``python -m engine <command> [arguments]`` (``--help`` lists them).

Every command is registered by name in ``COMMANDS``: a one-line help, a function that adds its
arguments to an argparse sub-parser, and a function that runs it (parsed arguments -> exit code).
A module that brings its own commands defines ``register_commands(register)``, calls
``register(...)`` for each, and is listed in ``COMMAND_MODULES``; it must stay cheap to import
(torch and friends are imported inside the command's function), because the CLI imports every
listed module to build ``--help``. Registering an existing name replaces that command.

Bad input never shows a traceback: ``engine.MotionError``, ``OSError`` (files) and Ctrl-C become
one line ``error: <message>`` on stderr and exit code 2, as do wrong arguments and any unexpected
exception (``--debug``, before or after the command, adds its traceback). Output never fails on
a console that cannot encode a character (it is written as a ``\\x..`` escape). Every file a
command writes goes through ``engine.files`` (temporary file + rename), so a failed write leaves
the file that was there before intact.
"""
from __future__ import annotations

import argparse
import importlib
import io
import os
import sys
import traceback
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from .errors import MotionError
from .files import prepare_output, save_npy, write_text
from .motion import MODEL_FPS

EXIT_BAD_INPUT = 2

# Modules that contribute commands through register_commands(register), e.g. "engine.model".
COMMAND_MODULES: tuple[str, ...] = ("engine.convert", "engine.demo", "engine.official")


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
    parser.add_argument("bvh", type=Path, metavar="FILE.bvh|FILE.amc", help="motion capture file (BVH or Acclaim AMC)")
    parser.add_argument("--bone-map", default=None, metavar="NAME|FILE.json",
                        help="how the file's bones map onto the 22 SMPL joints (default: detected)")
    add_asf_arguments(parser)


def add_asf_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--asf", type=Path, default=None, metavar="FILE.asf",
                        help="the Acclaim skeleton of an .amc file (default: the .asf beside it whose name "
                             "starts the .amc's name, or the only one there)")
    parser.add_argument("--fps", type=float, default=None,
                        help="frame rate of an .amc file, which does not store it (default 120, as CMU and HDM05)")


def read_acclaim(path: Path, asf: Path | None = None, bone_map=None, fps: float | None = None):
    """(Motion, AsfSkeleton, BoneMap) of an .amc file and its ASF (``--asf`` or ``engine.formats.asf.find_asf``)."""
    from .formats.asf import DEFAULT_FPS, acclaim_bone_map, asf_amc_to_motion, find_asf, read_amc, read_asf
    from .formats.bone_maps import load_bone_map
    skeleton = read_asf(asf if asf is not None else find_asf(path))
    motion = asf_amc_to_motion(skeleton, read_amc(path, skeleton), bone_map, DEFAULT_FPS if fps is None else fps)
    return motion, skeleton, acclaim_bone_map() if bone_map is None else load_bone_map(bone_map)


def check_acclaim_options(path: Path, args: argparse.Namespace) -> bool:
    """True for an .amc file; --asf / --fps given for any other file is a MotionError."""
    if path.suffix.lower() == ".amc":
        return True
    if path.suffix.lower() == ".asf":
        raise MotionError(f"{path}: an .asf file is a skeleton without motion; give its .amc motion file "
                          f"(with --asf {path})")
    for option in ("asf", "fps"):
        if getattr(args, option, None) is not None:
            raise MotionError(f"--{option} is for Acclaim .amc motion files, not {path}")
    return False


def run_info(args: argparse.Namespace) -> int:
    """Print a BVH file's frames, frame rate, duration and the bone map used (SMPL joint <- BVH joint)."""
    from .formats.bone_maps import detect_bone_map, load_bone_map
    from .formats.bvh import bvh_to_motion, read_bvh_file
    if check_acclaim_options(args.bvh, args):
        motion, skeleton, bone_map = read_acclaim(args.bvh, args.asf, args.bone_map, args.fps)
        names = skeleton.names
        print(f"file      {args.bvh}")
        print(f"skeleton  {skeleton.source}")
    else:
        bvh_file = read_bvh_file(args.bvh)
        motion = bvh_to_motion(bvh_file, args.bone_map, source=str(args.bvh))  # checks the map and the motion
        bone_map = detect_bone_map(bvh_file.names) if args.bone_map is None else load_bone_map(args.bone_map)
        names = bvh_file.names
        print(f"file      {args.bvh}")
    print(f"frames    {motion.num_frames}")
    print(f"fps       {motion.fps:g}")
    print(f"duration  {motion.duration:.3f} s")
    print(f"bone map  {bone_map.source} ({'detected' if args.bone_map is None else 'given'}): {bone_map.name}")
    for joint, bvh_joint in bone_map.resolve(names).items():
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
    prepare_output(args.out, "--out")
    import numpy as np
    from .formats.bvh import read_bvh
    if check_acclaim_options(args.bvh, args):
        motion = read_acclaim(args.bvh, args.asf, args.bone_map, args.fps)[0].resample(MODEL_FPS)
    else:
        motion = read_bvh(args.bvh, bone_map=args.bone_map).resample(MODEL_FPS)
    if motion.num_frames < 2:
        raise MotionError(f"{args.bvh}: {motion.num_frames} frame at {MODEL_FPS:g} fps; features need at least 2")
    features = motion.to_features().astype(np.float32)
    if not np.isfinite(features).all():
        raise MotionError(f"{args.bvh}: its features contain NaN or infinite values (a degenerate skeleton: "
                          f"two joints at one place? check the bone map)")
    save_npy(args.out, features, what="--out")
    print(f"wrote {args.out}: {features.shape[0]} x {features.shape[1]} features "
          f"({motion.num_frames} frames at {MODEL_FPS:g} fps from {args.bvh})")
    return 0


register("info", run_info, add_bvh_arguments,
         help="frames, fps, duration and bone map of a BVH file (or an Acclaim .amc with --asf)")
register("features", run_features, add_features_arguments, help="HumanML3D 263-d features (20 fps) of a BVH file")


# ----------------------------------------------------------------------------- the four tasks

def add_model_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default="default", metavar="FOLDER|REPO",
                        help='model folder, hub repo id, "default" (the bundled model) or "official" '
                             '(MotionGPT-base, downloaded and converted once: fetch-official)')
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:1 (default: cuda when available)")


def add_seed_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--seed", type=int, default=None, help="random seed (same seed, same result)")


def add_out_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, required=True, metavar="X.bvh|X.npy",
                        help="output: BVH (SMPL skeleton) or .npy joints (T, 22, 3) at 20 fps")


def load_model(args: argparse.Namespace):
    from .model import MotionGPT
    return MotionGPT.from_pretrained(args.model, device=args.device)


MAX_JOINT_METRES = 1e4  # joint positions farther than this from the origin are not metres


def read_motion_file(path: Path, asf: Path | None = None, fps: float | None = None):
    """A .bvh file, an Acclaim .amc (skeleton: ``asf`` or found beside it, ``fps`` default 120) or a
    .npy of (T, 22, 3) joints at 20 fps -> Motion; MotionError naming the file."""
    import numpy as np
    from .formats.bvh import read_bvh
    from .files import load_npy
    from .motion import Motion
    if path.is_dir():
        raise MotionError(f"motion file {path}: is a folder, not a .bvh or .npy file")
    if path.suffix.lower() == ".bvh":
        return read_bvh(path)
    if path.suffix.lower() == ".amc":
        return read_acclaim(path, asf, fps=fps)[0]
    if path.suffix.lower() != ".npy":
        raise MotionError(f"{path}: unsupported motion file (use .bvh, .amc with its .asf, or .npy joints)")
    try:
        with warnings.catch_warnings():  # e.g. numpy on a header written by Python 2: not the user's concern
            warnings.simplefilter("ignore")
            joints = load_npy(path, what="motion file")
    except MotionError:
        raise
    except Exception as error:  # numpy's header parser raises more than ValueError on a damaged header
        raise MotionError(f"motion file {path}: its .npy header is damaged ({type(error).__name__}: {error})") from None
    if joints.ndim != 3 or joints.shape[1:] != (22, 3):
        raise MotionError(f"motion file {path}: expected (T, 22, 3) joints, got shape {joints.shape}")
    if joints.size and np.isfinite(joints).all() and np.abs(joints).max() > MAX_JOINT_METRES:
        raise MotionError(f"motion file {path}: joint positions reach {np.abs(joints).max():.3g}; expected "
                          f"metres (at most {MAX_JOINT_METRES:g} from the origin)")
    try:
        return Motion(joints, MODEL_FPS)
    except MotionError as error:
        raise MotionError(f"motion file {path}: {error}") from None


def write_motion(motion, path: Path) -> None:
    """Write ``motion`` as BVH or .npy joints by ``path``'s suffix, atomically (``engine.files``)."""
    from .formats.bvh import write_bvh
    if path.suffix.lower() == ".bvh":
        write_bvh(motion, path)
    else:
        save_npy(path, motion.joints, what="output")


def write_motion_file(motion, path: Path) -> None:
    """``write_motion`` to --out and say so on stdout."""
    check_output(path)
    write_motion(motion, path)
    print(f"wrote {path}: {motion.num_frames} frames at {motion.fps:g} fps ({motion.duration:.2f} s)")


def check_output(path: Path) -> None:
    """Refuse an --out that is not .bvh / .npy, is a folder or lies under a file, before any work is done."""
    if path.suffix.lower() not in (".bvh", ".npy"):
        raise MotionError(f"--out {path}: the output must be a .bvh or .npy file")
    prepare_output(path, "--out")


def check_text(value: str | None, name: str) -> None:
    """Refuse a text argument that is not valid UTF-8 (the shell passed bytes Python kept as surrogates)."""
    if value is None:
        return
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        shown = value.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
        raise MotionError(f"{name} '{shown}' is not valid UTF-8 text") from None


def add_generate_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("text", metavar="TEXT", help='what the person does, e.g. "a person jumps"')
    parser.add_argument("--seconds", type=float, default=None, help="length (default: the model decides)")
    add_seed_argument(parser)
    add_out_argument(parser)
    add_model_argument(parser)


def run_generate(args: argparse.Namespace) -> int:
    """Text to motion through the planner (a compound prompt becomes a timeline; its plan is
    printed), written as BVH or .npy joints."""
    from .text.reading import print_notices
    from .timeline import plan_prompt, text_to_motion_planned
    check_text(args.text, "TEXT")
    check_output(args.out)
    model = load_model(args)
    motion, plan = text_to_motion_planned(model, args.text, seconds=args.seconds, seed=args.seed)
    if plan is not None:
        print(f"planned as: {plan}")
    print_notices(model, [args.text] if plan is None else [row.text for row in plan_prompt(args.text)])
    write_motion_file(motion, args.out)
    return 0



def add_timeline_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", type=Path, metavar="PLAN.tsv",
                        help="one row per line: start<TAB>seconds<TAB>part<TAB>text (part: whole, upper or "
                             "lower; start or seconds '-' for: after the previous row / the model chooses)")
    add_seed_argument(parser)
    add_out_argument(parser)
    add_model_argument(parser)


def run_timeline(args: argparse.Namespace) -> int:
    """A timeline file generated into one motion (row i with seed + i), written as BVH or .npy."""
    from .text.reading import print_notices
    from .timeline import compose_timeline, read_timeline_file
    rows = read_timeline_file(args.file)          # bad rows are refused before the model loads
    check_output(args.out)
    model = load_model(args)
    composed = compose_timeline(model, rows, seed=args.seed, source=str(args.file))
    print(f"planned as: {composed.plan}")
    print_notices(model, [row.text for row in rows])
    write_motion_file(composed.motion, args.out)
    return 0


def add_describe_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", type=Path, metavar="FILE", help=".bvh, .amc or .npy (T, 22, 3) joints at 20 fps")
    add_asf_arguments(parser)
    add_model_argument(parser)


def run_describe(args: argparse.Namespace) -> int:
    """Print a caption of a motion file."""
    check_acclaim_options(args.file, args)
    motion = read_motion_file(args.file, args.asf, args.fps)
    print(load_model(args).describe(motion))
    return 0


def add_predict_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", type=Path, metavar="FILE", help=".bvh, .amc or .npy (T, 22, 3) joints at 20 fps")
    add_asf_arguments(parser)
    parser.add_argument("--seconds", type=float, required=True, help="how much motion to add, in seconds")
    add_seed_argument(parser)
    add_out_argument(parser)
    add_model_argument(parser)


def run_predict(args: argparse.Namespace) -> int:
    """The file's motion (at 20 fps) continued by --seconds."""
    check_output(args.out)
    check_acclaim_options(args.file, args)
    motion = read_motion_file(args.file, args.asf, args.fps)
    write_motion_file(load_model(args).predict(motion, args.seconds, seed=args.seed), args.out)
    return 0


def add_inbetween_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("before", type=Path, metavar="BEFORE", help="motion before the gap (.bvh / .npy)")
    parser.add_argument("after", type=Path, metavar="AFTER", help="motion after the gap (.bvh / .npy)")
    parser.add_argument("--frames", type=int, required=True, help="new frames to fill the gap with (20 fps)")
    parser.add_argument("--text", default=None, help="what the person does in the gap")
    parser.add_argument("--full", action="store_true", help="write before + gap + after instead of the gap")
    add_seed_argument(parser)
    add_out_argument(parser)
    add_model_argument(parser)


def run_inbetween(args: argparse.Namespace) -> int:
    """Exactly --frames new frames between two motions."""
    from .motion import Motion
    check_text(args.text, "--text")
    check_output(args.out)
    before, after = read_motion_file(args.before), read_motion_file(args.after)
    gap = load_model(args).inbetween(before, after, args.frames, text=args.text, seed=args.seed)
    if args.full:
        gap = Motion.concatenate([before.resample(MODEL_FPS), gap, after.resample(MODEL_FPS)])
    write_motion_file(gap, args.out)
    return 0


def add_batch_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("list", type=Path, metavar="LIST.txt",
                        help="one caption per line; optional 'SECONDS<TAB>caption'; # comments")
    parser.add_argument("--out-dir", type=Path, required=True, help="folder for 0001.bvh, 0002.bvh, ...")
    parser.add_argument("--seconds", type=float, default=None, help="length of every clip without its own")
    parser.add_argument("--format", choices=("bvh", "npy"), default="bvh")
    parser.add_argument("--batch-size", type=int, default=8, help="captions generated together")
    add_seed_argument(parser)
    add_model_argument(parser)


def read_caption_list(path: Path, default_seconds: float | None) -> list[tuple[str, float | None]]:
    """(caption, seconds) per line of a UTF-8 list; MotionError naming the file and line when wrong."""
    if path.is_dir():
        raise MotionError(f"caption list {path}: is a folder, not a text file")
    data = path.read_bytes()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        number = data.count(b"\n", 0, error.start) + 1
        raise MotionError(f"{path}:{number}: not UTF-8 text (byte 0x{data[error.start]:02x}); "
                          f"save the caption list as UTF-8") from None
    items = []
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        seconds = default_seconds
        if "\t" in line:
            head, line = line.split("\t", 1)
            try:
                seconds = float(head)
            except ValueError:
                raise MotionError(f"{path}:{number}: {head!r} before the tab is not a number of seconds") from None
            if not 0 < seconds < float("inf"):
                raise MotionError(f"{path}:{number}: {head!r} before the tab is not a positive number of seconds")
            if not line.strip():
                raise MotionError(f"{path}:{number}: no caption after the tab")
        items.append((" ".join(line.split()), seconds))  # one line in captions.tsv, whatever the spacing
    if not items:
        raise MotionError(f"{path}: no captions (one per line)")
    return items


def run_batch(args: argparse.Namespace) -> int:
    """Text to motion for every line of a file; a plain-text progress bar on stderr."""
    from .text.reading import print_notices
    if args.batch_size < 1:
        raise MotionError(f"--batch-size must be at least 1, got {args.batch_size}")
    items = read_caption_list(args.list, args.seconds)
    if args.out_dir.exists() and not args.out_dir.is_dir():
        raise MotionError(f"--out-dir {args.out_dir}: is a file, not a folder")
    index = args.out_dir / "captions.tsv"
    prepare_output(index, "--out-dir")  # makes the folder; a file on its way is refused before the model loads
    model = load_model(args)
    written = 0
    progress(0, len(items))
    try:
        for first in range(0, len(items), args.batch_size):
            chunk = items[first: first + args.batch_size]
            seed = None if args.seed is None else args.seed + first
            motions = model.text_to_motion_batch([c for c, _ in chunk], [s for _, s in chunk], seed=seed)
            print_notices(model, [c for c, _ in chunk])
            for offset, motion in enumerate(motions):
                write_motion(motion, args.out_dir / f"{first + offset + 1:04d}.{args.format}")
                written += 1
            progress(written, len(items))
        write_text(index, "".join(f"{i + 1:04d}.{args.format}\t{c}\n" for i, (c, _) in enumerate(items)),
                   encoding="utf-8", what="caption index")
    except MotionError as error:
        raise MotionError(f"{error} ({written} of {len(items)} clips were written to {args.out_dir} "
                          f"before this)") from None
    print(f"wrote {len(items)} motions to {args.out_dir} (list: {index})")
    return 0


def progress(done: int, total: int, width: int = 30) -> None:
    """``[#####.....]  3/10`` on stderr, one line per update (works in logs and terminals)."""
    filled = width * done // max(total, 1)
    print(f"[{'#' * filled}{'.' * (width - filled)}] {done}/{total}", file=sys.stderr, flush=True)


register("generate", run_generate, add_generate_arguments, help="text to motion (.bvh or .npy)")
register("timeline", run_timeline, add_timeline_arguments, help="a timeline of prompts to one motion (.bvh or .npy)")
register("describe", run_describe, add_describe_arguments, help="caption a motion file")
register("predict", run_predict, add_predict_arguments, help="continue a motion file")
register("inbetween", run_inbetween, add_inbetween_arguments, help="fill the gap between two motions")
register("batch", run_batch, add_batch_arguments, help="text to motion for every line of a file")


# ----------------------------------------------------------------------------- main

class ArgumentParser(argparse.ArgumentParser):
    """argparse that reports a wrong argument as one line ``error: ...`` and exit code 2."""

    def error(self, message: str):
        self.exit(EXIT_BAD_INPUT, f"error: {message} (see: {self.prog} --help)\n")


DEBUG_HELP = "on an error, also print the Python traceback"


def build_parser() -> ArgumentParser:
    for module_name in COMMAND_MODULES:
        importlib.import_module(module_name).register_commands(register)
    parser = ArgumentParser(prog="python -m engine", description="MotionGPT engine command line.")
    parser.add_argument("--debug", action="store_true", help=DEBUG_HELP)
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, command in COMMANDS.items():
        subparser = subparsers.add_parser(name, help=command.help, description=command.help)
        command.add_arguments(subparser)
        subparser.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=DEBUG_HELP)
        subparser.set_defaults(run=command.run)
    return parser


def describe_os_error(error: OSError) -> str:
    if error.filename is not None and error.strerror:
        return f"{error.filename}: {error.strerror}"
    return str(error)


def error_message(error: BaseException) -> str:
    """The text after ``error: `` for an exception that ended a command."""
    if isinstance(error, MotionError):
        return str(error)
    if isinstance(error, OSError):
        return describe_os_error(error)
    if isinstance(error, KeyboardInterrupt):
        return "interrupted"
    if isinstance(error, MemoryError):
        return "out of memory (is an input file or argument far larger than intended?)"
    # A bug or an unforeseen input: still one line, the traceback on request.
    text = str(error) if len(str(error)) <= 300 else str(error)[:300] + "..."
    return (f"unexpected {type(error).__name__}: {text} (run with --debug before the command for the "
            f"traceback, and please report it)")


def make_output_safe() -> None:
    """Let stdout / stderr write any text: what the console's encoding lacks becomes a ``\\x..`` escape."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.reconfigure(errors="backslashreplace")
        except (AttributeError, ValueError, io.UnsupportedOperation):
            pass  # not a text stream we can reconfigure (None, or replaced by the caller)


def main(argv: list[str] | None = None) -> int:
    """Run one command; returns the exit code (0 ok, 2 bad input or any other error).

    Every error is one line ``error: <message>`` on stderr; ``--debug`` anywhere adds the traceback.
    """
    argv = sys.argv[1:] if argv is None else list(argv)
    make_output_safe()
    try:
        args = build_parser().parse_args(argv)
        return args.run(args) or 0
    except BrokenPipeError:  # output piped into `head` and the like: not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except (Exception, KeyboardInterrupt) as error:
        if "--debug" in argv:
            traceback.print_exception(error)
        message = error_message(error)
    print(f"error: {' '.join(message.splitlines())}", file=sys.stderr)  # one line, whatever the message holds
    return EXIT_BAD_INPUT


if __name__ == "__main__":
    sys.exit(main())
