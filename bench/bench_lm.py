"""Text-to-motion speed on the CPU: ours (engine.lm constrained generation) vs plain
``model.generate`` on the same model in the same run, a batch of 64 prompts vs one by one, and
peak memory.

Models:
- ``base_random``: a flan-t5-base-shaped T5 (d_model 768, 12 + 12 layers, 12 heads, d_kv 64,
  d_ff 2048, gated-gelu, untied lm_head, vocabulary 32100 + 515 = 32615 rows) with random
  weights. Its text tokenizer is ours (4000 pieces + 515 motion tokens, so the motion tokens sit at
  4000.. instead of 32100..); the embedding and lm_head still have the official 32615 rows, so each
  step costs what the official model's costs. Only the language model is timed here (no VQ-VAE).
- ``bundled``: assets/models/default when it is built, else a note that it was skipped.
- ``bundled_size_random``: a random model of the bundled model's size (T5 d_model 256, 4 + 4
  layers, 4 heads, d_ff 1024, vocabulary 4000 + 515; VQ-VAE width 256, 512 codes); it generates
  exactly as many tokens as the bundled model and so costs the same time.

What is measured (all on the CPU, best of the repetitions; torch's default thread count, or
MOTIONGPT_BENCH_THREADS=N: on a machine whose cores are busy with other work, 2 threads spend most of
their time waiting for each other at every op, so 1 thread gives the representative numbers there):
- ``ours_s``: ``MotionLanguageModel.generate_motion`` as the engine runs it by default
  (``quantize="auto"``, engine/decoding.py) for a 9.8 s clip (49 codes: start, 49 codes, end,
  ``</s>`` = 52 generated tokens), prompt tokenisation and the per-token constraint included.
  ``ours_decoding`` says how it decoded: "float32" (the bundled model: its layers are too small
  for int8 to pay) or "int8" (the base-size model, on a CPU with VNNI).
- ``plain_generate_s``: "plain" = ``t5.generate(input_ids, attention_mask, max_new_tokens=52,
  min_new_tokens=52)`` on the same encoded prompt and the same float32 model: every other setting
  is transformers' default (greedy, one beam, KV cache on, no logits processor of ours, full
  32615-row lm_head every step); min_new_tokens only makes it produce as many tokens as ours.
- ``ours_float32_s`` (base_random only): ours with ``quantize="none"``, the same loop in float32
  (tokens identical to generate's), to show what the loop gives and what int8 adds.
- ``ours_decoder_build_s`` / ``ours_decoder_build_extra_peak_rss_mb``: the one-time build of the
  decoder on the first call (int8: quantizing the weights; the int8 copy of the decoder linears is
  kept beside the float32 model, which training and saving use), not in ours_s (a loaded model pays
  it once).
- ``ratio_ours_to_plain``: ours_s / plain_generate_s (target <= 0.5).
- ``lm_batch64_s`` / ``lm_one_by_one_64_s``: the language model alone, 64 prompts (49 codes each)
  in one ``generate_motion`` call vs one call per prompt.
- ``batch64_s`` / ``one_by_one_64_s``: end to end, 64 prompts as one ``text_to_motion_batch`` call
  (9.8 s each) vs ``text_to_motion`` called once per prompt; the VQ-VAE decodes clip by clip in
  both (so that batch rows are bit-equal to single calls). Target speed-up >= 5.
  The one-by-one times are measured on ONE_BY_ONE prompts and scaled to 64 (``one_by_one_method``).
- memory: resident set size (numpy + torch + Python together). ``*_extra_peak_rss_mb``: the
  kernel's peak mark (VmHWM) is reset before the part (/proc/self/clear_refs, Linux) and read after
  it, minus the RSS at its start; ``peak_rss_mb``: the peak of the whole run.

Where ours' speed comes from (measured, 1 thread, on a 2-core machine busy with training). A
decoding step is matrix-vector products over the weights plus, for a small model, Python:
transformers' generate spends ~3 ms per step of the bundled model in bookkeeping, module calls,
mask and cache objects while its matmuls take ~0.9 ms. Ours (engine/decoding.py): one encoder
pass, KV cache, inference_mode, lm_head on the 515 rows a motion string can use (for the
base-size model lm_head is 25 M of the ~124 M multiply-adds per step), and encoder and decoding
loop of our own that run the same tensor ops as transformers on a preallocated cache (float32
logits bit-identical to generate's, so the same tokens): ~0.48-0.51x plain on the bundled model
(over runs), ~0.7x on the base-size one (``ours_float32_s``). On the CPU a step's linears multiply as
(W @ x.T).T (``engine.decoding.step_linear``): with the few rows of a step, F.linear's sgemm
repacked the whole weight at every call (a 4-sample 4 s request: ~20 % faster; the single row timed
here goes through a matrix-vector product either way). What is left of a bundled-model
step (~1.6 ms): half is its 37 float32 matrix-vector products (memory-bound: the 18 MB of decoder
weights do not stay in L2), half ~250 small tensor ops at a few microseconds of dispatch each;
going further needs fused kernels (torch.compile / TorchScript: other numerics or deprecated) or
fewer weight bytes. The base-size model's steps are memory-bound matrix-vector products over
~400 MB of float32 weights, which only fewer weight bytes shorten: with ``quantize="auto"`` its
decoder linears are int8 (per-row weight scales; each input row scaled to [-1, 1] so that batch
rows equal single calls; fbgemm kernels, 8-bit inputs on CPUs with VNNI): ~0.32x plain, 2.2x
faster than float32, for a one-time 0.7 s quantization and ~170 MB more memory. On the bundled
model int8 is slower (its 256-wide matmuls are too small for the quantization overhead to pay),
so it stays float32. Quality of int8, forced on the bundled model: bench quality (160 clips)
text-to-motion R-precision top-1 0.725 vs 0.719 float32, FID 0.104 vs 0.103, prediction ADE
0.803 vs 0.811 m, in-between within 1 mm; bench_tasks (30 clips, 4 seed sets) text-to-motion
described back 0.55 vs 0.58 (float32 alone ranges 0.47-0.63 over the seed sets), in-between
109.5 vs 110.5 mm. With 7-bit inputs (CPUs without VNNI) describe-back fell to 0.48, so "auto"
keeps those CPUs in float32. bf16 was tried before: only ~10 % faster on this CPU.
The base-size model is slow on 2 CPU cores, so it gets one repetition of each (after a short
warm-up) and no batch measurement; the batch is measured on the bundled (size) model.
"""
import os
import resource
import time
from pathlib import Path

