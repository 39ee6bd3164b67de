"""Dataset builder: real mocap -> HumanML3D-style features + captions, with a fixed split.

    python -m engine.data build [--out DIR] [--sources bandai1,bandai2,cmu] [--limit N]

writes a folder laid out like HumanML3D, which the trainers read:

    DIR/features/<clip>.npy   (T, 263) float32, 20 fps, un-normalised HumanML3D features
    DIR/joints/<clip>.npy     (T, 22, 3) float32, the joints those features decode to (metres, Y up)
    DIR/texts/<clip>.txt      captions, one per line
    DIR/train.txt, val.txt    clip names, one per line, sorted (fixed split, see ``split_of_clip``)
    DIR/test.txt              held-out captures: every take of one HDM05 actor
    DIR/mean.npy, std.npy     statistics fitted on the training clips (engine.Normalizer)
    DIR/meta.json             sources, counts, builder version

Every clip also appears mirrored (left and right swapped, as HumanML3D's "M" clips), with its
captions mirrored too ("left hand" <-> "right hand"); a mirror always sits in its source's split.

Captions are written from each clip's labels (Bandai: content and style; CMU: the database's own
description), several phrasings per clip. Where a label leaves the side open ("bye", "guide"),
the builder measures which hand does the work and says so.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tarfile
import time
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import numpy as np

from .errors import MotionError
from .motion import JOINT_NAMES, MODEL_FPS, Motion, Normalizer

BUILDER_VERSION = 1
REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_SHARED_DATA = REPO_ROOT.parent / "shared" / "data"
MIN_FRAMES = 24          # shortest clip kept, at 20 fps (1.2 s: six motion tokens)
VALIDATION_PERCENT = 10


def default_cache_dir() -> Path:
    """Where built datasets live: $MOTIONGPT_CACHE or <repo>/cache."""
    return Path(os.environ.get("MOTIONGPT_CACHE", REPO_ROOT / "cache"))


def default_dataset_dir() -> Path:
    return default_cache_dir() / "dataset"


@dataclass
class Clip:
    """One training clip: ``features`` (T, 263) float32 at 20 fps and its ``captions``."""

    name: str
    features: np.ndarray
    captions: list[str]


# ----------------------------------------------------------------------------- captions

# Bandai content labels -> verb phrases (third person, present tense).
BANDAI_CONTENT = {
    "walk": ["walks forward", "walks straight ahead", "takes a walk forward"],
    "run": ["runs forward", "jogs forward", "runs ahead"],
    "dash": ["sprints forward", "dashes forward", "runs forward very fast"],
    "walk-back": ["walks backward", "walks backwards", "steps backward"],
    # Measured: these walk forward on a path bent about 15-30 degrees off the facing direction.
    "walk-left": ["walks diagonally forward to the left", "walks toward the front left",
                  "walks forward, drifting to the left"],
    "walk-right": ["walks diagonally forward to the right", "walks toward the front right",
                   "walks forward, drifting to the right"],
    "walk-turn-left": ["walks and turns left", "walks forward and turns to the left",
                       "turns left while walking"],
    "walk-turn-right": ["walks and turns right", "walks forward and turns to the right",
                        "turns right while walking"],
    "bow": ["bows", "bows politely", "takes a bow"],
    "bye": ["waves goodbye{hand}", "waves{hand} to say goodbye", "says bye with a wave{hand}"],
    "byebye": ["waves goodbye{hand} several times", "waves bye-bye{hand}",
               "keeps waving goodbye{hand}"],
    "guide": ["gestures to show the way{hand}", "guides someone, pointing the way{hand}",
              "points the direction{hand}"],
    "respond": ["responds with a gesture{hand}", "reacts and answers{hand}",
                "gives a response{hand}"],
    "call": ["calls someone over{hand}", "beckons to someone{hand}", "calls out and gestures{hand}"],
    "punch": ["punches", "throws punches", "punches forward"],
    "kick": ["kicks", "kicks forward", "throws a kick"],
    "slash": ["slashes with a sword", "swings a sword", "makes sword slashes"],
    "dance-short": ["dances", "performs a dance", "dances energetically"],
    "dance-long": ["dances", "performs a long dance", "dances for a while"],
    "wave-both-hands": ["waves both hands", "waves with both hands", "waves both arms"],
    "wave-left-hand": ["waves the left hand", "waves with the left hand", "waves the left arm"],
    "wave-right-hand": ["waves the right hand", "waves with the right hand", "waves the right arm"],
    "raise-up-both-hands": ["raises both hands", "lifts both hands up", "raises both arms up"],
    "raise-up-left-hand": ["raises the left hand", "lifts the left hand up", "raises the left arm"],
    "raise-up-right-hand": ["raises the right hand", "lifts the right hand up",
                            "raises the right arm"],
}
# Contents whose side the label leaves open: the builder measures the working hand.
HAND_OPEN_CONTENT = {"bye", "byebye", "guide", "respond", "call"}

# Bandai style labels -> (adverbial phrase, adjective for "a ... person"); "" for none.
BANDAI_STYLE = {
    "normal": ("", ""),
    "happy": ("happily", "happy"),
    "sad": ("sadly", "sad"),
    "angry": ("angrily", "angry"),
    "proud": ("proudly", "proud"),
    "not-confident": ("timidly, without confidence", "shy"),
    "masculinity": ("in a masculine way", "masculine"),
    "masculine": ("in a masculine way", "masculine"),
    "feminine": ("in a feminine way", "feminine"),
    "childish": ("like a child", "childlike"),
    "youthful": ("in a youthful way", "young"),
    "old": ("like an old person", "old"),
    "elderly": ("like an elderly person", "elderly"),
    "tired": ("tiredly", "tired"),
    "exhausted": ("in an exhausted way", "exhausted"),
    "active": ("energetically", "energetic"),
    "musical": ("theatrically, like in a musical", "theatrical"),
    "giant": ("heavily, like a giant", "giant"),
    "chimpira": ("like a street thug, swaggering", "swaggering"),
}


def working_hand(motion: Motion) -> str:
    """'left', 'right' or 'both': which wrist travels more over the clip (positions, any fps)."""
    wrists = motion.joints[:, [JOINT_NAMES.index("left_wrist"), JOINT_NAMES.index("right_wrist")]]
    pelvis = motion.joints[:, :1]
    relative = wrists - pelvis
    travel = np.linalg.norm(np.diff(relative, axis=0), axis=-1).sum(axis=0)
    left, right = travel
    if max(left, right) < 1.5 * min(left, right):
        return "both"
    return "left" if left > right else "right"


def bandai_captions(content: str, style: str, hand: str | None) -> list[str]:
    """Several phrasings of a Bandai clip from its content and style labels."""
    if content not in BANDAI_CONTENT or style not in BANDAI_STYLE:
        raise MotionError(f"unknown Bandai label: content {content!r}, style {style!r}")
    hand_phrase = {"left": " with the left hand", "right": " with the right hand",
                   "both": " with both hands", None: ""}[hand]
    verbs = [v.format(hand=hand_phrase) for v in BANDAI_CONTENT[content]]
    adverb, adjective = BANDAI_STYLE[style]
    if not adverb:
        return [f"a person {verbs[0]}", f"someone {verbs[1]}", f"the person {verbs[2]}"]
    article = "an" if adjective[0] in "aeiou" else "a"
    return [f"a person {verbs[0]} {adverb}", f"{article} {adjective} person {verbs[1]}",
            f"someone {verbs[2]}, {adverb}"]


def cmu_captions(description: str) -> list[str]:
    """Phrasings of a CMU index description such as 'walk' or 'basketball - forward dribble'."""
    text = description.strip().replace("/", " or ")
    text = re.sub(r"\s+", " ", text)
    return [f"a person: {text}", f"motion of {text}", text]


# HDM05 classes (as in the file names) -> (content label, verb phrases). The side is the one the
# class name gives (R/L); mirrored clips swap it with the captions (``mirror_caption``).
HDM05_CLASSES = {
    "depositFloorR": ("put-down", ["bends down and puts an object on the floor with the right hand",
                                   "puts something down on the floor with the right hand",
                                   "bends over and sets an object on the ground with the right hand"]),
    "elbowToKnee1RepsLelbowStart": ("elbow-to-knee", ["touches the left elbow to the right knee",
                                                      "brings the left elbow down to the raised right knee",
                                                      "does a crossed elbow-to-knee exercise, left elbow to right knee"]),
    "grabHighR": ("reach-up", ["reaches up high with the right hand and grabs something",
                               "stretches the right arm up high to grab something",
                               "reaches for something up high with the right hand"]),
    "hopBothLegs1hops": ("hop", ["hops once on both legs", "jumps up once with both feet",
                                 "does a small jump on both feet"]),
    "jogLeftCircle4StepsRstart": ("jog-circle", ["jogs in a circle to the left", "jogs four steps, curving to the left",
                                                 "jogs around a small circle to the left"]),
    "kickLFront1Reps": ("front-kick", ["kicks forward with the left leg", "kicks to the front with the left foot",
                                       "does a front kick with the left leg"]),
    "lieDownFloor": ("lie-down", ["lies down on the floor", "gets down and lies on the floor",
                                  "lies down flat on the ground"]),
    "rotateArmsBothBackward1Reps": ("arm-circles", ["circles both arms backward", "rotates both arms backward once",
                                                    "makes a backward circle with both arms"]),
    "sneak2StepsLStart": ("sneak", ["sneaks forward", "sneaks two steps forward", "creeps forward quietly"]),
    "squat1Reps": ("squat", ["squats down and stands back up", "does a squat", "squats down once"]),
    "throwBasketball": ("throw", ["throws a basketball", "throws a ball", "throws a ball with both hands"]),
}
HDM05_TEST_ACTOR = "mm"       # every take of this actor is held out (a capture never trained on)
HDM05_MIN_SECONDS = 3.6       # shorter clips (a hop is 0.6 s) are held still before and after to this (a 64-frame window fits)

# CMU motion-prediction labels (folder names) -> (content label, verb phrases).
PREDICTION_LABELS = {
    "basketball": ("basketball", ["plays basketball", "dribbles and shoots a basketball", "plays with a basketball"]),
    "basketball_signal": ("basketball-signal", ["makes basketball referee signals with the arms",
                                                "makes referee signals like in basketball", "gives referee hand signals"]),
    "directing_traffic": ("directing-traffic", ["directs traffic with the arms", "waves the traffic on like a policeman",
                                                "directs traffic"]),
    "jumping": ("jump", ["jumps", "jumps up and down", "jumps forward"]),
    "running": ("run", ["runs", "runs forward", "jogs forward"]),
    "soccer": ("soccer", ["plays soccer", "kicks a soccer ball around", "dribbles and kicks a football"]),
    "walking": ("walk", ["walks", "walks forward", "walks around"]),
    "walking_extra": ("walk", ["walks", "walks forward", "walks around"]),
    "washwindow": ("wash-window", ["washes a window", "wipes a window in circles", "cleans a window by hand"]),
}
PREDICTION_WINDOW_SECONDS = 10.0     # long prediction takes are cut into windows of this length

# CMU content labels for the trials that show one action only (the others are "cmu", a mixed class):
# label -> (the trials' description, verb phrases). 01_02 and 01_04 are described "playground -
# climb" and show nothing else; the playground takes that go on to hang, swing or sit stay "cmu".
CMU_LABELS = {
    "climb": ("playground - climb", ["climbs", "climbs up onto a playground structure", "climbs up the playground"]),
}
CMU_LABELLED_TRIALS = {"01_02": "climb", "01_04": "climb"}


def phrased_captions(phrases: Sequence[str]) -> list[str]:
    """Three captions from verb phrases: "a person ...", "someone ...", "the person ..."."""
    subjects = ("a person", "someone", "the person")
    return [f"{subjects[i % 3]} {phrase}" for i, phrase in enumerate(phrases)]


_SIDE_SWAP = {"left": "right", "right": "left", "Left": "Right", "Right": "Left"}


def mirror_caption(caption: str) -> str:
    """Swap the words left and right in a caption."""
    return re.sub(r"\b(left|right|Left|Right)\b", lambda m: _SIDE_SWAP[m.group(1)], caption)


# ----------------------------------------------------------------------------- caption augmentation

# Who a caption is about: swapped in at training time so that the model hears more than "a person".
CAPTION_SUBJECTS = ("a person", "someone", "the person", "a man", "a woman", "the man", "the woman")
_SUBJECT = re.compile(r"^(a person|someone|the person)\b")
_DESCRIBED_SUBJECT = re.compile(r"^(an?) (\w+) person\b")


def augment_caption(caption: str, rng: np.random.Generator) -> str:
    """A random rephrasing of a training caption with another subject from ``CAPTION_SUBJECTS``
    ("a person waves" -> "a woman waves", "a happy person runs" -> "a happy man runs"); captions
    without such a subject come back unchanged. Adds no word outside CAPTION_SUBJECTS."""
    subject = CAPTION_SUBJECTS[int(rng.integers(len(CAPTION_SUBJECTS)))]
    if _SUBJECT.match(caption):
        return _SUBJECT.sub(subject, caption, count=1)
    described = _DESCRIBED_SUBJECT.match(caption)
    if described:
        noun = subject.split()[-1] if subject.split()[-1] in ("man", "woman") else "person"
        return f"{described.group(1)} {described.group(2)} {noun}" + caption[described.end():]
    return caption


# Bandai contents that travel (a place can follow their verb) and gestures (a context can follow).
LOCOMOTION_CONTENT = {"walk", "run", "dash", "walk-back", "walk-left", "walk-right", "walk-turn-left",
                      "walk-turn-right", "sneak"}
GESTURE_CONTENT = {"bow", "bye", "byebye", "guide", "respond", "call", "wave-both-hands", "wave-left-hand",
                   "wave-right-hand", "raise-up-both-hands", "raise-up-left-hand", "raise-up-right-hand"}
_HAND_IN_CAPTION = re.compile(r"with (the left hand|the right hand|both hands)")
# HDM05 contents done with one hand or leg: a composed caption names the clip's own ("with the left leg").
SIDED_LIMB_CONTENT = {"put-down", "reach-up", "front-kick"}
_SIDED_WORKING_LIMB = re.compile(r"with (the (?:left|right) (?:hand|arm|leg|foot))")
_SIDE_WORD = re.compile(r"\b(left|right)\b")
_SIDED_LIMB = re.compile(r"\b(?:the |its |his |her )?(?:left|right) (hand|arm|leg|foot)\b")
_BOTH_LIMBS = re.compile(r"\bboth (hands|arms)\b")
_SIDE_DIRECTION = re.compile(r"\s*\b(?:(?:to|toward|towards) )?(?:the )?(?:left|right)\b(?:[- ]side)?")
SIDELESS = 0.3       # share of rephrased captions that leave the side out ("waves a hand", "turns")


def without_sides(caption: str) -> str:
    """The caption with its sides left out, as people often say it: "raises the left hand" ->
    "raises a hand", "waves both hands" -> "waves the hands", "walks and turns left" -> "walks and
    turns"."""
    caption = _SIDED_LIMB.sub(lambda m: ("an " if m.group(1) == "arm" else "a ") + m.group(1), caption)
    caption = _BOTH_LIMBS.sub(lambda m: "the " + m.group(1), caption)
    caption = _SIDE_DIRECTION.sub("", caption)
    return " ".join(caption.split()).replace(" ,", ",").strip(" ,")


