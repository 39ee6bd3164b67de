"""MotionGPT inference engine: motion representation, tokenizer, language model.

Never imports bpy. ``engine.motion`` needs only numpy + scipy; the torch parts are imported
lazily so that ``import engine`` stays light.
"""
from .errors import MotionError
from .motion import FEATURE_DIM, FEATURE_GROUPS, JOINT_NAMES, MODEL_FPS, Motion, Normalizer

__all__ = ["FEATURE_DIM", "FEATURE_GROUPS", "JOINT_NAMES", "MODEL_FPS", "Motion", "MotionError",
           "Normalizer"]


def __getattr__(name: str):
    """Lazy exports of the torch parts, so that ``import engine`` does not import torch."""
    if name == "MotionTokenizer":
        from .tokenizer import MotionTokenizer
        return MotionTokenizer
    if name == "MotionGPT":
        from .model import MotionGPT
        return MotionGPT
    raise AttributeError(f"module 'engine' has no attribute {name!r}")
