"""The decoding loop of ``MotionLanguageModel.generate_motion``: our own T5 decoder step, optionally
with int8 weights on the CPU.

Why a loop of our own: a decoding step of a small T5 (the bundled model: d_model 256, 4 + 4
layers) is a few microseconds of arithmetic per op but ~3 ms of Python in transformers (``generate``'s
bookkeeping, module calls, mask building, cache objects). ``T5Decoder`` runs the same ops on the
T5's own weights: one encoder pass (the same ops as the T5's encoder), then per generated token embedding ->
per layer [RMS norm, q/k/v, attention over a preallocated key/value cache with the relative
position bias, o; RMS norm, cross-attention over keys/values of the encoder states computed once;
RMS norm, gated FFN] -> final RMS norm -> the ``</s>`` and motion rows of lm_head only. The next
token is chosen by the rules of ``MotionSpanProcessor`` as in the ``generate`` path
(``decide_rows``: the sampling rows of a step share one top-k / softmax / cumsum).

In float32 (``quantize="none"``, and "auto" where no layer is big enough) every op is the one
transformers runs, with the same shapes and the same attention masks, except that on the CPU the
linears of a step multiply as (W @ x.T).T (``step_linear``: ~20 % faster per request, the same
products summed in another order). With ``STEP_PRODUCT = "linear"`` the logits are bit-identical
to ``t5.generate``'s with the processor (tested); with the transposed product they agree to ~1e-6
and give the same tokens (tested; the bundled model's motions were bit-equal on 12 of 12 requests).

int8 (``RowInt8Linear``): a linear layer's weights as int8 per output row (fbgemm, the x86 CPU
kernels of ``torch.ops.quantized``), its input quantized to 8 bits at every call. The stock dynamic
quantization (``torch.ao.quantization.quantize_dynamic``) scales the input by the min/max of the
WHOLE batch, so a batch row would differ from the same row run alone. Here each row is first
divided by its own max |x| and two constant columns (+1, -1, with zero weights) are appended, so
every row spans exactly [-1, 1]: the kernel's range is the same for any batch, its integer
arithmetic is exact, and a batch row equals the single call bit for bit. The float32 ops that
feed int8 layers must be row-exact too (a last-bit difference can cross a rounding step of the
8-bit grid), so with int8 the prompts are encoded one by one and cross-attention and lm_head run
per row. q/k/v and wi_0/wi_1 are fused into one int8 matmul each (they read the same input).
On CPUs with VNNI the inputs are 8-bit; without it fbgemm's int16 pair sums would saturate, so
they are 7-bit (``reduce_range``, as quantize_dynamic does on x86), which costs quality (below).

Which layers become int8 (``quantize``, ``MotionGPT.from_pretrained(..., quantize=)``, default
from $MOTIONGPT_QUANTIZE, else "auto"):
- ``"none"``: none (float32, identical to ``generate``).
- ``"int8"``: every decoder linear (self-attention q/k/v/o, cross-attention q/o, FFN), on the CPU.
- ``"auto"`` (the default): all of them when their mean size is at least ``INT8_MIN_WEIGHTS``
  weights, on a CPU with VNNI, else none (all or none, so no float32 linear feeds an int8 one).
  Measured on 1 thread: a 768 x 2048 matrix-vector product 230 -> 74 us in int8, but a 256 x 1024
  one 17 -> 29 us (the per-call quantization overhead dominates). So the bundled model (d_model
  256) decodes in float32 and a flan-t5-base-sized one (768) in int8: 52 tokens 1.8 s -> 0.8 s.
The cross-attention keys/values (once per call), the encoder and the lm_head rows stay float32.

Quality of int8, forced on the bundled model (bench_tasks metrics, 30 validation clips, 4 seed
sets; sampled codes diverge from float32's after ~13 codes, as any other seed would; greedy: 27 of 30 clips identical): text-to-motion
described back correctly 0.55 (8-bit inputs) vs 0.58 in float32, whose own seed sets range
0.47-0.63; in-between error 109.5 vs 110.5 mm. With 7-bit inputs: 0.48, hence "auto" needs VNNI.
"""
from __future__ import annotations

