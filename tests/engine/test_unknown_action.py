"""Issue 17 item 5: a prompt whose action the model does not know is said so (``MotionGPT.reading_of``,
``engine.text.reading.Reading.notice``), by the engine, the worker and the CLI, with the bundled model.

The threshold (``engine.text.reading.UNKNOWN_ACTION_SCORE``) is calibrated on the paraphrase sets (prompts
of actions the model knows) against tests/data/unknown_action_prompts.tsv (actions its data lacks);
``test_the_threshold_separates_known_from_unknown_actions`` prints the shares."""
from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from engine.model import MotionGPT, default_model_card, known_actions
from engine.text.reading import UNKNOWN_ACTION_SCORE, Reading

REPO = Path(__file__).resolve().parents[2]
DATA = REPO / "tests" / "data"
KNOWN_SETS = ("paraphrases", "paraphrases_heldout", "paraphrases_blind", "style_paraphrases")


@pytest.fixture(scope="module")
def bundled() -> MotionGPT:
    return MotionGPT.from_pretrained("default", device="cpu")


def prompts_of(name: str) -> list[str]:
    with open(DATA / f"{name}.tsv", encoding="utf-8") as handle:
        return [row["prompt"] for row in csv.DictReader(handle, delimiter="\t")]


def test_known_actions_give_no_notice(bundled):
    for prompt in ("a person saunters forward", "someone curtsies", "a person walks forward", "a man waves goodbye"):
        reading = bundled.reading_of(prompt)
        assert reading.known and reading.notice is None and bundled.unknown_action(prompt) is None, reading


def test_unknown_actions_are_said_so_naming_the_words(bundled):
    swim = bundled.unknown_action("a person swims breaststroke")
    assert swim == ("this model knows no motion for 'swims breaststroke'; generated 'a person jogs in a circle "
                    "to the left', its nearest")
    eat = bundled.reading_of("someone eats with a spoon")
    assert not eat.known and eat.notice.startswith("this model knows no motion for 'eats with a spoon'; generated '")
    # several at once, one batch: the same readings
    many = bundled.reading_of(["a person swims breaststroke", "someone curtsies"])
    assert [r.notice for r in many] == [swim, None]


def test_a_caption_read_as_typed_names_the_nearest_action():
    reading = Reading("a man does a pirouette", "a man does a pirouette", "does a pirouette", 0.3, "a person dances")
    assert reading.notice == ("this model knows no motion for 'does a pirouette'; generated it as typed "
                              "(the nearest it knows: 'a person dances')")


def test_official_weights_give_no_notice():
    official = SimpleNamespace(lm=SimpleNamespace(text_side=None))        # no text side, nothing to judge by
    reading = MotionGPT.reading_of(official, "a person crawls on all fours")
    assert reading.score is None and reading.notice is None


def test_the_threshold_separates_known_from_unknown_actions(bundled):
    """False alarms on every set of known-action prompts stay at 5 % or under; a third of the unknown
    actions are caught (measured with model v0.4.0: 3.7 / 1.4 / 2.4 / 1.7 % flagged, 34 % of the
    unknown ones; v0.3.0 caught 66 %: its 25 labels sat further from crawling, kneeling or sitting
    than v0.4.0's sneak, lie down and squat)."""
    shares = {}
    for name in KNOWN_SETS + ("unknown_action_prompts",):
        readings = bundled.reading_of(prompts_of(name))
        shares[name] = sum(not r.known for r in readings) / len(readings)
    print(f"\nflagged at {UNKNOWN_ACTION_SCORE}: " + ", ".join(f"{n} {s:.1%}" for n, s in shares.items()))
    assert all(shares[name] <= 0.05 for name in KNOWN_SETS), shares
    assert shares["unknown_action_prompts"] >= 0.3, shares


def test_the_model_card_lists_the_actions_it_knows(bundled):
    actions = known_actions(bundled)
    assert actions == known_actions("default")
    assert "a person walks forward" in actions and "a person bows" in actions and "a person waves goodbye" in actions
    assert len(actions) == len(set(actions)) and not any("{" in action for action in actions)
    card = default_model_card(bundled)
    assert "## Actions it knows" in card and "- a person walks backward\n" in card


def test_the_worker_reply_carries_the_notice(tmp_path):
    from motiongpt_addon.client import WorkerClient, WorkerSettings
    client = WorkerClient(WorkerSettings(python=sys.executable, pythonpath=(str(REPO),), model="default", device="cpu"))
    client.start()
    try:
        unknown = client.submit("text_to_motion", text="a person swims breaststroke", seconds=1.0, seed=0)
        known = client.submit("text_to_motion", text="a person walks forward", seconds=1.0, seed=0)
        compound = client.submit("text_to_motion", text="a man swims, then waves", seconds=2.0, seed=0)
        assert client.wait(unknown).num_frames == 20 and client.wait(known).num_frames == 20
        assert client.wait(compound).num_frames > 0
        assert unknown.reply["notes"] == ["this model knows no motion for 'swims breaststroke'; generated "
                                          "'a person jogs in a circle to the left', its nearest"]
        assert "notes" not in known.reply
        assert compound.reply["plan"] and len(compound.reply["notes"]) == 1 and "'swims'" in compound.reply["notes"][0]
    finally:
        client.shutdown()


def test_the_cli_prints_the_notice_and_writes_the_motion(tmp_path):
    out = tmp_path / "swim.npy"
    result = subprocess.run([sys.executable, "-m", "engine", "generate", "a person swims breaststroke",
                             "--seconds", "1", "--seed", "0", "--out", str(out), "--device", "cpu"],
                            cwd=REPO, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    notes = [line for line in result.stderr.splitlines() if line.startswith("note: ")]
    assert notes == ["note: this model knows no motion for 'swims breaststroke'; generated 'a person jogs in a "
                     "circle to the left', its nearest"]
    assert np.load(out).shape == (20, 22, 3)


def test_the_worker_load_task_reads_a_prompt_so_the_first_one_waits_for_nothing(tmp_path):
    from engine.worker import Worker
    replies = []
    worker = Worker("default", "cpu", tmp_path, replies.append)
    reply = worker.load({"id": 1})
    side = worker.model.lm.text_side
    assert reply == {"device": "cpu"}
    assert side.lexicon is not None and side.reader is not None     # built with the model, not on the first prompt
    assert [r["id"] for r in replies] == [1] and replies[0]["status"].startswith("loading the MotionGPT model")