def bandai_labels_of_clip(name: str) -> tuple[str, str] | None:
    """(content, style) of a dataset clip name, or None for a clip that is not Bandai's. A mirrored
    clip ("M" + name) shows the other side: its content's left and right are swapped
    ("Mdataset-2_wave-left-hand_happy_001" -> ("wave-right-hand", "happy"))."""
    mirrored = name.startswith("M")
    stem = name[1:] if mirrored else name
    if not stem.startswith("dataset-"):
        return None
    try:
        content, style = _bandai_labels(stem)
    except MotionError:
        return None
    return (mirror_caption(content) if mirrored else content), style


def content_label_of_clip(name: str) -> str:
    """The content label a dataset clip shows, for every source: Bandai's content ("bow", mirrored
    sides swapped), the HDM05 class's and the prediction label's (``HDM05_CLASSES``,
    ``PREDICTION_LABELS``: "squat", "jump"), ``CMU_LABELLED_TRIALS``' ("climb") and "cmu" for the
    other CMU trials."""
    labels = bandai_labels_of_clip(name)
    if labels is not None:
        return labels[0]
    stem = name[1:] if name.startswith("M") else name
    if stem.startswith("hdm05_"):
        return HDM05_CLASSES.get(stem.split("_")[1], ("hdm05",))[0]
    if stem.startswith("cmupred_"):
        label = stem.split("_", 1)[1].rsplit("_", 2)[0]
        return PREDICTION_LABELS.get(label, ("cmupred",))[0]
    return CMU_LABELLED_TRIALS.get(stem.removeprefix("cmu_"), "cmu")


