"""The Blender half of ``python -m engine demo``: a scene with the generated motion on a humanoid
rig, saved as a .blend, and a filmstrip preview rendered headless.

Runs in any process that has bpy (4.2-5.0) and numpy; it never imports torch (``engine.demo``
generates the motion and calls these functions in the same process). Nothing is registered, so
the process can exit normally.

The rig is the SMPL-shaped armature of ``retarget.create_smpl_armature`` (22 bones, a default
humanoid built in code, no binary asset). Armatures do not render, so the rig gets a "body": one
mesh of capsules (a cylinder per bone, a sphere per joint, a bigger one for the head) skinned
rigidly to the bones by an Armature modifier; the left side is tinted so that left and right can
be told apart. Rendering uses Cycles on the CPU (the engine that works without a GPU or EGL;
shared notes, blender.md section 1 "Rendering headless").
"""
from __future__ import annotations

import math
import os
import sys
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import bmesh
import bpy
import numpy as np
from mathutils import Matrix, Vector

from engine.errors import MotionError
from engine.motion import JOINT_NAMES, Motion

from .retarget import SMPL_BONE_NAMES, apply_motion, create_smpl_armature

RIG_NAME = "MotionGPT Demo Rig"
BODY_NAME = "MotionGPT Demo Body"
CAMERA_NAME = "MotionGPT Demo Camera"
TARGET_HEIGHT = 0.9                      # metres above the floor the camera aims at

# Capsule radii (metres) per SMPL joint: the bone that starts at the joint gets this thickness.
BONE_RADIUS = {
    "pelvis": 0.09, "spine1": 0.1, "spine2": 0.11, "spine3": 0.11, "neck": 0.05, "head": 0.1,
    "left_hip": 0.075, "right_hip": 0.075, "left_knee": 0.055, "right_knee": 0.055,
    "left_ankle": 0.04, "right_ankle": 0.04, "left_foot": 0.035, "right_foot": 0.035,
    "left_collar": 0.05, "right_collar": 0.05, "left_shoulder": 0.045, "right_shoulder": 0.045,
    "left_elbow": 0.038, "right_elbow": 0.038, "left_wrist": 0.03, "right_wrist": 0.03,
}
HEAD_RADIUS = 0.11
BODY_COLOUR = (0.80, 0.55, 0.35, 1.0)    # right side and centre
LEFT_COLOUR = (0.25, 0.45, 0.85, 1.0)    # left limbs


@dataclass
class DemoScene:
    """What ``build_demo_scene`` made: the scene, the rig, its body mesh and the camera."""

    scene: object
    rig: object
    body: object
    camera: object
    action: object
    frame_start: int
    frame_end: int


# ----------------------------------------------------------------------------- the scene

def build_demo_scene(motion: Motion, prompt: str, caption: str) -> DemoScene:
    """Replace the current file with a demo scene: the SMPL-shaped rig keyed with ``motion``
    (scene at the motion's 20 fps, frames 1..T), its capsule body, a checkered floor at z = 0,
    a sun, a sky-grey world and an orthographic camera looking at the character from the front
    left. ``prompt`` and ``caption`` are stored on the scene and the action."""
    if not isinstance(motion, Motion) or motion.num_frames < 1:
        raise MotionError("the demo needs a motion with at least one frame")
    bpy.ops.wm.read_factory_settings(use_empty=True)
    scene = bpy.context.scene
    scene.name = "MotionGPT Demo"
    scene.render.fps, scene.render.fps_base = int(round(motion.fps)), 1.0
    scene.frame_start, scene.frame_end = 1, motion.num_frames
    scene.frame_set(1)

    rig = create_smpl_armature(RIG_NAME)
    action = apply_motion(rig, motion, bone_map="smpl", start_frame=1, action_name=prompt[:60] or "MotionGPT")
    action["motiongpt_prompt"] = prompt
    action["motiongpt_caption"] = caption
    scene["motiongpt_prompt"] = prompt
    scene["motiongpt_caption"] = caption

    body = _add_body(rig)
    _add_floor(scene)
    _add_light_and_world(scene)
    camera = _add_camera(scene)
    _configure_render(scene)
    scene.frame_set(1)
    return DemoScene(scene, rig, body, camera, action, 1, motion.num_frames)


def _material(name: str, colour: tuple[float, float, float, float]):
    material = bpy.data.materials.new(name)
    material.use_nodes = True
    shader = material.node_tree.nodes.get("Principled BSDF")
    shader.inputs["Base Color"].default_value = colour
    shader.inputs["Roughness"].default_value = 0.6
    material.diffuse_color = colour
    return material


