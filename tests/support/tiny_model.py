"""Build a tiny, randomly initialised MotionGPT model folder with the engine's own code.

    python tests/support/tiny_model.py OUT_FOLDER        (needs torch: the .venv interpreter)

For tests of the worker and the add-on: real classes, real files, real loading; the weights are
random (a few hundred kB), so the motions and captions are nonsense but well-formed. The
normalisation statistics are HumanML3D's (../shared/data/motiongpt_meta).
"""
from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))


def build_tiny_model(folder: Path, code_num: int = 32, seed: int = 0) -> Path:
    import torch

    from engine.lm import MotionLanguageModel, new_t5
    from engine.model import MotionGPT, MotionGPTConfig
    from engine.motion import Normalizer
    from engine.text.tokenizer import build_text_tokenizer
    from engine.tokenizer import MotionTokenizer, TokenizerConfig

    torch.manual_seed(seed)
    normalizer = Normalizer.load(REPO.parent / "shared" / "data" / "motiongpt_meta")
    config = TokenizerConfig(code_num=code_num, code_dim=16, output_emb_width=16, width=16, depth=1)
    tokenizer = MotionTokenizer(config, normalizer).eval()
    text_tokenizer = build_text_tokenizer(["a person walks forward", "a man jumps up and down"],
                                          vocab_size=400, code_num=code_num)
    t5 = new_t5(len(text_tokenizer), d_model=32, num_layers=1, num_heads=2, d_ff=64, dropout=0.0, seed=seed)
    lm = MotionLanguageModel(t5, text_tokenizer, code_num)
    model = MotionGPT(tokenizer, lm, MotionGPTConfig(name="tiny random test model", caption_max_tokens=12))
    return model.save_pretrained(folder, model_card="A tiny randomly initialised model for tests.\n")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: tiny_model.py OUT_FOLDER")
    print(build_tiny_model(Path(sys.argv[1])))