def source_of_clip(name: str) -> str:
    """The source a dataset clip comes from: "bandai", "cmu", "hdm05" or "cmupred"."""
    stem = name[1:] if name.startswith("M") else name
    if stem.startswith("dataset-"):
        return "bandai"
    return stem.split("_", 1)[0]


def sampling_weights(names: Sequence[str], balance: float) -> np.ndarray:
    """(N,) probabilities of drawing each clip in training: ``1 - balance`` spread evenly over the
    clips, ``balance`` evenly over the content labels (``content_label_of_clip``) and within a label
    evenly over its clips. Bandai's bows were 28 of 5,722 training windows and HDM05's squats are
    a few dozen clips: balance brings each up to a label's share."""
    if not 0.0 <= balance <= 1.0:
        raise MotionError(f"balance {balance}: must be between 0 and 1")
    if not names:
        raise MotionError("no clips to draw from")
    labels = [content_label_of_clip(name) for name in names]
    counts: dict[str, int] = {}
    for label in labels:
        counts[label] = counts.get(label, 0) + 1
    uniform = np.full(len(names), 1.0 / len(names))
    by_label = np.array([1.0 / (len(counts) * counts[label]) for label in labels])
    weights = (1.0 - balance) * uniform + balance * by_label
    return weights / weights.sum()


