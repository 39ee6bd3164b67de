"""Text-to-motion speed on the CPU: seconds per 4 s clip and generated tokens per second.

The bundled model (assets/models/default) when it is built; otherwise that part is skipped with
a note, and the same measurement runs on a randomly initialised model of the bundled model's
size (T5 d_model 256, 4 + 4 layers, 4 heads, d_ff 1024, vocabulary 4000 + 515; VQ-VAE width 256,
512 codes), which generates exactly as many tokens and so costs the same time.
"""
import time
from pathlib import Path

import numpy as np

CLIP_SECONDS = 4.0
REPEATS = 3
PROMPT = "a person walks forward and waves with the right hand"
REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"


def random_bundled_size_model():
    import torch
    from engine.lm import MotionLanguageModel, new_t5
    from engine.model import MotionGPT, MotionGPTConfig
    from engine.motion import Normalizer
    from engine.text_tokenizer import build_text_tokenizer
    from engine.tokenizer import MotionTokenizer, TokenizerConfig

    captions = [line.split("\t")[1] for line in (SHARED_DATA / "cmu" / "descriptions.tsv").read_text().splitlines()
                if "\t" in line]
    text_tokenizer = build_text_tokenizer(captions, 4000, 512)
    torch.manual_seed(0)
    vq = MotionTokenizer(TokenizerConfig(width=256), Normalizer.load(SHARED_DATA / "motiongpt_meta"))
    with torch.no_grad():
        vq.quantizer.codebook.normal_()
    t5 = new_t5(len(text_tokenizer), 256, 4, 4, 1024, seed=0).eval()
    return MotionGPT(vq.eval(), MotionLanguageModel(t5, text_tokenizer, 512), MotionGPTConfig())


def measure(model) -> dict:
    """Best of REPEATS: seconds for one 4 s clip (prompt -> joints), and LM tokens per second."""
    model.text_to_motion(PROMPT, seconds=CLIP_SECONDS, seed=0)      # warm-up
    best = float("inf")
    for seed in range(REPEATS):
        started = time.perf_counter()
        motion = model.text_to_motion(PROMPT, seconds=CLIP_SECONDS, seed=seed)
        best = min(best, time.perf_counter() - started)
    codes = int(np.ceil(motion.num_frames / model.config.frames_per_token))
    tokens = codes + 3                                                  # start, codes, end, </s>
    started = time.perf_counter()
    model.lm.generate_motion([f"Generate motion with {motion.num_frames} frames: {PROMPT}"], [codes], [codes],
                             seeds=[0])
    lm_seconds = time.perf_counter() - started
    return {"seconds_per_4s_clip": best, "frames": motion.num_frames, "generated_tokens": tokens,
            "lm_tokens_per_s": tokens / lm_seconds}


def run() -> dict:
    import torch
    from engine.model import DEFAULT_MODEL, MotionGPT

    torch.set_num_threads(max(1, torch.get_num_threads()))
    results = {"device": "cpu", "threads": torch.get_num_threads()}
    if (DEFAULT_MODEL / "config.json").is_file():
        results["bundled"] = measure(MotionGPT.from_pretrained("default", device="cpu"))
    else:
        results["bundled"] = "skipped: the bundled model is not built yet (assets/models/default)"
    results["random_bundled_size"] = measure(random_bundled_size_model())
    return results
