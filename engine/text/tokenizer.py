"""Our own T5-style text tokenizer, for models trained here (no flan-t5 download needed).

A byte-level BPE (every string is representable: unknown characters fall back to their UTF-8
bytes) trained with the ``tokenizers`` library on the dataset's captions, MotionGPT's prompt
templates and ``MOTION_WORDS``; T5's special-token layout (``<pad>`` 0, ``</s>`` 1, ``<unk>`` 2),
``</s>`` appended to every encoded text as T5 does; then the motion tokens ``<motion_id_0>`` ..
``<motion_id_{code_num + 2}>`` added in order, so ``<motion_id_k>`` has id ``base_vocab + k``.

The result is a ``transformers.PreTrainedTokenizerFast``; ``save_pretrained(folder)`` writes
``tokenizer.json`` and ``AutoTokenizer.from_pretrained(folder)`` gives back the same ids.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterable

from ..errors import MotionError

PAD, EOS, UNK = "<pad>", "</s>", "<unk>"
MOTION_EXTRA_TOKENS = 3  # start, end, mask after the code_num codes


def motion_token(index: int) -> str:
    """The text of motion token ``index``: codes 0..code_num-1, then start, end, mask."""
    return f"<motion_id_{index}>"


# The words an animator types, so that they are whole tokens even when the captions lack them.
MOTION_WORDS = """
a the person man woman someone character he she they his her their and then while with without
walks walk walking runs run running jogs jog sprints dashes jumps jump jumping hops hop skips leaps
steps step stands stand standing sits sit sitting kneels kneel crouches crouch squats squat lies lie
falls fall crawls crawl climbs climb dances dance dancing spins spin turns turn turning rotates twists
bends bend leans lean stretches stretch reaches reach raises raise lifts lift lowers lower drops
waves wave waving points point claps clap punches punch kicks kick throws throw catches catch
pushes push pulls pull picks picked grabs grab holds hold carries carry swings swing shakes shake
nods nod bows bow salutes salute stumbles stumble balances balance slides slide rolls roll
looks look glances stops stop pauses pause starts start begins continues moves move paces
marches march tiptoes sneaks staggers limps struggles drinks eats wipes scratches taps stomps
golf tennis baseball boxing yoga exercise warm up cartwheel backflip somersault
forward forwards backward backwards back sideways left right up down around over under across
toward towards away in place circle circles straight diagonally clockwise counterclockwise
slowly quickly fast slow briskly carefully gently happily sadly angrily proudly tiredly
casually energetically confidently nervously loudly quietly playfully heavily lightly
arm arms hand hands leg legs foot feet knee knees head shoulder shoulders hip hips elbow elbows
wrist wrists waist chest back body torso neck fingers toes both one two three four five times
once twice again several steps seconds ground floor chair stairs wall ball object box cup
angry happy sad tired old young childish feminine masculine proud drunk zombie robot chicken
""".split()

# MotionGPT's task prompts (notes §4) and our steered in-between instruction.
PROMPT_TEMPLATES = (
    "Generate motion: ", "Generate motion with 196 frames: ", "Generate text: ",
    "Generate text with 120 frames: ", "Predict motion: ", "Complete the masked motion: ",
    "Complete the masked motion in which ", "Describe the motion.", "Give me a motion of ",
)


def build_text_tokenizer(captions: Iterable[str], vocab_size: int = 4000, code_num: int = 512):
    """Train the byte-level BPE on ``captions`` (+ templates and motion words) and add the
    ``code_num + 3`` motion tokens. Returns a ``PreTrainedTokenizerFast``."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    if isinstance(vocab_size, bool) or not isinstance(vocab_size, int) or vocab_size < 300:
        raise MotionError(f"vocab_size must be an integer >= 300 (256 bytes + specials), got {vocab_size!r}")
    if isinstance(code_num, bool) or not isinstance(code_num, int) or code_num < 1:
        raise MotionError(f"code_num must be a positive integer, got {code_num!r}")
    texts = [str(c).strip() for c in captions if str(c).strip()]
    corpus = texts + list(PROMPT_TEMPLATES) * 20 + [" ".join(MOTION_WORDS)] * 20 \
        + [f"a person {word}" for word in MOTION_WORDS] * 5

    tokenizer = Tokenizer(models.BPE(unk_token=None))
    tokenizer.normalizer = normalizers.NFKC()
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=[PAD, EOS, UNK],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tokenizer.train_from_iterator(corpus, trainer)
    for token, wanted in ((PAD, 0), (EOS, 1), (UNK, 2)):
        if tokenizer.token_to_id(token) != wanted:  # BpeTrainer puts special tokens first
            raise MotionError(f"text tokenizer: {token} got id {tokenizer.token_to_id(token)}, expected {wanted}")
    tokenizer.post_processor = processors.TemplateProcessing(
        single=f"$A {EOS}", pair=f"$A {EOS} $B {EOS}", special_tokens=[(EOS, 1)])

    fast = PreTrainedTokenizerFast(tokenizer_object=tokenizer, pad_token=PAD, eos_token=EOS, unk_token=UNK,
                                   model_max_length=512, padding_side="right")
    add_motion_tokens(fast, code_num)
    return fast


def add_motion_tokens(tokenizer, code_num: int) -> int:
    """Add ``<motion_id_0>`` .. ``<motion_id_{code_num+2}>`` as ordinary added tokens (as MotionGPT
    does); returns the id of ``<motion_id_0>``. A MotionError if they do not land contiguously."""
    from tokenizers import AddedToken

    base = len(tokenizer)
    tokens = [AddedToken(motion_token(k), special=False, normalized=False, single_word=False,
                         lstrip=False, rstrip=False) for k in range(code_num + MOTION_EXTRA_TOKENS)]
    tokenizer.add_tokens(tokens)
    for k in (0, code_num - 1, code_num, code_num + MOTION_EXTRA_TOKENS - 1):
        if tokenizer.convert_tokens_to_ids(motion_token(k)) != base + k:
            raise MotionError(f"text tokenizer: {motion_token(k)} got id "
                              f"{tokenizer.convert_tokens_to_ids(motion_token(k))}, expected {base + k}")
    return base


def captions_of_dataset(dataset_dir: str | Path) -> list[str]:
    """Every caption line of a built dataset folder (texts/*.txt)."""
    folder = Path(dataset_dir) / "texts"
    if not folder.is_dir():
        raise MotionError(f"{folder}: no captions folder; build the dataset first (python -m engine.data build)")
    captions = []
    for path in sorted(folder.glob("*.txt")):
        captions += [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    if not captions:
        raise MotionError(f"{folder}: no captions found")
    return captions