import functools
import os
import warnings

import numpy as np

QUANTIZE_MODES = ("auto", "int8", "none")
QUANTIZE_ENV = "MOTIONGPT_QUANTIZE"       # the default mode where from_pretrained gets none
INT8_MIN_WEIGHTS = 1 << 19                 # "auto": int8 for linears with >= 524288 weights (768 x 768: yes)
# How the float32 linears of a decoding step multiply on the CPU: "transposed" computes x @ W.T as
# (W @ x.T).T, "linear" as F.linear (transformers' op; the tests switch to it to check the loop
# against generate bit for bit). See ``step_linear``.
STEP_PRODUCT = "transposed"


def resolve_quantize(mode) -> str:
    """``None`` -> $MOTIONGPT_QUANTIZE or "auto"; True/False -> "int8"/"none"; checks the name."""
    from .errors import MotionError
    if mode is None:
        mode = os.environ.get(QUANTIZE_ENV, "").strip().lower() or "auto"
    if mode is True:
        mode = "int8"
    elif mode is False:
        mode = "none"
    if mode not in QUANTIZE_MODES:
        raise MotionError(f"quantize must be one of {', '.join(QUANTIZE_MODES)} (or True/False), got {mode!r}")
    return mode


@functools.lru_cache(maxsize=1)
def has_vnni() -> bool:
    """The CPU has VNNI (int8 dot products into int32; Linux /proc/cpuinfo flags), so fbgemm can
    take 8-bit inputs: without it, its int16 pair sums saturate unless the inputs are 7-bit
    (``reduce_range``, which costs quality: see the module docstring)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as handle:
            flags = set()
            for line in handle:
                if line.startswith("flags"):
                    flags.update(line.split(":", 1)[1].split())
                    break
    except OSError:
        return False
    return bool(flags & {"avx512_vnni", "avx_vnni", "amx_int8"})


def int8_available() -> bool:
    """The fbgemm/x86 quantized linear kernels are there (x86 CPU builds of torch)."""
    import torch
    try:
        return torch.backends.quantized.engine in ("x86", "fbgemm") and \
            hasattr(torch.ops.quantized, "linear_dynamic") and hasattr(torch.ops.quantized, "linear_prepack")
    except Exception:  # a build without quantized ops
        return False


class RowInt8Linear:
    """``x @ W.T`` with int8 weights (per output row) and the input quantized per row (see the
    module docstring): rows are independent, so a batch equals its rows run one by one."""

    def __init__(self, weight, reduce_range: bool = True):
        import torch
        weight = weight.detach().float().cpu()
        rows = weight.shape[0]
        padded = torch.cat([weight, weight.new_zeros(rows, 2)], 1)
        scales = (padded.abs().amax(1) / 127.0).clamp_min(1e-12).double()
        with warnings.catch_warnings():   # quantized tensor creation is deprecated, the kernels are not gone
            warnings.simplefilter("ignore")
            quantized = torch.quantize_per_channel(padded, scales, torch.zeros(rows, dtype=torch.long), 0,
                                                   torch.qint8)
            self.packed = torch.ops.quantized.linear_prepack(quantized, None)
        self.ends = torch.tensor([1.0, -1.0])
        self.out_features = rows
        self.reduce_range = reduce_range

    def __call__(self, x):
        import torch
        scale = x.abs().amax(-1, keepdim=True).clamp_min(1e-30)
        spanned = torch.cat([x / scale, self.ends.expand(*x.shape[:-1], 2)], -1)
        return torch.ops.quantized.linear_dynamic(spanned, self.packed, self.reduce_range) * scale


def _fp32_linear(weight):
    import torch.nn.functional as F
    return lambda x: F.linear(x, weight)


def step_linear(weight):
    """``x @ weight.T`` for the (rows, 1, in) inputs of one decoding step, as ``STEP_PRODUCT``
    says on the CPU. The step's inputs are a few rows: F.linear hands them to sgemm as a (rows x in)
    matrix times the transposed weight, and MKL's small-M path repacks the whole weight at every
    call. (W @ x.T).T multiplies the weight as it is stored: 256 x 1024 float32 weights, 4 rows,
    cold cache, 1 thread: ~290 -> ~130 us. The products are the same, summed in another order
    (logits agree with F.linear's to ~1e-6 relative; tested)."""
    import torch
    if STEP_PRODUCT == "linear" or weight.device.type != "cpu":
        return _fp32_linear(weight)

    def product(x):
        rows = x.reshape(-1, x.shape[-1])
        return torch.mm(weight, rows.t()).t().reshape(*x.shape[:-1], weight.shape[0])
    return product


def _supported(t5) -> bool:
    """Float32, eval mode, sdpa attention (transformers' default): the T5 this loop replicates."""
    import torch
    try:
        decoder = t5.decoder
        block = decoder.block[0]
        return (not t5.training and t5.dtype == torch.float32 and len(block.layer) == 3
                and getattr(t5.config, "_attn_implementation", None) == "sdpa"
                and hasattr(block.layer[0].SelfAttention, "compute_bias"))
    except AttributeError:
        return False


class _Layer:
    __slots__ = ("ln_self", "qkv", "o", "ln_cross", "cross_q", "cross_o", "cross_k", "cross_v", "ln_ff", "ff")


class T5Decoder:
    """The decoder of a ``T5ForConditionalGeneration`` (float32, eval) as plain tensor ops, with
    the lm_head restricted to ``head_rows`` (see the module docstring). Built once per model state
    (``MotionLanguageModel`` caches it); reads the T5's float32 weights in place."""

    def __init__(self, t5, head_rows, quantize: str = "none"):
        import torch
        config = t5.config
        self.heads, self.d_kv = config.num_heads, config.d_kv
        self.inner = self.heads * self.d_kv
        self.eps = config.layer_norm_epsilon
        self.scale_output = config.d_model ** -0.5 if getattr(config, "scale_decoder_outputs", False) else None
        decoder = t5.decoder
        encoder = t5.get_encoder()
        self.encoder_embed = encoder.embed_tokens.weight.detach()
        self.encoder_bias = encoder.block[0].layer[0].SelfAttention
        self.encoder_norm = encoder.final_layer_norm.weight.detach()
        self.encoder_layers = []
        for block in encoder.block:          # float32 always: the encoder runs once per call
            attention, ff = block.layer[0].SelfAttention, block.layer[1]
            self.encoder_layers.append((
                block.layer[0].layer_norm.weight.detach(),
                tuple(attention_weight(m) for m in (attention.q, attention.k, attention.v, attention.o)),
                ff.layer_norm.weight.detach(), self._feed_forward(ff.DenseReluDense, lambda *modules: False)))
        self.embed = decoder.embed_tokens.weight.detach()
        self.bias_attention = decoder.block[0].layer[0].SelfAttention
        self.final_norm = decoder.final_layer_norm.weight.detach()
        self.head_rows = torch.as_tensor(head_rows, dtype=torch.long)
        self.head = t5.lm_head.weight.detach()[self.head_rows.to(t5.lm_head.weight.device)]
        use_int8 = quantize != "none" and t5.device.type == "cpu" and int8_available()
        self.reduce_range = not has_vnni()
        if use_int8 and quantize == "auto":    # all or none, so that no float32 linear feeds an int8 one
            use_int8 = not self.reduce_range
            sizes = use_int8 and [m.weight.numel() for m in decoder.modules() if isinstance(m, torch.nn.Linear)
                     and not _is_cross_kv(decoder, m)]
            use_int8 = bool(sizes) and sum(sizes) / len(sizes) >= INT8_MIN_WEIGHTS
        threshold = 0
        self.int8_layers = 0
        self.layers = []
        for block in decoder.block:
            self_attention, cross, ff = block.layer[0], block.layer[1], block.layer[2]
            attention, cross_attention, dense = self_attention.SelfAttention, cross.EncDecAttention, ff.DenseReluDense
            layer = _Layer()
            layer.ln_self = self_attention.layer_norm.weight.detach()
            layer.ln_cross = cross.layer_norm.weight.detach()
            layer.ln_ff = ff.layer_norm.weight.detach()
            layer.cross_k = attention_weight(cross_attention.k)
            layer.cross_v = attention_weight(cross_attention.v)

            def pick(*modules):
                return use_int8 and all(m.weight.numel() >= threshold for m in modules)

            q, k, v = attention.q, attention.k, attention.v
            if pick(q, k, v):
                fused = RowInt8Linear(torch.cat([q.weight, k.weight, v.weight]), self.reduce_range)
                inner = self.inner
                layer.qkv = lambda x, fused=fused, inner=inner: fused(x).split(inner, -1)
                self.int8_layers += 3
            else:
                wq, wk, wv = (step_linear(attention_weight(m)) for m in (q, k, v))
                layer.qkv = lambda x, wq=wq, wk=wk, wv=wv: (wq(x), wk(x), wv(x))
            layer.o, layer.cross_q, layer.cross_o = (self._linear(m, pick(m), step_linear) for m in
                                                     (attention.o, cross_attention.q, cross_attention.o))
            layer.ff = self._feed_forward(dense, pick, step_linear)
            self.layers.append(layer)
        self.quantized = self.int8_layers > 0

    def _feed_forward(self, dense, pick, float32=_fp32_linear):
        """T5DenseGatedActDense / T5DenseActDense as one callable (int8 where ``pick`` says, else
        ``float32(weight)``'s product)."""
        import torch
        act = dense.act.forward
        if hasattr(dense, "wi_0"):
            if pick(dense.wi_0, dense.wi_1):
                fused = RowInt8Linear(torch.cat([dense.wi_0.weight, dense.wi_1.weight]), self.reduce_range)
                width = dense.wi_0.weight.shape[0]

                def up(x, fused=fused, width=width, act=act):
                    gate, linear = fused(x).split(width, -1)
                    return act(gate) * linear
                self.int8_layers += 2
            else:
                w0, w1 = float32(attention_weight(dense.wi_0)), float32(attention_weight(dense.wi_1))

                def up(x, w0=w0, w1=w1, act=act):
                    return act(w0(x)) * w1(x)
        else:
            wi = self._linear(dense.wi, pick(dense.wi), float32)

            def up(x, wi=wi, act=act):
                return act(wi(x))
        wo = self._linear(dense.wo, pick(dense.wo), float32)
        return lambda x, up=up, wo=wo: wo(up(x))

    def encode(self, inputs: dict):
        """The T5 encoder's last hidden state for ``input_ids`` or ``inputs_embeds`` +
        ``attention_mask``: transformers' ops (sdpa with the bidirectional relative position bias,
        where(padding, bias, min) when a row is padded), without its per-call machinery."""
        import torch
        import torch.nn.functional as F
        hidden = inputs.get("inputs_embeds")
        if hidden is None:
            hidden = F.embedding(inputs["input_ids"], self.encoder_embed)
        rows, length = hidden.shape[:2]
        heads, d_kv, inner = self.heads, self.d_kv, self.inner
        bias = self.encoder_bias.compute_bias(length, length, device=hidden.device)
        mask = inputs.get("attention_mask")
        if mask is not None and not bool(mask.all()):
            bias = torch.where(mask[:, None, None, :].bool(), bias, torch.finfo(hidden.dtype).min)
        bias = bias.contiguous()
        norm = self._norm
        for ln_attention, (wq, wk, wv, wo), ln_ff, ff in self.encoder_layers:
            x = norm(hidden, ln_attention)
            q, k, v = (_linear(x, w).view(rows, length, heads, d_kv).transpose(1, 2) for w in (wq, wk, wv))
            attended = F.scaled_dot_product_attention(q, k, v, attn_mask=bias, dropout_p=0.0, scale=1.0)
            hidden = hidden + _linear(attended.transpose(1, 2).reshape(rows, length, inner), wo)
            hidden = hidden + ff(norm(hidden, ln_ff))
        return norm(hidden, self.encoder_norm)

    def _linear(self, module, int8: bool, float32=_fp32_linear):
        if int8:
            self.int8_layers += 1
            return RowInt8Linear(module.weight, self.reduce_range)
        return float32(attention_weight(module))

    def _norm(self, hidden, weight):
        """T5LayerNorm (RMS, no mean, no bias), float32."""
        import torch
        variance = hidden.pow(2).mean(-1, keepdim=True)
        return weight * (hidden * torch.rsqrt(variance + self.eps))

    def generate(self, encode, prompts, processor, max_new_tokens: int, pad_id: int = 0,
                 eos_id: int = 1, decoder_start_id: int = 0) -> np.ndarray:
        """Token ids (rows, 1 + steps) like ``generate``'s output: the decoder start token, then
        each row's tokens (``pad_id`` after its ``eos_id``); stops when every row has ended or
        after ``max_new_tokens``. ``encode(prompts)`` gives the encoder's inputs (input_ids or
        inputs_embeds, attention_mask); ``processor.decide_rows(rows, ids, code_scores,
        end_scores)`` picks the next token of the rows that have not ended from the motion rows' logits.

        Float32: one batched encoder pass, as ``generate`` does. int8: every float32 op that feeds
        an int8 layer must give a batch row the very bits of the single call (a last-bit
        difference can move an input across a rounding step of the 8-bit grid and change a
        sample), so the prompts are encoded one by one, each row's cross-attention keys/values are
        computed on its own states, and lm_head runs row by row."""
        import torch
        import torch.nn.functional as F

        sdpa = F.scaled_dot_product_attention
        norm = self._norm
        heads, d_kv, inner = self.heads, self.d_kv, self.inner
        row_exact = self.quantized
        if row_exact:
            parts = [self.encode(encode([prompt])) for prompt in prompts]
        else:
            inputs = encode(prompts)
            parts = [self.encode(inputs)]
        rows = len(prompts)
        device, dtype = parts[0].device, parts[0].dtype
        # cross-attention keys/values of each layer: one (keys, values, mask) per part; the masks
        # transformers builds for sdpa: zeros, or where(padding mask, 0, min) when a prompt is padded
        # (int8: per row, unpadded: attention over padded keys differs from the single call in the last bits)
        cross = []
        for layer in self.layers:
            entries = []
            for part in parts:
                n, s = part.shape[:2]
                keys = _linear(part, layer.cross_k).view(n, s, heads, d_kv).transpose(1, 2).contiguous()
                values = _linear(part, layer.cross_v).view(n, s, heads, d_kv).transpose(1, 2).contiguous()
                entries.append((keys, values))
            cross.append(entries)
        cross_masks = []
        for part in parts:
            zeros = torch.zeros((1, heads, 1, part.shape[1]), device=device, dtype=dtype)
            mask = None if row_exact else inputs["attention_mask"]
            cross_masks.append(zeros.contiguous() if mask is None or bool(mask.all()) else
                               torch.where(mask[:, None, None, :].bool(), zeros, torch.finfo(dtype).min).contiguous())
        head = step_linear(self.head)
        position_bias = self.bias_attention.compute_bias(max_new_tokens, max_new_tokens, device=device)
        cache_k = [torch.empty((rows, heads, max_new_tokens, d_kv), device=device, dtype=dtype) for _ in self.layers]
        cache_v = [torch.empty((rows, heads, max_new_tokens, d_kv), device=device, dtype=dtype) for _ in self.layers]
        code_num = processor.vocab.code_num
        end_index = code_num + 2                      # rows: eos, codes, start, end, mask

        ids = np.full((rows, max_new_tokens + 1), pad_id, dtype=np.int64)
        ids[:, 0] = decoder_start_id
        finished = np.zeros(rows, dtype=bool)
        all_rows = list(range(rows))
        tokens = torch.full((rows, 1), decoder_start_id, dtype=torch.long, device=device)
        steps = 0
        for t in range(max_new_tokens):
            hidden = F.embedding(tokens, self.embed)
            bias = position_bias[:, :, t:t + 1, :t + 1].contiguous()
            for index, layer in enumerate(self.layers):
                q, k, v = layer.qkv(norm(hidden, layer.ln_self))
                cache_k[index][:, :, t:t + 1] = k.view(rows, 1, heads, d_kv).transpose(1, 2)
                cache_v[index][:, :, t:t + 1] = v.view(rows, 1, heads, d_kv).transpose(1, 2)
                attended = sdpa(q.view(rows, 1, heads, d_kv).transpose(1, 2), cache_k[index][:, :, :t + 1],
                                cache_v[index][:, :, :t + 1], attn_mask=bias, dropout_p=0.0, scale=1.0)
                hidden = hidden + layer.o(attended.transpose(1, 2).reshape(rows, 1, inner))
                q = layer.cross_q(norm(hidden, layer.ln_cross)).view(rows, 1, heads, d_kv).transpose(1, 2)
                if row_exact:
                    attended = torch.cat([sdpa(q[row:row + 1], keys, values, attn_mask=mask, dropout_p=0.0, scale=1.0)
                                          for row, ((keys, values), mask) in enumerate(zip(cross[index], cross_masks))])
                else:
                    (keys, values), = cross[index]
                    attended = sdpa(q, keys, values, attn_mask=cross_masks[0], dropout_p=0.0, scale=1.0)
                hidden = hidden + layer.cross_o(attended.transpose(1, 2).reshape(rows, 1, inner))
                hidden = hidden + layer.ff(norm(hidden, layer.ln_ff))
            hidden = norm(hidden, self.final_norm)
            if self.scale_output is not None:
                hidden = hidden * self.scale_output
            if row_exact:
                logits = torch.cat([_linear(hidden[row:row + 1], self.head) for row in range(rows)])[:, 0].cpu()
            else:
                logits = head(hidden)[:, 0].cpu()
            code_scores, end_scores = logits[:, 1:1 + code_num], logits[:, end_index:end_index + 1]
            if finished.any():
                active = np.flatnonzero(~finished)
                ids[active, t + 1] = processor.decide_rows(active.tolist(), ids[active, :t + 1],
                                                           code_scores[active], end_scores[active])
            else:
                ids[:, t + 1] = processor.decide_rows(all_rows, ids[:, :t + 1], code_scores, end_scores)
            steps = t + 1
            finished |= ids[:, t + 1] == eos_id
            if finished.all():
                break
            tokens = torch.from_numpy(ids[:, t + 1:t + 2].copy()).to(device)
        return ids[:, :steps + 1]


def _is_cross_kv(decoder, module) -> bool:
    return any(module is block.layer[1].EncDecAttention.k or module is block.layer[1].EncDecAttention.v
               for block in decoder.block)


def attention_weight(module):
    """A linear module's float32 weight (no copy)."""
    return module.weight.detach()


def _linear(x, weight):
    import torch.nn.functional as F
    return F.linear(x, weight)


def model_state(t5) -> tuple:
    """Changes whenever any weight of ``t5`` is replaced or changed in place (optimizer steps,
    load_state_dict): the key under which a built ``T5Decoder`` stays valid."""
    return (id(t5), t5.training, str(t5.device), t5.dtype,
            tuple((p.data_ptr(), p._version) for p in t5.parameters()))