def source_weights(names: Sequence[str], lengths: Sequence[int]) -> np.ndarray:
    """(N,) probabilities of drawing each clip that give every source (``source_of_clip``) the same
    share, and within a source each clip a share proportional to its length (``lengths``, frames),
    so every frame of a source is drawn equally often. Bandai's training frames are 83 % of the
    data, its clips 4.5 s on average; CMU's whole trials average 10.6 s and run up to 43 s, so
    drawing clips uniformly shows a CMU frame 2.4x less often than a Bandai frame on average, and
    a frame of its longest trials ~10x less."""
    if not names or len(names) != len(lengths):
        raise MotionError(f"source_weights: {len(names)} names and {len(lengths)} lengths")
    sources = [source_of_clip(name) for name in names]
    lengths = np.asarray(lengths, dtype=np.float64)
    if (lengths <= 0).any():
        raise MotionError("source_weights: every clip needs a positive length")
    totals: dict[str, float] = {}
    for source, length in zip(sources, lengths):
        totals[source] = totals.get(source, 0.0) + length
    weights = np.array([length / (len(totals) * totals[source]) for source, length in zip(sources, lengths)])
    return weights / weights.sum()


def _with_adjective(subject: str, adjective: str) -> str:
    """'a soldier' + 'gloomy' -> 'a gloomy soldier'; 'the hero' -> 'the gloomy hero'."""
    article, _, rest = subject.partition(" ")
    if article in ("a", "an"):
        article = "an" if adjective[0] in "aeiou" else "a"
    return f"{article} {adjective} {rest}"


def rephrase_caption(name: str, captions: Sequence[str], rng: np.random.Generator) -> str:
    """A free-form caption for a clip, composed from ``engine.text.caption_bank``: a subject (with a
    style adjective, or a style adverb after the verb, for Bandai's styles), one of many verb
    phrases of the clip's content (``content_label_of_clip``: Bandai's, HDM05's, the prediction
    subset's, CMU's climbs), sometimes a place (locomotion) or a context (gestures): "a fatigued elf
    tramps along", "a woman stretches out flat on the floor". The working hand or leg comes from the
    clip's own captions; ``SIDELESS`` of the captions leave the side out (``without_sides``).
    Other clips (the mixed CMU trials, or a content the bank lacks) get one of their ``captions``
    unchanged."""
    from .text import caption_bank as bank

    labels = bandai_labels_of_clip(name)
    bandai = labels is not None
    content, style = labels if bandai else (content_label_of_clip(name), "normal")
    if content not in bank.CONTENT_PHRASES or style not in BANDAI_STYLE:
        return captions[int(rng.integers(len(captions)))]

    def pick(options: Sequence[str]) -> str:
        return options[int(rng.integers(len(options)))]

    joined = " ".join(captions)
    hand = _HAND_IN_CAPTION.search(joined)
    hand_phrase = f" with {hand.group(1)}" if hand and content in HAND_OPEN_CONTENT else ""
    # Bandai's label phrasings join the bank's; the other sources' name a side of the unmirrored take,
    # so their clips draw the bank's sideless phrases and get their own side below.
    own_phrases = tuple(BANDAI_CONTENT[content]) if bandai else ()
    verb = pick(bank.CONTENT_PHRASES[content] + own_phrases).format(hand=hand_phrase)
    limb = _SIDED_WORKING_LIMB.search(joined)
    if limb and content in SIDED_LIMB_CONTENT and not _SIDE_WORD.search(verb):
        verb += f" with {limb.group(1)}"
    subject = pick(bank.SUBJECTS + CAPTION_SUBJECTS)
    if content in LOCOMOTION_CONTENT and rng.random() < 0.4:
        verb += " " + pick(bank.LOCOMOTION_PLACES)
    elif content in GESTURE_CONTENT and rng.random() < 0.3:
        verb += " " + pick(bank.GESTURE_CONTEXTS)
    if style != "normal":
        if rng.random() < 0.5 and subject.split()[0] in ("a", "an", "the"):
            subject = _with_adjective(subject, pick(bank.STYLE_ADJECTIVES[style]))
        else:
            verb += (", " if rng.random() < 0.5 else " ") + pick(bank.STYLE_ADVERBS[style])
    caption = f"{subject} {verb}"
    return without_sides(caption) if rng.random() < SIDELESS else caption