def _add_body(rig) -> object:
    """One mesh of capsules in the rig's rest pose, each part weighted 1.0 to one bone."""
    rest_heads = {bone.name: Vector(bone.head_local) for bone in rig.data.bones}
    rest_tails = {bone.name: Vector(bone.tail_local) for bone in rig.data.bones}
    mesh = bpy.data.meshes.new(BODY_NAME)
    body = bpy.data.objects.new(BODY_NAME, mesh)
    bpy.context.scene.collection.objects.link(body)
    body.parent = rig
    groups = {name: body.vertex_groups.new(name=name) for name in rest_heads}
    body.data.materials.append(_material("MotionGPT Body", BODY_COLOUR))
    body.data.materials.append(_material("MotionGPT Left", LEFT_COLOUR))

    bm = bmesh.new()
    deform = bm.verts.layers.deform.verify()

    def claim(geometry: dict, bone_name: str, material_index: int) -> None:
        verts = geometry["verts"]
        for vert in verts:
            vert[deform][groups[bone_name].index] = 1.0
        for face in {f for v in verts for f in v.link_faces}:
            face.material_index = material_index

    for joint_name in JOINT_NAMES:
        bone_name = SMPL_BONE_NAMES[joint_name]
        side = 1 if joint_name.startswith("left_") else 0
        head, tail = rest_heads[bone_name], rest_tails[bone_name]
        radius = BONE_RADIUS[joint_name]
        if joint_name == "head":
            centre = head + (tail - head).normalized() * HEAD_RADIUS * 0.9
            claim(bmesh.ops.create_uvsphere(bm, u_segments=16, v_segments=10, radius=HEAD_RADIUS,
                                            matrix=Matrix.Translation(centre)), bone_name, 0)
            continue
        claim(bmesh.ops.create_uvsphere(bm, u_segments=12, v_segments=8, radius=radius * 1.05,
                                        matrix=Matrix.Translation(head)), bone_name, side)
        if joint_name in ("left_wrist", "right_wrist", "left_foot", "right_foot"):
            tail = head + (tail - head) * 1.2                 # hands and toes: a short stub
        length = (tail - head).length
        if length < 1e-4:
            continue
        direction = (tail - head).normalized()
        rotation = direction.to_track_quat('Z', 'Y').to_matrix().to_4x4()
        matrix = Matrix.Translation((head + tail) / 2) @ rotation
        claim(bmesh.ops.create_cone(bm, cap_ends=True, segments=12, radius1=radius, radius2=radius * 0.85,
                                    depth=length, matrix=matrix), bone_name, side)
    bm.to_mesh(mesh)
    bm.free()
    for polygon in mesh.polygons:
        polygon.use_smooth = True
    modifier = body.modifiers.new("Armature", 'ARMATURE')
    modifier.object = rig
    return body


def _add_floor(scene) -> None:
    """A 40 m checkered floor at z = 0 (0.5 m squares), so steps and travel are visible."""
    mesh = bpy.data.meshes.new("MotionGPT Floor")
    half = 20.0
    mesh.from_pydata([(-half, -half, 0), (half, -half, 0), (half, half, 0), (-half, half, 0)], [], [(0, 1, 2, 3)])
    floor = bpy.data.objects.new("MotionGPT Floor", mesh)
    scene.collection.objects.link(floor)
    material = bpy.data.materials.new("MotionGPT Floor")
    material.use_nodes = True
    nodes, links = material.node_tree.nodes, material.node_tree.links
    checker = nodes.new("ShaderNodeTexChecker")
    checker.inputs["Scale"].default_value = 2 * half / 0.5 / 2     # 0.5 m squares over the 0..1 UVs
    checker.inputs["Color1"].default_value = (0.72, 0.72, 0.72, 1)
    checker.inputs["Color2"].default_value = (0.52, 0.52, 0.52, 1)
    coordinates = nodes.new("ShaderNodeTexCoord")
    links.new(coordinates.outputs["Generated"], checker.inputs["Vector"])
    links.new(checker.outputs["Color"], nodes["Principled BSDF"].inputs["Base Color"])
    nodes["Principled BSDF"].inputs["Roughness"].default_value = 0.9
    mesh.materials.append(material)


def _add_light_and_world(scene) -> None:
    sun = bpy.data.lights.new("MotionGPT Sun", 'SUN')
    sun.energy = 3.5
    sun.angle = math.radians(8)
    light = bpy.data.objects.new("MotionGPT Sun", sun)
    light.rotation_euler = (math.radians(40), math.radians(10), math.radians(-30))
    scene.collection.objects.link(light)
    world = bpy.data.worlds.new("MotionGPT World")
    world.use_nodes = True
    world.node_tree.nodes["Background"].inputs["Color"].default_value = (0.62, 0.70, 0.80, 1)
    world.node_tree.nodes["Background"].inputs["Strength"].default_value = 0.9
    scene.world = world


