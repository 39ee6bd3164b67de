"""The MotionGPT panel (3D View > Sidebar > MotionGPT), its sub-panels (Bone Map, Edit Motion, Timeline,
Batch) and the context-menu entries."""
from __future__ import annotations

import bpy

from . import operators


def draw_status(layout, context) -> bool:
    """The running job's progress and a Cancel button; True when a job is running."""
    status = context.window_manager.motiongpt_status
    if not status.running:
        if status.message:
            layout.label(text=status.message, icon='INFO')
        return False
    row = layout.row(align=True)
    if hasattr(row, "progress"):                       # UILayout.progress: Blender 4.0+
        row.progress(factor=status.progress, type='BAR', text=status.message)
    else:
        row.label(text=status.message, icon='SORTTIME')
    row.operator(operators.MOTIONGPT_OT_cancel.bl_idname, text="", icon='CANCEL')
    layout.label(text="Esc cancels", icon='EVENT_ESC')
    return True


class MotionGPTSidebar:
    """Where every MotionGPT panel sits: the 3D View's sidebar (N), tab "MotionGPT"."""
    bl_space_type = 'VIEW_3D'
    bl_region_type = 'UI'
    bl_category = "MotionGPT"


class VIEW3D_PT_motiongpt(MotionGPTSidebar, bpy.types.Panel):
    bl_label = "MotionGPT"

    def draw(self, context):
        layout = self.layout
        settings = context.scene.motiongpt
        busy = draw_status(layout, context)

        column = layout.column()
        column.enabled = not busy
        column.prop(settings, "target", icon='ARMATURE_DATA')
        if settings.target is None:
            active = context.active_object
            name = active.name if active is not None and active.type == 'ARMATURE' else "none"
            column.label(text=f"Active armature: {name}")
        column.prop(settings, "prompt", text="")
        row = column.row(align=True)
        row.prop(settings, "auto_duration", toggle=True)
        sub = row.row(align=True)
        sub.enabled = not settings.auto_duration
        sub.prop(settings, "seconds")
        row = column.row(align=True)
        row.prop(settings, "seed")
        row.prop(settings, "variants")
        column.prop(settings, "in_place")
        row = column.row(align=True)
        row.prop(settings, "keys", expand=True)
        if settings.keys == 'SPARSE':
            row = column.row(align=True)
            row.prop(settings, "key_rotation_tolerance", text="Degrees")
            row.prop(settings, "key_location_tolerance", text="mm")
        column.operator(operators.MOTIONGPT_OT_generate.bl_idname, icon='PLAY')


class VIEW3D_PT_motiongpt_bone_map(MotionGPTSidebar, bpy.types.Panel):
    bl_label = "Bone Map"
    bl_parent_id = "VIEW3D_PT_motiongpt"
    bl_options = {'DEFAULT_CLOSED'}

    def draw(self, context):
        settings = context.scene.motiongpt
        layout = self.layout
        layout.prop(settings, "bone_map_mode", expand=True)
        if settings.bone_map_mode == 'PRESET':
            layout.prop(settings, "bone_map_preset")
        elif settings.bone_map_mode == 'FILE':
            layout.prop(settings, "bone_map_file", text="")


class VIEW3D_PT_motiongpt_edit(MotionGPTSidebar, bpy.types.Panel):
    bl_label = "Edit Motion"
    bl_parent_id = "VIEW3D_PT_motiongpt"

    def draw(self, context):
        settings = context.scene.motiongpt
        layout = self.layout
        layout.enabled = not context.window_manager.motiongpt_status.running
        layout.prop(settings, "inbetween_prompt")
        layout.operator(operators.MOTIONGPT_OT_inbetween.bl_idname, icon='IPO_EASE_IN_OUT')
        row = layout.row(align=True)
        row.prop(settings, "continue_seconds")
        row.operator(operators.MOTIONGPT_OT_continue_motion.bl_idname, text="Continue", icon='FF')
        layout.operator(operators.MOTIONGPT_OT_describe.bl_idname, icon='TEXT')
        if settings.last_caption:
            layout.label(text=settings.last_caption)


