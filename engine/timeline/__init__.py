"""Prompt timelines: several prompts one after another and on top of each other, as one motion.

``Segment`` rows (``segments.py``), ``plan_prompt`` for one prompt that says several things
(``planner.py``) and ``compose_timeline`` that generates the rows with a model into one
``engine.Motion`` (``compose.py``).
"""
from .compose import ComposedTimeline, compose_timeline, text_to_motion_planned
from .planner import plan_prompt
from .segments import MAX_ROWS, PARTS, Segment, check_segments, describe_plan, parse_timeline, read_timeline_file

__all__ = ["ComposedTimeline", "MAX_ROWS", "PARTS", "Segment", "check_segments", "compose_timeline", "describe_plan",
           "parse_timeline", "plan_prompt", "read_timeline_file", "text_to_motion_planned"]