def _add_camera(scene) -> object:
    camera_data = bpy.data.cameras.new(CAMERA_NAME)
    camera_data.type = 'ORTHO'
    camera_data.ortho_scale = 2.4
    camera = bpy.data.objects.new(CAMERA_NAME, camera_data)
    scene.collection.objects.link(camera)
    scene.camera = camera
    return camera


VIEW_DIRECTION = Vector((-0.55, -1.0, 0.28)).normalized()   # from the target towards the camera: front left, a little above


def aim_camera(camera, target: Vector, distance: float = 8.0) -> None:
    """Put ``camera`` on ``VIEW_DIRECTION`` from ``target`` and point it at the target."""
    camera.location = target + VIEW_DIRECTION * distance
    camera.rotation_euler = (-VIEW_DIRECTION).to_track_quat('-Z', 'Y').to_euler()


def _configure_render(scene) -> None:
    scene.render.engine = 'CYCLES'
    scene.cycles.device = 'CPU'
    scene.cycles.samples = 8
    scene.cycles.use_denoising = False
    scene.cycles.max_bounces = 2
    scene.render.film_transparent = False
    scene.render.image_settings.file_format = 'PNG'
    scene.render.image_settings.color_mode = 'RGB'
    scene.render.resolution_percentage = 100
    scene.view_settings.view_transform = 'Standard'


def save_blend(path: Path) -> Path:
    """Save the current file to ``path`` (folders are created); returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        bpy.ops.wm.save_as_mainfile(filepath=str(path), check_existing=False)
    except RuntimeError as error:          # Blender reports a failed save as RuntimeError("Error: ...")
        raise MotionError(f"cannot save {path}: {str(error).strip()}") from None
    return path


# ----------------------------------------------------------------------------- the preview

def filmstrip_frames(frame_start: int, frame_end: int, count: int) -> list[int]:
    """``count`` scene frames spread evenly from start to end (fewer when the clip is shorter)."""
    count = max(1, min(count, frame_end - frame_start + 1))
    return sorted({int(round(f)) for f in np.linspace(frame_start, frame_end, count)})


def render_filmstrip(demo: DemoScene, path: Path, prompt: str, caption: str, tiles: int = 6,
                     tile_size: tuple[int, int] = (200, 260), samples: int = 8) -> dict:
    """Render the pose at ``tiles`` frames (camera following the pelvis) side by side, with a
    strip underneath that gives each tile's time, the prompt and the model's caption; write one
    PNG to ``path``. Returns {"frames", "width", "height", "path"}."""
    scene = demo.scene
    scene.cycles.samples = samples
    width, height = tile_size
    scene.render.resolution_x, scene.render.resolution_y = width, height
    frames = filmstrip_frames(demo.frame_start, demo.frame_end, tiles)
    pelvis = demo.rig.pose.bones[SMPL_BONE_NAMES["pelvis"]]
    images = []
    with tempfile.TemporaryDirectory(prefix="motiongpt-demo-") as folder:
        for index, frame in enumerate(frames):
            scene.frame_set(frame)
            root = demo.rig.matrix_world @ pelvis.head
            aim_camera(demo.camera, Vector((root.x, root.y, TARGET_HEIGHT)))
            images.append(_render_to_pixels(scene, Path(folder) / f"tile_{index}.png"))
        labels = [f"{(frame - demo.frame_start) / scene_fps(scene):.1f} s" for frame in frames]
        strip = _render_caption_strip(len(frames) * width, width, labels, prompt, caption, Path(folder))
    scene.frame_set(demo.frame_start)
    picture = np.concatenate([strip, np.concatenate(images, axis=1)], axis=0)[::-1]   # rows top to bottom
    _write_png(picture, Path(path))
    return {"frames": frames, "width": picture.shape[1], "height": picture.shape[0], "path": Path(path)}


def scene_fps(scene) -> float:
    return scene.render.fps / scene.render.fps_base


def _render_to_pixels(scene, path: Path) -> np.ndarray:
    """Render the scene to ``path`` and return its pixels (rows bottom to top, RGBA float)."""
    scene.render.filepath = str(path)
    with _quiet_stdout():
        bpy.ops.render.render(write_still=True)
    image = bpy.data.images.load(str(path))
    try:
        pixels = np.empty(image.size[0] * image.size[1] * 4, dtype=np.float32)
        image.pixels.foreach_get(pixels)
        return pixels.reshape(image.size[1], image.size[0], 4)
    finally:
        bpy.data.images.remove(image)


@contextmanager
def _quiet_stdout():
    """Send what C code prints to stdout (Cycles' progress lines) to the null device meanwhile."""
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 1)
        yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


