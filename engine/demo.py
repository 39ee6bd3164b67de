"""``python -m engine demo TEXT``: the one-command demo (``python3 build.py demo TEXT`` runs it).

Stages, each timed and printed:

1. load the model: the bundled one (``assets/models/default``) unless ``--model`` or the
   ``MOTIONGPT_MODEL`` environment variable names another folder (or hub repo id); offline;
2. generate: text to motion through the planner (``engine.timeline.text_to_motion_planned``: a
   compound prompt such as "a person walks forward and waves" becomes a timeline, a walk with a
   wave layered on its upper body; a one-action prompt is ``MotionGPT.text_to_motion``);
3. describe: the model's own caption of the result (``MotionGPT.describe``);
4. scene: a humanoid rig (the SMPL-shaped armature of ``motiongpt_addon.retarget``) keyed with
   the motion, a capsule body, floor, light and camera (``motiongpt_addon.demo_scene``);
5. save: ``OUT/demo.blend``;
6. preview: ``OUT/demo.png``, a filmstrip of the pose at several frames rendered headless with
   Cycles on the CPU, with each tile's time, the prompt and the caption underneath.

``OUT/demo.txt`` repeats the prompt, the caption, the settings and the timings. Blender runs in
this process as the ``bpy`` module (the .venv has bpy 4.5 next to torch); bpy is imported only
when the scene stage starts, never when this module is imported.
"""
from __future__ import annotations

import argparse
import os
import time
from contextlib import contextmanager
from pathlib import Path

from .errors import MotionError

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = REPO_ROOT / "out"
MODEL_ENV = "MOTIONGPT_MODEL"
DEFAULT_SECONDS = 4.0