# Label head verbs too general to stand for an action ("takes a bow", "says bye", "gives a response").
_GENERAL_HEADS = {"takes", "says", "gives", "keeps", "performs", "makes", "does", "gets",
                  "bends", "brings", "stretches"}     # HDM05 phrasings whose head verb is not the action


def label_phrases() -> dict[str, list[str]]:
    """Every content label of the training data -> its verb phrases: Bandai's (``BANDAI_CONTENT``),
    then HDM05's, the prediction subset's and CMU's labels that Bandai lacks ("squat", "jump",
    "climb", ...)."""
    phrases = {content: list(verbs) for content, verbs in BANDAI_CONTENT.items()}
    cmu = [(content, verbs) for content, (_, verbs) in CMU_LABELS.items()]
    for content, verbs in [*HDM05_CLASSES.values(), *PREDICTION_LABELS.values(), *cmu]:
        phrases.setdefault(content, list(verbs))
    return phrases


def action_words() -> list[str]:
    """The words ``engine.text.lexicon.Lexicon`` may rewrite an unknown word into: the head verb of
    every label phrasing ("walks", "bows", "squats", ...) and "backward", "goodbye"."""
    heads = {phrase.split()[0].replace("{hand}", "") for phrases in label_phrases().values() for phrase in phrases}
    return sorted((heads - _GENERAL_HEADS) | {"backward", "goodbye"})


def label_readings() -> dict[str, list[str]]:
    """What ``engine.text.reading`` may read an unknown caption as: every content label with its
    captions ("a person bows", "a person bows politely", "a person takes a bow"; ``label_phrases``),
    the first being the one read. (Not the CMU descriptions: measured, their short captions, "a
    person: walk", drew a quarter of the paraphrases and lowered how often a prompt was read as its
    action, 73.5 -> 70.6 % and 68.6 -> 67.1 %; captions that only use known words, "a person jumps",
    still reach the language model as typed.) A CMU label (``CMU_LABELS``) is read as its trials'
    own caption ("a person: playground - climb"), the caption its clips were trained with."""
    readings = {content: [f"a person {phrase}" for phrase in phrases] for content, phrases in label_phrases().items()}
    for content, (description, _) in CMU_LABELS.items():
        readings[content].insert(0, cmu_captions(description)[0])
    return readings


def style_words() -> dict[str, list[str]]:
    """Style adverb of each Bandai style label ("happily") -> the words and phrases that name the
    style in training captions: its label adverb and adjective and ``engine.text.caption_bank``'s."""
    from .text import caption_bank as bank
    styles = {}
    for style, (adverb, adjective) in BANDAI_STYLE.items():
        if adverb:
            named = [adverb, adjective, *bank.STYLE_ADVERBS.get(style, ()), *bank.STYLE_ADJECTIVES.get(style, ())]
            styles.setdefault(adverb, [])
            styles[adverb] += [phrase for phrase in dict.fromkeys(named) if phrase and phrase not in styles[adverb]]
    return styles


def caption_words(text: str) -> set[str]:
    """The lower-case words of a text (letters, digits, apostrophes, hyphenated parts split)."""
    return set(re.findall(r"[a-z0-9']+", text.lower()))


def caption_vocabulary(captions: Iterable[str]) -> set[str]:
    """Every word a training caption can contain, given the dataset's ``captions``: their words,
    their mirrors', the augmentation's subjects and every phrase of ``engine.text.caption_bank``
    (``rephrase_caption``)."""
    from .text import caption_bank as bank
    captions = list(captions)
    for phrases in (*bank.CONTENT_PHRASES.values(), *bank.STYLE_ADVERBS.values(), *bank.STYLE_ADJECTIVES.values(),
                    bank.SUBJECTS, bank.LOCOMOTION_PLACES, bank.GESTURE_CONTEXTS):
        captions += [phrase.replace("{hand}", "") for phrase in phrases]
    captions += [mirror_caption(c) for c in captions] + list(CAPTION_SUBJECTS)
    words: set[str] = set()
    for caption in captions:
        words |= caption_words(caption)
    return words


def training_vocabulary(shared_data: str | Path | None = None) -> set[str]:
    """Every word a training caption can contain (``caption_vocabulary``) with all Bandai label
    phrasings (every content x style x hand) and the CMU descriptions' phrasings (read from
    ``shared_data``/cmu). A paraphrase test set must avoid these words."""
    root = Path(shared_data) if shared_data else DEFAULT_SHARED_DATA
    captions: list[str] = []
    for content in BANDAI_CONTENT:
        for style in BANDAI_STYLE:
            for hand in ("left", "right", "both", None):
                captions += bandai_captions(content, style, hand)
    for description in cmu_descriptions(root):
        captions += cmu_captions(description)
    return caption_vocabulary(captions)