def printable(text: str) -> str:
    """``text`` without control characters and glyphs Blender's built-in font lacks (shown as boxes)."""
    return "".join(c for c in text if c.isprintable() and ord(c) < 0x2000).strip()


CAPTION_LINE_HEIGHT = 22


def _render_caption_strip(width: int, tile_width: int, labels: list[str], prompt: str, caption: str,
                          folder: Path) -> np.ndarray:
    """A dark strip ``width`` pixels wide: each tile's time under its centre, then the prompt
    and the model's caption (text objects rendered flat with Cycles in a scratch scene)."""
    height = 3 * CAPTION_LINE_HEIGHT + 8
    main = bpy.context.window.scene
    strip = bpy.data.scenes.new("MotionGPT Caption Strip")
    try:
        bpy.context.window.scene = strip
        strip.render.engine = 'CYCLES'
        strip.cycles.device = 'CPU'
        strip.cycles.samples = 4
        strip.cycles.use_denoising = False
        strip.render.resolution_x, strip.render.resolution_y = width, height
        strip.render.resolution_percentage = 100
        strip.render.image_settings.file_format = 'PNG'
        strip.render.image_settings.color_mode = 'RGB'
        strip.view_settings.view_transform = 'Standard'
        world = bpy.data.worlds.new("MotionGPT Caption Strip")
        world.use_nodes = True
        world.node_tree.nodes["Background"].inputs["Color"].default_value = (0.02, 0.02, 0.025, 1)
        strip.world = world
        camera = bpy.data.objects.new("Caption Camera", bpy.data.cameras.new("Caption Camera"))
        camera.data.type = 'ORTHO'
        camera.data.ortho_scale = float(width)          # 1 Blender unit = 1 pixel
        camera.location = (width / 2, height / 2, 10)
        strip.collection.objects.link(camera)
        strip.camera = camera
        text_material = bpy.data.materials.new("Caption Text")
        text_material.use_nodes = True
        nodes = text_material.node_tree.nodes
        emission = nodes.new("ShaderNodeEmission")
        emission.inputs["Color"].default_value = (0.95, 0.95, 0.95, 1)
        text_material.node_tree.links.new(emission.outputs["Emission"], nodes["Material Output"].inputs["Surface"])

        top = height - 4
        lines = [(f"prompt:  {printable(prompt)}", 8, top - 2 * CAPTION_LINE_HEIGHT, 'LEFT'),
                 (f"model's caption:  {printable(caption)}", 8, top - 3 * CAPTION_LINE_HEIGHT, 'LEFT')]
        lines += [(label, tile_width * (i + 0.5), top - CAPTION_LINE_HEIGHT, 'CENTER') for i, label in enumerate(labels)]
        for text, x, y, align in lines:
            _add_text(strip, text, x, y + 5, align, text_material, max_width=width - 16)
        pixels = _render_to_pixels(strip, folder / "caption.png")
    finally:
        bpy.context.window.scene = main
        for obj in list(strip.collection.objects):
            data = obj.data
            bpy.data.objects.remove(obj)
            if isinstance(data, bpy.types.Camera):
                bpy.data.cameras.remove(data)
            elif data is not None:
                bpy.data.curves.remove(data)
        bpy.data.scenes.remove(strip)
    return pixels


def _add_text(scene, text: str, x: float, y: float, align: str, material, max_width: float) -> None:
    """One line of text, 15 px tall, its baseline at (x, y); shrunk to ``max_width`` if longer."""
    curve = bpy.data.curves.new("Caption", 'FONT')
    curve.body = text if len(text) <= 200 else text[:197] + "..."
    curve.size = 15
    curve.align_x = align
    curve.materials.append(material)
    obj = bpy.data.objects.new("Caption", curve)
    obj.location = (x, y, 0)
    scene.collection.objects.link(obj)
    bpy.context.view_layer.update()
    if obj.dimensions.x > max_width > 0:
        obj.scale = (max_width / obj.dimensions.x,) * 3


def _write_png(pixels: np.ndarray, path: Path) -> None:
    """Write RGBA float pixels (rows top to bottom, values 0..1 as stored in a PNG) as an RGB PNG."""
    import struct
    import zlib

    path.parent.mkdir(parents=True, exist_ok=True)
    rgb = (np.clip(pixels[..., :3], 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    raw = b"".join(b"\x00" + row.tobytes() for row in rgb)

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", rgb.shape[1], rgb.shape[0], 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw, 6))
                     + chunk(b"IEND", b""))