class StageTimer:
    """Times named stages and prints each one as it ends."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextmanager
    def stage(self, name: str, doing: str):
        print(f"demo: {doing} ...", flush=True)
        started = time.perf_counter()
        yield
        self.seconds[name] = time.perf_counter() - started
        print(f"demo: {name} done in {self.seconds[name]:.2f} s", flush=True)

    def table(self) -> str:
        total = sum(self.seconds.values())
        rows = [f"  {name:<10} {seconds:7.2f} s" for name, seconds in self.seconds.items()]
        return "\n".join(rows + [f"  {'total':<10} {total:7.2f} s"])


def add_demo_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("text", metavar="TEXT", help='what the person does, e.g. "a person walks forward and waves"')
    parser.add_argument("--model", default=None, metavar="FOLDER|REPO",
                        help=f'model folder, hub repo id, or "default" (the bundled model); default: '
                             f'${MODEL_ENV} if set, else "default"')
    parser.add_argument("--seconds", type=float, default=DEFAULT_SECONDS,
                        help=f"length of the motion (default {DEFAULT_SECONDS:g}); 0 lets the model choose")
    parser.add_argument("--seed", type=int, default=0, help="random seed (same seed, same motion; default 0)")
    parser.add_argument("--device", default="cpu", help="cpu (default), cuda, cuda:1")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, metavar="FOLDER",
                        help="where demo.blend, demo.png and demo.txt go (default: out/ in the repository)")
    parser.add_argument("--tiles", type=int, default=6, help="poses in the filmstrip (default 6)")
    parser.add_argument("--tile-size", type=int, nargs=2, default=(200, 260), metavar=("W", "H"),
                        help="pixels per filmstrip tile (default 200 260)")
    parser.add_argument("--samples", type=int, default=8, help="Cycles samples per tile (default 8)")


def check_arguments(args: argparse.Namespace) -> None:
    if not args.text.strip():
        raise MotionError("the text prompt is empty; say what the person does, e.g. \"a person jumps\"")
    if not (args.seconds == 0 or 0 < args.seconds <= 60):
        raise MotionError(f"--seconds must be between 0 (model chooses) and 60, got {args.seconds:g}")
    if not 1 <= args.tiles <= 24:
        raise MotionError(f"--tiles must be between 1 and 24, got {args.tiles}")
    if not all(16 <= size <= 1024 for size in args.tile_size):
        raise MotionError(f"--tile-size must be two numbers of pixels between 16 and 1024, got {args.tile_size}")
    if not 1 <= args.samples <= 1024:
        raise MotionError(f"--samples must be between 1 and 1024, got {args.samples}")
    if args.out.exists() and not args.out.is_dir():
        raise MotionError(f"--out {args.out}: exists and is not a folder")
    existing = next(folder for folder in (args.out.resolve(), *args.out.resolve().parents) if folder.exists())
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        raise MotionError(f"--out {args.out}: cannot write there ({existing} is not a writable folder)")


def import_blender():
    """The bpy module, or a MotionError that says how to get it."""
    try:
        import bpy
    except ImportError as error:
        raise MotionError(f"the demo needs Blender as a Python module (bpy 4.2-5.0 on Python 3.11; {error}); "
                          "run it with `python3 build.py demo TEXT`, which sets that up") from None
    return bpy


def run_demo(args: argparse.Namespace) -> int:
    """Run the demo stages; returns 0 (errors are MotionError / OSError, shown by the CLI)."""
    check_arguments(args)
    source = args.model or os.environ.get(MODEL_ENV) or "default"
    os.environ.setdefault("HF_HUB_OFFLINE", "1")          # the demo never downloads anything
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    out = args.out.resolve()
    timer = StageTimer()

    from .model import MotionGPT
    from .timeline import text_to_motion_planned
    with timer.stage("load", f"loading the model ({source})"):
        model = MotionGPT.from_pretrained(source, device=args.device)
    with timer.stage("generate", f"generating '{args.text}' ({args.seconds or 'model-chosen'} s, seed {args.seed})"):
        motion, plan = text_to_motion_planned(model, args.text, seconds=args.seconds or None, seed=args.seed)
    if plan is not None:
        print(f"demo: planned as: {plan}", flush=True)
    from .text.reading import print_notices
    from .timeline import plan_prompt
    print_notices(model, [args.text] if plan is None else [row.text for row in plan_prompt(args.text)])
    with timer.stage("describe", "asking the model to describe the result"):
        caption = model.describe(motion)
    print(f"demo: {motion.num_frames} frames ({motion.duration:.2f} s at {motion.fps:g} fps); "
          f"the model describes it as: {caption!r}", flush=True)

    with timer.stage("scene", "building the Blender scene (rig, retarget, body, camera)"):
        import_blender()
        from motiongpt_addon import demo_scene
        demo = demo_scene.build_demo_scene(motion, args.text.strip(), caption)
    with timer.stage("save", "saving the .blend"):
        blend = demo_scene.save_blend(out / "demo.blend")
    with timer.stage("preview", f"rendering {args.tiles} poses with Cycles (CPU)"):
        preview = demo_scene.render_filmstrip(demo, out / "demo.png", args.text.strip(), caption,
                                              tiles=args.tiles, tile_size=tuple(args.tile_size),
                                              samples=args.samples)

    text_path = out / "demo.txt"
    text_path.write_text(
        f"prompt: {args.text.strip()}\n" + (f"planned as: {plan}\n" if plan else "") +
        f"caption: {caption}\nmodel: {source}\nseed: {args.seed}\n"
        f"motion: {motion.num_frames} frames, {motion.duration:.2f} s at {motion.fps:g} fps\n"
        f"preview frames: {', '.join(str(f) for f in preview['frames'])}\n"
        f"stage timings:\n{timer.table()}\n", encoding="utf-8")
    print(f"\ndemo: stage timings\n{timer.table()}")
    print(f"\ndemo: wrote\n  {blend}  (scene '{demo.scene.name}', rig '{demo.rig.name}', "
          f"action '{demo.action.name}', frames {demo.frame_start}-{demo.frame_end})\n"
          f"  {preview['path']}  ({preview['width']} x {preview['height']} px, frames "
          f"{', '.join(str(f) for f in preview['frames'])})\n  {text_path}")
    return 0


def register_commands(register) -> None:
    """Make ``python -m engine demo`` run this demo."""
    register("demo", run_demo, add_demo_arguments,
             help="text -> motion -> rig -> out/demo.blend + out/demo.png (bundled model, offline)")
