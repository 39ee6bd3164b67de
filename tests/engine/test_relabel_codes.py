"""engine.training.relabel: a retrained tokenizer's codes renumbered like an earlier tokenizer's,
on real motion (HumanML3D clip 012314 and its mirror: the tokenizer-training test dataset)."""
import itertools

import numpy as np
import pytest

from engine.errors import MotionError
from engine.tokenizer import MotionTokenizer
from engine.training.__main__ import main
from engine.training.relabel import matching_permutation, renumber_codes
from tests.engine.test_train_tokenizer import write_dataset
from tests.engine.tiny_models import tiny_motion_tokenizer

CODES = 64


@pytest.fixture(scope="module")
def dataset(tmp_path_factory, shared_data):
    return write_dataset(tmp_path_factory.mktemp("dataset"), shared_data)


def test_a_shuffled_codebook_gets_its_numbers_back_and_decodes_as_before(tmp_path, dataset, shared_data, capsys):
    old = tiny_motion_tokenizer(shared_data, code_num=CODES)
    old.save_pretrained(tmp_path / "old")
    # the same codes under other numbers: what a long fine-tune does to a codebook, in its purest form
    new = renumber_codes(tiny_motion_tokenizer(shared_data, code_num=CODES),
                         np.random.default_rng(0).permutation(CODES))
    new.save_pretrained(tmp_path / "new")
    features = np.load(dataset / "features" / "serve.npy")
    assert (new.encode(features) != old.encode(features)).mean() > 0.8

    assert main(["relabel", "--tokenizer", str(tmp_path / "new"), "--like", str(tmp_path / "old"),
                 "--data", str(dataset), "--out", str(tmp_path / "relabelled")]) == 0
    printed = capsys.readouterr().out
    assert "on 4 training clips" in printed and "100.0 % after" in printed

    relabelled = MotionTokenizer.from_pretrained(tmp_path / "relabelled", device="cpu")
    np.testing.assert_array_equal(relabelled.encode(features), old.encode(features))
    np.testing.assert_array_equal(relabelled.decode(relabelled.encode(features)).joints,
                                  new.decode(new.encode(features)).joints)


def test_the_matching_takes_the_largest_total_not_each_rows_best():
    # new codes 0 and 1 both share most with old 0: a greedy row-by-row choice gives new 0 the
    # number 0 (9) and leaves new 1 with 1 at best (total 10); the best total is 8 + 7 + 5 = 20
    counts = np.array([[9, 8, 0], [7, 0, 1], [0, 0, 5]])
    order = matching_permutation(counts)
    assert sorted(order) == [0, 1, 2]
    assert counts[order, np.arange(3)].sum() == max(
        counts[list(p), np.arange(3)].sum() for p in itertools.permutations(range(3)))


def test_what_cannot_be_renumbered_is_one_clear_error(tmp_path, dataset, shared_data, capsys):
    tiny_motion_tokenizer(shared_data, code_num=CODES).save_pretrained(tmp_path / "a")
    tiny_motion_tokenizer(shared_data, code_num=32).save_pretrained(tmp_path / "b")
    common = ["--data", str(dataset), "--out", str(tmp_path / "out")]
    assert main(["relabel", "--tokenizer", str(tmp_path / "a"), "--like", str(tmp_path / "b"), *common]) == 2
    error = capsys.readouterr().err
    assert f"{tmp_path / 'a'} has 64 codes and {tmp_path / 'b'} 32" in error and "Traceback" not in error
    assert main(["relabel", "--tokenizer", str(tmp_path / "a"), "--like", str(tmp_path / "a"), *common,
                 "--every", "0"]) == 2
    assert "--every 0: must be 1 or more" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
    with pytest.raises(MotionError, match="must be a permutation of the 64 codes"):
        renumber_codes(tiny_motion_tokenizer(shared_data, code_num=CODES), np.zeros(CODES, dtype=int))
    with pytest.raises(MotionError, match="codebooks differ in size"):
        matching_permutation(np.ones((4, 3)))