class MOTIONGPT_UL_timeline(bpy.types.UIList):
    """The timeline's rows: prompt, frames and body part (the active row is edited below the list)."""

    def draw_item(self, _context, layout, _data, item, _icon, _active_data, _active_property, _index=0, _flag=0):
        end = f"{item.start + item.length - 1}" if item.length else "auto"
        split = layout.split(factor=0.6)
        split.prop(item, "prompt", text="", emboss=False, icon='ERROR' if not item.prompt.strip() else 'NONE')
        split.label(text=f"{item.start}-{end} {item.part.lower()}")


class VIEW3D_PT_motiongpt_timeline(MotionGPTSidebar, bpy.types.Panel):
    bl_label = "Timeline"
    bl_parent_id = "VIEW3D_PT_motiongpt"

    def draw(self, context):
        settings = context.scene.motiongpt
        layout = self.layout
        layout.enabled = not context.window_manager.motiongpt_status.running
        row = layout.row()
        row.template_list("MOTIONGPT_UL_timeline", "", settings, "timeline_rows", settings, "timeline_index", rows=4)
        buttons = row.column(align=True)
        buttons.operator(operators.MOTIONGPT_OT_timeline_add.bl_idname, text="", icon='ADD')
        buttons.operator(operators.MOTIONGPT_OT_timeline_remove.bl_idname, text="", icon='REMOVE')
        buttons.separator()
        buttons.operator(operators.MOTIONGPT_OT_timeline_move.bl_idname, text="", icon='TRIA_UP').direction = 'UP'
        buttons.operator(operators.MOTIONGPT_OT_timeline_move.bl_idname, text="", icon='TRIA_DOWN').direction = 'DOWN'
        if 0 <= settings.timeline_index < len(settings.timeline_rows):
            active = settings.timeline_rows[settings.timeline_index]
            column = layout.column(align=True)
            column.prop(active, "prompt", text="")
            frames = column.row(align=True)
            frames.prop(active, "start")
            frames.prop(active, "length")
            column.prop(active, "part", expand=True)
        layout.operator(operators.MOTIONGPT_OT_generate_timeline.bl_idname, icon='NLA')


class VIEW3D_PT_motiongpt_batch(MotionGPTSidebar, bpy.types.Panel):
    bl_label = "Batch"
    bl_parent_id = "VIEW3D_PT_motiongpt"
    bl_options = {'DEFAULT_CLOSED'}

    def draw(self, context):
        settings = context.scene.motiongpt
        layout = self.layout
        layout.enabled = not context.window_manager.motiongpt_status.running
        layout.prop(settings, "batch_source", expand=True)
        if settings.batch_source == 'TEXT':
            layout.prop(settings, "batch_text", text="")
        else:
            layout.prop(settings, "batch_file", text="")
        layout.prop(settings, "batch_layout")
        layout.operator(operators.MOTIONGPT_OT_batch.bl_idname, icon='SEQUENCE')


def draw_describe_entry(self, _context):
    """Appended to the 3D View (object and pose) and Dope Sheet context menus."""
    layout = self.layout
    layout.separator()
    layout.operator(operators.MOTIONGPT_OT_describe.bl_idname, text="Describe This Motion", icon='TEXT')


def draw_inbetween_entry(self, _context):
    """Appended to the Dope Sheet and Graph Editor context menus (keys selected there)."""
    self.layout.operator(operators.MOTIONGPT_OT_inbetween.bl_idname, icon='IPO_EASE_IN_OUT')


# (menu, draw function) pairs appended on register and removed on unregister.
MENU_ENTRIES = (
    ("VIEW3D_MT_object_context_menu", draw_describe_entry),
    ("VIEW3D_MT_pose_context_menu", draw_describe_entry),
    ("DOPESHEET_MT_context_menu", draw_describe_entry),
    ("DOPESHEET_MT_context_menu", draw_inbetween_entry),
    ("GRAPH_MT_context_menu", draw_inbetween_entry),
)

classes = (MOTIONGPT_UL_timeline, VIEW3D_PT_motiongpt, VIEW3D_PT_motiongpt_bone_map, VIEW3D_PT_motiongpt_edit,
           VIEW3D_PT_motiongpt_timeline, VIEW3D_PT_motiongpt_batch)


def register_menus() -> None:
    for menu, function in MENU_ENTRIES:
        getattr(bpy.types, menu).append(function)


def unregister_menus() -> None:
    for menu, function in MENU_ENTRIES:
        getattr(bpy.types, menu).remove(function)
