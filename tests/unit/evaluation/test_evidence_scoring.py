"""Evidence at the character, sentence and span levels, by hand; calibration on the chosen level."""

from types import SimpleNamespace

import numpy as np
import pytest

from redsm5_hpo.data.corpus import Post
from redsm5_hpo.data.evidence import evidence_chars
from redsm5_hpo.evaluation.evidence_scoring import (
    evidence_runs,
    evidence_scores,
    level_counts,
    matched_spans,
    prepare_gold,
)
from redsm5_hpo.evaluation.predict import Predictions, calibrate, score

TEXT = "I feel so sad all day. I can not sleep at night.\nNothing helps me. It is what it is."
SAD = (0, 22)
SLEEP = (23, 48)
NOTHING = (49, 66)
WHAT = (67, 84)


def chars(*spans: tuple[int, int]) -> set[int]:
    return evidence_chars(TEXT, spans)


def test_sentences_are_where_the_test_thinks() -> None:
    assert [TEXT[s:e] for s, e in (SAD, SLEEP, NOTHING, WHAT)] == [
        "I feel so sad all day.",
        "I can not sleep at night.",
        "Nothing helps me.",
        "It is what it is.",
    ]


def test_a_perfect_prediction_scores_one_at_every_level() -> None:
    gold = prepare_gold(TEXT, [SAD, NOTHING])
    scores = evidence_scores([gold], [chars(SAD, NOTHING)])
    assert {k: v for k, v in scores.items() if k.endswith("_f1")} == {
        "evidence_char_f1": 1.0,
        "evidence_sentence_f1": 1.0,
        "evidence_span_f1": 1.0,
    }


def test_a_sentence_is_evidence_from_half_of_its_characters() -> None:
    gold = prepare_gold(TEXT, [SAD])
    sad = sorted(chars(SAD))  # 17 non-space characters
    assert len(sad) == 17
    half, less = set(sad[:9]), set(sad[:8])
    assert level_counts(gold, half)["sentence"] == (1, 0, 0)
    assert level_counts(gold, less)["sentence"] == (0, 0, 1)
    # the other way round: half of a non-evidence sentence is a false positive
    assert level_counts(gold, set(sorted(chars(WHAT))[:7]))["sentence"] == (0, 1, 1)  # 7 of 13


def test_a_span_matches_at_iou_one_half_one_to_one() -> None:
    gold = prepare_gold(TEXT, [SAD])
    sad = sorted(chars(SAD))
    assert level_counts(gold, set(sad[:9]))["span"] == (1, 0, 0)  # IoU 9/17
    assert level_counts(gold, set(sad[:8]))["span"] == (0, 1, 1)  # IoU 8/17
    # the sentence plus the next one is one run of 17 + 20 characters: IoU 17/37
    assert level_counts(gold, chars(SAD, SLEEP))["span"] == (0, 1, 1)
    # one to one: two predictions on the same gold span give one match and one false positive
    assert matched_spans([(0, 10), (0, 10)], [(0, 10)]) == 1
    assert matched_spans([(0, 10), (0, 9)], [(0, 10), (20, 30)]) == 1


def test_evidence_runs_join_pieces_with_only_whitespace_between() -> None:
    """A per-token head proposes words; the words of one sentence make one span, which matches it."""
    words = [(m, m + len(w)) for m, w in ((TEXT.index(w, SLEEP[0]), w) for w in TEXT[SLEEP[0] : SLEEP[1]].split())]
    gold = prepare_gold(TEXT, [SLEEP])
    predicted = chars(*words)
    assert len(evidence_runs(predicted, gold.ranks)) == 1
    assert level_counts(gold, predicted) == {"char": (20, 0, 0), "sentence": (1, 0, 0), "span": (1, 0, 0)}
    # two adjacent gold sentences are one gold span, and predicting both is one match
    both = prepare_gold(TEXT, [SAD, SLEEP])
    assert len(both.runs) == 1 and level_counts(both, chars(SAD, SLEEP))["span"] == (1, 0, 0)


def test_levels_are_micro_averaged_over_posts() -> None:
    golds = [prepare_gold(TEXT, [SAD]), prepare_gold(TEXT, [NOTHING, WHAT])]
    predicted = [chars(SAD, WHAT), chars(NOTHING)]
    scores = evidence_scores(golds, predicted)
    # sentences: post 1 TP 1 FP 1; post 2 TP 1 FN 1 -> P 2/3, R 2/3
    assert scores["evidence_sentence_precision"] == pytest.approx(2 / 3)
    assert scores["evidence_sentence_recall"] == pytest.approx(2 / 3)
    # spans: "Nothing helps me. It is what it is." is one gold run (15 + 13 characters); "Nothing helps me."
    # alone has IoU 15/28 and matches it
    assert scores["evidence_span_precision"] == pytest.approx(2 / 3)
    assert scores["evidence_span_recall"] == pytest.approx(1.0)
    # characters: 17 + 15 TP, 13 FP, 13 FN
    assert scores["evidence_char_f1"] == pytest.approx(2 * 32 / (2 * 32 + 13 + 13))


# A post whose levels disagree on the best evidence threshold: "a" x 19 + "." is the gold sentence (20
# characters), "b" x 39 + "." (40) is not. At 0.9 only the first 8 gold characters are predicted; at 0.3
# 4 more of them (12 of 20: the sentence, and a span of IoU 0.6) and 30 of the other sentence.
CAL_TEXT = "a" * 19 + ". " + "b" * 39 + "."
CAL_SPANS = [(0, 8, 0.9), (8, 12, 0.3), (21, 51, 0.3)]


def calibration_case():
    post = Post("p1", CAL_TEXT, (0,) * 9, ((0, 20),))
    predictions = Predictions(["p1"], np.zeros((1, 9), dtype=int), np.full((1, 9), 0.2), [CAL_SPANS], 0.0)
    return predictions, SimpleNamespace(posts=[post])


@pytest.mark.parametrize(
    ("level", "threshold", "f1_at_it"),
    [
        ("char", 0.5, 2 * 8 / (2 * 8 + 12)),  # best for t in (0.3, 0.9]: nearest 0.5
        ("sentence", 0.3, 2 / 3),  # the gold sentence TP, the other one FP
        ("span", 0.3, 2 / 3),  # the 12-character run matches, the 30-character one does not
    ],
)
def test_calibration_maximizes_the_chosen_level(level: str, threshold: float, f1_at_it: float) -> None:
    predictions, dataset = calibration_case()
    thresholds = calibrate(predictions, dataset, level)
    assert thresholds["evidence"] == threshold
    metrics = score(predictions, dataset, "val", evidence_threshold=threshold, evidence_level=level)
    assert metrics["val_evidence_f1"] == pytest.approx(f1_at_it)
    assert metrics["val_evidence_f1"] == metrics[f"val_evidence_{level}_f1"]
    assert metrics["val_evidence_precision"] == metrics[f"val_evidence_{level}_precision"]