def cmu_descriptions(shared_data: str | Path | None = None) -> list[str]:
    """The distinct descriptions of the CMU subset (``shared_data``/cmu/descriptions.tsv), in order."""
    descriptions = (Path(shared_data) if shared_data else DEFAULT_SHARED_DATA) / "cmu" / "descriptions.tsv"
    try:
        lines = descriptions.read_text(encoding="utf-8").splitlines()
    except OSError as error:
        raise MotionError(f"{descriptions}: cannot read the CMU descriptions: {error}") from None
    return list(dict.fromkeys(line.split("\t", 1)[1] for line in lines if "\t" in line))


MIRRORED_JOINTS = [JOINT_NAMES.index(name.replace("left", "RIGHT").replace("right", "left")
                                     .replace("RIGHT", "right")) for name in JOINT_NAMES]


def mirror_motion(motion: Motion) -> Motion:
    """The motion reflected left <-> right (x -> -x, left and right joints swapped)."""
    joints = motion.joints[:, MIRRORED_JOINTS].copy()
    joints[..., 0] *= -1
    return Motion(joints, motion.fps)


def hold_to_length(motion: Motion, seconds: float) -> Motion:
    """The motion lengthened to at least ``seconds`` by holding its first and last poses (half the
    missing time before, half after): HDM05 cuts each clip tightly around its action, and a
    person stands in those poses before and after."""
    missing = int(round(seconds * motion.fps)) - len(motion)
    if missing <= 0:
        return motion
    before = missing // 2
    joints = np.concatenate([np.repeat(motion.joints[:1], before, axis=0), motion.joints,
                             np.repeat(motion.joints[-1:], missing - before, axis=0)])
    return Motion(joints, motion.fps)


def trim_glitches(motion: Motion, max_step: float = 0.25) -> Motion:
    """Cut the clip at pelvis jumps of more than ``max_step`` metres in one frame, which no human
    motion does (e.g. CMU 09_10 starts with four all-zero frames): a jump in the first half
    drops the frames before it, one in the second half the frames after it."""
    steps = np.linalg.norm(np.diff(motion.joints[:, 0], axis=0), axis=-1)
    start, end = 0, len(motion)
    for jump in np.flatnonzero(steps > max_step):
        if jump < len(motion) / 2:
            start = max(start, jump + 1)
        else:
            end = min(end, jump + 1)
    return motion[start:end] if end > start else motion


# ----------------------------------------------------------------------------- sources

def split_of(name: str) -> str:
    """'val' for a fixed ~10 % of clip names (CRC32 of the name), else 'train'."""
    return "val" if zlib.crc32(name.encode()) % 100 < VALIDATION_PERCENT else "train"


def _bandai_labels(stem: str) -> tuple[str, str]:
    parts = stem.split("_")
    if len(parts) != 4:
        raise MotionError(f"{stem}: not a Bandai clip name (dataset-N_content_style_NNN)")
    return parts[1], parts[2]


def iter_bandai1(root: Path, limit: int | None = None) -> Iterator[tuple[str, Motion, list[str]]]:
    """(name, motion, captions) for the Bandai dataset-1 BVH files, in name order."""
    from .formats.bvh import read_bvh
    paths = sorted((root / "bandai" / "dataset-1" / "data").glob("*.bvh"))
    for path in paths[:limit]:
        content, style = _bandai_labels(path.stem)
        motion = read_bvh(path, bone_map="bandai")
        hand = working_hand(motion) if content in HAND_OPEN_CONTENT else None
        yield path.stem, motion, bandai_captions(content, style, hand)


def iter_bandai2(root: Path, limit: int | None = None) -> Iterator[tuple[str, Motion, list[str]]]:
    """(name, motion, captions) for dataset-2, read from its tar.xz in one sequential pass."""
    from .formats.bvh import parse_bvh
    archive = root / "bandai" / "dataset-2.tar.xz"
    if not archive.is_file():
        raise MotionError(f"{archive}: Bandai dataset-2 archive not found")
    count = 0
    with tarfile.open(archive, "r:xz") as tar:
        for member in tar:
            if not (member.isfile() and member.name.endswith(".bvh")):
                continue
            stem = member.name.rsplit("/", 1)[-1][:-4]
            content, style = _bandai_labels(stem)
            text = tar.extractfile(member).read().decode("ascii")
            motion = parse_bvh(text, source=f"{archive.name}:{member.name}", bone_map="bandai")
            yield stem, motion, bandai_captions(content, style, None)
            count += 1
            if limit is not None and count >= limit:
                return