import numpy as np

CLIP_SECONDS = 9.8
CLIP_CODES = 49
BATCH = 64
ONE_BY_ONE = 8
PROMPT = "a person walks forward and waves with the right hand"
PROMPTS = ["a person walks forward and waves with the right hand", "someone jumps twice on the spot",
           "a man runs in a circle", "a woman sits down on a chair and stands up again",
           "a person kicks with the left leg", "a person throws a ball overhand",
           "someone dances happily", "a person crouches and crawls forward"]
REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0   # Linux: kB


_RUN_PEAK_MB = 0.0   # the peak RSS of the run, over the resets of the peak mark


def _status_mb(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024.0
    raise OSError(f"no {field} in /proc/self/status")


def reset_peak() -> float | None:
    """Reset the kernel's peak-RSS mark (VmHWM; Linux >= 4.0: write 5 to /proc/self/clear_refs);
    returns the current RSS in MB, or None where that is not possible."""
    global _RUN_PEAK_MB
    try:
        _RUN_PEAK_MB = max(_RUN_PEAK_MB, _status_mb("VmHWM"))
        Path("/proc/self/clear_refs").write_text("5")
        return _status_mb("VmRSS")
    except OSError:
        return None


def phase_peak_mb(start: float | None) -> float | None:
    """Peak RSS since reset_peak() minus the RSS then: the extra memory the phase needed at its peak."""
    return None if start is None else _status_mb("VmHWM") - start


def captions():
    return [line.split("\t")[1] for line in (SHARED_DATA / "cmu" / "descriptions.tsv").read_text().splitlines()
            if "\t" in line]


def base_size_lm():
    from engine.lm import MotionLanguageModel, new_t5
    from engine.text.tokenizer import build_text_tokenizer
    text_tokenizer = build_text_tokenizer(captions(), 4000, 512)
    t5 = new_t5(32100 + 515, d_model=768, num_layers=12, num_heads=12, d_ff=2048, seed=0).eval()
    return MotionLanguageModel(t5, text_tokenizer, 512)


def random_bundled_size_model():
    import torch
    from engine.lm import MotionLanguageModel, new_t5
    from engine.model import MotionGPT, MotionGPTConfig
    from engine.motion import Normalizer
    from engine.text.tokenizer import build_text_tokenizer
    from engine.tokenizer import MotionTokenizer, TokenizerConfig

    text_tokenizer = build_text_tokenizer(captions(), 4000, 512)
    torch.manual_seed(0)
    vq = MotionTokenizer(TokenizerConfig(width=256), Normalizer.load(SHARED_DATA / "motiongpt_meta"))
    with torch.no_grad():
        vq.quantizer.codebook.normal_()
    t5 = new_t5(len(text_tokenizer), 256, 4, 4, 1024, seed=0).eval()
    return MotionGPT(vq.eval(), MotionLanguageModel(t5, text_tokenizer, 512), MotionGPTConfig())


def decoding_of(lm) -> str:
    decoder = lm.decoder()
    if decoder is None:
        return "transformers generate"
    if not decoder.quantized:
        return "float32"
    return f"int8 ({decoder.int8_layers} decoder linears, {7 if decoder.reduce_range else 8}-bit inputs)"


def plain_vs_ours(lm, repeats: int, codes: int = CLIP_CODES, float32_too: bool = False) -> dict:
    """Best-of-``repeats`` seconds of ours and of plain generate, interleaved, same prompt
    (``float32_too``: also ours with quantize="none")."""
    from engine.lm import T2M_LENGTH_PROMPT

    prompt = lm.fit_prompt(T2M_LENGTH_PROMPT, PROMPT, frames=codes * 4)
    tokens = codes + 3
    default_mode = lm.quantize

    def plain():    # the same encoder inputs (text side included), then generate's defaults
        return lm.t5.generate(**lm.encode_prompts([prompt]), max_new_tokens=tokens, min_new_tokens=tokens)

    def ours():
        return lm.generate_motion([prompt], [codes], [codes], seeds=[0])

    def ours_float32():
        lm.quantize = "none"
        try:
            return ours()
        finally:
            lm.quantize = default_mode

    start = reset_peak()
    started = time.perf_counter()
    decoding = decoding_of(lm)                                              # builds the decoder once
    build_seconds = time.perf_counter() - started
    build_peak = phase_peak_mb(start)
    lm.t5.generate(**lm.encode_prompts([prompt]), max_new_tokens=2)      # warm-up
    lm.generate_motion([prompt], [1], [1], seeds=[0])
    calls = [("plain", plain), ("ours", ours)] + ([("ours_float32", ours_float32)] if float32_too else [])
    best = {name: float("inf") for name, _ in calls}
    for _ in range(repeats):
        for name, call in calls:
            started = time.perf_counter()
            result = call()
            best[name] = min(best[name], time.perf_counter() - started)
            if name.startswith("ours"):
                assert len(result[0]) == codes
            else:
                assert result.shape[1] == tokens + 1          # decoder start + generated tokens
    result = {"generated_tokens": tokens, "ours_s": best["ours"], "plain_generate_s": best["plain"],
              "ratio_ours_to_plain": best["ours"] / best["plain"], "ours_tokens_per_s": tokens / best["ours"],
              "ours_decoding": decoding, "ours_decoder_build_s": build_seconds,
              "ours_decoder_build_extra_peak_rss_mb": build_peak, "repetitions": repeats}
    if float32_too:
        result.update({"ours_float32_s": best["ours_float32"],
                       "ratio_ours_float32_to_plain": best["ours_float32"] / best["plain"]})
    return result


def lm_batch_vs_one_by_one(lm) -> dict:
    """The language model alone (no VQ-VAE decode): 64 prompts in one generate_motion call vs one
    call per prompt (ONE_BY_ONE timed, scaled to 64)."""
    from engine.lm import T2M_LENGTH_PROMPT
    prompts = [T2M_LENGTH_PROMPT.format(frames=196, caption=PROMPTS[i % len(PROMPTS)]) for i in range(BATCH)]
    started = time.perf_counter()
    batch = lm.generate_motion(prompts, [CLIP_CODES] * BATCH, [CLIP_CODES] * BATCH, seeds=list(range(BATCH)))
    batch_seconds = time.perf_counter() - started
    started = time.perf_counter()
    singles = [lm.generate_motion([prompts[i]], [CLIP_CODES], [CLIP_CODES], seeds=[i])[0] for i in range(ONE_BY_ONE)]
    single_seconds = (time.perf_counter() - started) * BATCH / ONE_BY_ONE
    assert all(np.array_equal(s, batch[i]) for i, s in enumerate(singles))
    return {"lm_batch64_s": batch_seconds, "lm_one_by_one_64_s": single_seconds,
            "lm_batch_speedup": single_seconds / batch_seconds}


def batch_vs_one_by_one(model) -> dict:
    """End to end (LM + VQ-VAE decode, which runs clip by clip) with text_to_motion_batch."""
    texts = [PROMPTS[i % len(PROMPTS)] for i in range(BATCH)]
    model.text_to_motion_batch(texts[:2], seconds=1.0, seed=0)                               # warm-up
    start = reset_peak()
    started = time.perf_counter()
    motions = model.text_to_motion_batch(texts, seconds=CLIP_SECONDS, seed=0)
    batch_seconds = time.perf_counter() - started
    batch_peak = phase_peak_mb(start)
    assert len(motions) == BATCH and all(m.num_frames == 196 for m in motions)
    start = reset_peak()
    started = time.perf_counter()
    singles = [model.text_to_motion(texts[i], seconds=CLIP_SECONDS, seed=i) for i in range(ONE_BY_ONE)]
    single_peak = phase_peak_mb(start)
    single_seconds = (time.perf_counter() - started) * BATCH / ONE_BY_ONE
    assert all(np.array_equal(s.joints, motions[i].joints) for i, s in enumerate(singles))   # batch == one by one
    return {"batch64_s": batch_seconds, "one_by_one_64_s": single_seconds,
            "one_by_one_method": f"{ONE_BY_ONE} clips timed one by one, scaled x{BATCH // ONE_BY_ONE}",
            "batch_speedup": single_seconds / batch_seconds, "batch_clips_per_s": BATCH / batch_seconds,
            "batch64_extra_peak_rss_mb": batch_peak, "one_clip_extra_peak_rss_mb": single_peak}


def clip_latency(model, repeats: int = 3) -> float:
    """Best seconds for one 9.8 s clip, prompt -> joints (LM + VQ-VAE decode)."""
    best = float("inf")
    for seed in range(repeats):
        started = time.perf_counter()
        motion = model.text_to_motion(PROMPT, seconds=CLIP_SECONDS, seed=seed)
        best = min(best, time.perf_counter() - started)
    assert motion.num_frames == 196
    return best


def measure_model(model) -> dict:
    result = plain_vs_ours(model.lm, repeats=3)
    result["seconds_per_9.8s_clip"] = clip_latency(model)
    result.update(lm_batch_vs_one_by_one(model.lm))
    result.update(batch_vs_one_by_one(model))
    return result


def run() -> dict:
    import torch
    from engine.model import DEFAULT_MODEL, MotionGPT

    if os.environ.get("MOTIONGPT_BENCH_THREADS"):
        torch.set_num_threads(int(os.environ["MOTIONGPT_BENCH_THREADS"]))
    started = time.perf_counter()
    results = {"device": "cpu", "threads": torch.get_num_threads(), "memory_method":
               "RSS (numpy + torch + Python): *_extra_peak_rss_mb = peak RSS during that part (VmHWM, "
               "reset via /proc/self/clear_refs before it) minus RSS at its start; peak_rss_mb = "
               "peak RSS of the whole run (VmHWM before each reset, ru_maxrss)",
               "plain_means": "t5.generate(input_ids, attention_mask, max_new_tokens=52, min_new_tokens=52) on "
               "the same model and encoded prompt, all else transformers' defaults: greedy, 1 beam, KV cache, "
               "full-vocabulary lm_head, no constraint",
               "ours_means": "MotionLanguageModel.generate_motion as the engine runs it by default (quantize="
               "'auto'): tokenisation, one encoder pass, our own decoding loop (engine/decoding.py) with a "
               "preallocated KV cache, inference_mode, lm_head on the 514 motion rows + </s> only, the per-token "
               "motion constraint with top-k sampling; float32, or int8 decoder linears where the model is big "
               "enough for int8 to pay (ours_decoding)"}
    start = reset_peak()
    lm = base_size_lm()
    results["base_random_build_extra_peak_rss_mb"] = phase_peak_mb(start)
    results["base_random_parameters_M"] = sum(p.numel() for p in lm.t5.parameters()) / 1e6
    results["base_random"] = plain_vs_ours(lm, repeats=1, float32_too=True)
    start = reset_peak()
    lm.generate_motion([PROMPT], [CLIP_CODES], [CLIP_CODES], seeds=[0])
    results["base_random"]["ours_extra_peak_rss_mb"] = phase_peak_mb(start)
    del lm
    if (DEFAULT_MODEL / "config.json").is_file():
        results["bundled"] = measure_model(MotionGPT.from_pretrained("default", device="cpu"))
    else:
        results["bundled"] = "skipped: the bundled model is not built yet (assets/models/default)"
    results["bundled_size_random"] = measure_model(random_bundled_size_model())
    results["peak_rss_mb"] = max(peak_mb(), _RUN_PEAK_MB)
    results["bench_wall_s"] = time.perf_counter() - started
    return results