def _read_descriptions(path: Path) -> dict[str, str]:
    """{file name: description} of a CMU descriptions TSV (no header)."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as error:
        raise MotionError(f"{path}: cannot read the CMU descriptions: {error}") from None
    return dict(line.split("\t", 1) for line in lines if "\t" in line)


def iter_cmu(root: Path, limit: int | None = None) -> Iterator[tuple[str, Motion, list[str]]]:
    """(name, motion, captions) for all 98 CMU trials of subjects 01-09: the 65 BVH files with
    their descriptions, then the 33 of ``cmu-01-09-more.tar.xz``. A long take that does several
    things ("climb, sit, dangle legs, jump down") keeps its whole description."""
    from .formats.bvh import parse_bvh, read_bvh
    folder = root / "cmu"
    descriptions = _read_descriptions(folder / "descriptions.tsv")
    for file_name in sorted(descriptions)[:limit]:
        motion = read_bvh(folder / file_name, bone_map="cmu")
        yield f"cmu_{file_name[:-4]}", motion, cmu_captions(descriptions[file_name])
    archive = folder / "cmu-01-09-more.tar.xz"
    if not archive.is_file():
        raise MotionError(f"{archive}: the other 33 CMU trials' archive was not found")
    more = _read_descriptions(folder / "descriptions-01-09-more.tsv")
    taken = 0
    with tarfile.open(archive, "r:xz") as tar:
        for member in tar:
            file_name = member.name.rsplit("/", 1)[-1]
            if not (member.isfile() and file_name in more) or (limit is not None and taken >= limit):
                continue
            text = tar.extractfile(member).read().decode("ascii")
            motion = parse_bvh(text, source=f"{archive.name}:{member.name}", bone_map="cmu")
            yield f"cmu_{file_name[:-4]}", motion, cmu_captions(more[file_name])
            taken += 1


def iter_hdm05(root: Path, limit: int | None = None) -> Iterator[tuple[str, Motion, list[str]]]:
    """(name, motion, captions) for the HDM05 subset's ASF/AMC clips (120 fps), in name order,
    named ``hdm05_<class>_<actor>_<take>``, held to ``HDM05_MIN_SECONDS`` (``hold_to_length``);
    captions from ``HDM05_CLASSES``."""
    from .formats.asf import DEFAULT_FPS, asf_amc_to_motion, parse_amc, parse_asf
    archive = root / "hdm05" / "hdm05-subset.tar.xz"
    if not archive.is_file():
        raise MotionError(f"{archive}: the HDM05 archive was not found")
    skeletons, count = {}, 0
    with tarfile.open(archive, "r:xz") as tar:
        members = [m for m in tar.getmembers() if m.isfile()]
        texts = {m.name: tar.extractfile(m).read().decode("latin-1") for m in members}
    for path in sorted(n for n in texts if n.endswith(".asf")):
        skeletons.setdefault(path.rsplit("/", 1)[-1][:-4], (path, texts[path]))
    for path in sorted(n for n in texts if n.endswith(".amc")):
        parts = path.rsplit("/", 1)[-1][:-4].split("_")          # HDM, actor, class, take, 120
        if len(parts) != 5 or parts[2] not in HDM05_CLASSES:
            raise MotionError(f"{archive.name}:{path}: not an HDM05 clip of a known class")
        _, actor, label, take, _ = parts
        asf_path, asf_text = skeletons[f"HDM_{actor}"]
        skeleton = parse_asf(asf_text.splitlines(), f"{archive.name}:{asf_path}")
        motion = asf_amc_to_motion(skeleton, parse_amc(texts[path].splitlines(), skeleton,
                                                       f"{archive.name}:{path}"), fps=DEFAULT_FPS)
        yield (f"hdm05_{label}_{actor}_{take}", hold_to_length(motion, HDM05_MIN_SECONDS),
               phrased_captions(HDM05_CLASSES[label][1]))
        count += 1
        if limit is not None and count >= limit:
            return


def iter_cmu_prediction(root: Path, limit: int | None = None) -> Iterator[tuple[str, Motion, list[str]]]:
    """(name, motion, captions) for the CMU motion-prediction takes, cut into windows of
    ``PREDICTION_WINDOW_SECONDS`` (the last window ends at the take's end), named
    ``cmupred_<label>_<split><n>_<window>``; captions from ``PREDICTION_LABELS``."""
    from .formats.expmap import iter_prediction_takes
    archive = root / "cmu_prediction" / "cmu-prediction-subset.tar.xz"
    count = 0
    for _name, label, split, motion in iter_prediction_takes(archive):
        number = _name.rsplit("_", 1)[-1]
        window = int(round(PREDICTION_WINDOW_SECONDS * motion.fps))
        starts = list(range(0, max(1, len(motion) - window + 1), window))
        if len(motion) > window and starts[-1] + window < len(motion):
            starts.append(len(motion) - window)
        for index, start in enumerate(starts):
            yield (f"cmupred_{label}_{split}{number}_{index:02d}", motion[start: start + window],
                   phrased_captions(PREDICTION_LABELS[label][1]))
        count += 1
        if limit is not None and count >= limit:
            return


SOURCES = {"bandai1": iter_bandai1, "bandai2": iter_bandai2, "cmu": iter_cmu, "hdm05": iter_hdm05,
           "cmupred": iter_cmu_prediction}
ALL_SOURCES = ("bandai1", "bandai2", "cmu", "hdm05", "cmupred")


def split_of_clip(name: str) -> str:
    """The split a source clip belongs to: 'test' for every take of ``HDM05_TEST_ACTOR``, else
    ``split_of`` (of the take for a prediction window). The prediction subset's own train/test
    folders are not kept: all its washing-window takes are in its test folder."""
    if name.startswith("hdm05_") and name.split("_")[-2] == HDM05_TEST_ACTOR:
        return "test"
    if name.startswith("cmupred_"):           # every window of a take in the take's split
        return split_of(name.rsplit("_", 1)[0])
    return split_of(name)


# ----------------------------------------------------------------------------- build / load

def build_dataset(out_dir: str | Path | None = None, sources: tuple[str, ...] = ALL_SOURCES,
                  shared_data: str | Path | None = None, limit: int | None = None,
                  mirror: bool = True, log=print, stats_from: str | Path | None = None) -> Path:
    """Build the training folder (layout in the module docstring); returns its path.

    ``limit`` caps the clips taken from each source (for tests). Clips shorter than
    ``MIN_FRAMES`` at 20 fps are skipped. Rebuilding overwrites the folder's files.
    ``stats_from``: a model's tokenizer folder whose mean.npy / std.npy the dataset keeps instead of
    fitting its own (to fine-tune that model on the new data).
    """
    out_dir = Path(out_dir) if out_dir is not None else default_dataset_dir()
    root = Path(shared_data) if shared_data is not None else DEFAULT_SHARED_DATA
    unknown = [s for s in sources if s not in SOURCES]
    if unknown:
        raise MotionError(f"unknown dataset source(s) {unknown}; choose from {sorted(SOURCES)}")
    for sub in ("features", "joints", "texts"):
        (out_dir / sub).mkdir(parents=True, exist_ok=True)

    splits: dict[str, list[str]] = {"train": [], "val": [], "test": []}
    train_features: list[tuple[str, np.ndarray]] = []
    counts: dict[str, int] = {}
    skipped: list[str] = []
    started = time.time()
    for source in sources:
        counts[source] = 0
        for name, motion, captions in SOURCES[source](root, limit):
            motion = trim_glitches(motion)
            variants = [(name, motion, captions)]
            if mirror:
                variants.append((f"M{name}", mirror_motion(motion), [mirror_caption(c) for c in captions]))
            for clip_name, clip_motion, clip_captions in variants:
                at_model_rate = clip_motion.resample(MODEL_FPS)
                if len(at_model_rate) <= MIN_FRAMES:
                    skipped.append(clip_name)
                    continue
                features = at_model_rate.to_features()
                joints = Motion.from_features(features).joints
                np.save(out_dir / "features" / f"{clip_name}.npy", features)
                np.save(out_dir / "joints" / f"{clip_name}.npy", joints)
                (out_dir / "texts" / f"{clip_name}.txt").write_text("\n".join(clip_captions) + "\n")
                split = split_of_clip(name)
                splits[split].append(clip_name)
                if split == "train":
                    train_features.append((clip_name, features))
                counts[source] += 1
        log(f"{source}: {counts[source]} clips (with mirrors), {time.time() - started:.1f} s")

    if not train_features:
        raise MotionError("no training clips were built (all sources empty or too short)")
    # sorted by name, not in the order the sources were read: an archive packed again with another
    # member order then gives the same files, and the same fixed-seed benchmark subsets
    for split, names in splits.items():
        (out_dir / f"{split}.txt").write_text("\n".join(sorted(names)) + ("\n" if names else ""))
    if stats_from is not None:
        Normalizer.load(stats_from).save(out_dir)
    else:
        Normalizer.fit([features for _, features in sorted(train_features, key=lambda item: item[0])]).save(out_dir)
    meta = {"builder_version": BUILDER_VERSION, "sources": list(sources), "limit": limit,
            "mirror": mirror, "fps": MODEL_FPS, "clips": counts,
            "train": len(splits["train"]), "val": len(splits["val"]), "test": len(splits["test"]),
            "stats_from": str(stats_from) if stats_from is not None else None, "skipped_short": skipped,
            "frames": int(sum(len(f) for _, f in train_features)),
            "seconds_to_build": round(time.time() - started, 1)}
    (out_dir / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")
    log(f"dataset: {meta['train']} train / {meta['val']} val clips in {out_dir}")
    return out_dir


def load_split(dataset_dir: str | Path, split: str) -> list[Clip]:
    """The clips of one split ('train' or 'val') of a built dataset folder."""
    dataset_dir = Path(dataset_dir)
    list_file = dataset_dir / f"{split}.txt"
    if not list_file.is_file():
        raise MotionError(f"{list_file}: no such split file; build the dataset first "
                          "(python -m engine.data build)")
    clips = []
    for name in list_file.read_text().split():
        feature_file = dataset_dir / "features" / f"{name}.npy"
        try:
            features = np.load(feature_file, allow_pickle=False)
            captions = (dataset_dir / "texts" / f"{name}.txt").read_text().splitlines()
        except (OSError, ValueError) as error:
            raise MotionError(f"{feature_file}: cannot read clip {name!r}: {error}") from None
        clips.append(Clip(name, features.astype(np.float32), [c for c in captions if c.strip()]))
    return clips


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m engine.data", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    build = commands.add_parser("build", help="build the training dataset from ../shared/data")
    build.add_argument("--out", type=Path, default=None, help="output folder (default: cache/dataset)")
    build.add_argument("--sources", default=",".join(ALL_SOURCES),
                       help="comma-separated: " + ", ".join(ALL_SOURCES))
    build.add_argument("--data", type=Path, default=None, help="the shared data folder")
    build.add_argument("--limit", type=int, default=None, help="at most N clips per source")
    build.add_argument("--no-mirror", action="store_true", help="do not add mirrored clips")
    build.add_argument("--stats-from", type=Path, default=None,
                       help="keep this tokenizer folder's mean.npy / std.npy (to fine-tune it)")
    args = parser.parse_args(argv)
    try:
        build_dataset(args.out, tuple(s.strip() for s in args.sources.split(",") if s.strip()),
                      args.data, args.limit, mirror=not args.no_mirror, stats_from=args.stats_from)
    except MotionError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
