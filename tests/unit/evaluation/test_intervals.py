"""Bootstrap intervals over test posts: each resampled value equals the reference metric on the resampled
posts, the resamples are scipy's, and the interval is scipy's percentile interval."""

import numpy as np
import pytest
from scipy import stats

from redsm5_hpo.config.schema import EVIDENCE_LEVELS
from redsm5_hpo.evaluation.intervals import percentile_intervals, resample_counts, resampled_metrics
from redsm5_hpo.evaluation.metrics import criteria_metrics, paper_metrics, precision_recall_f1
from redsm5_hpo.labels import SYMPTOMS


def fixed_data(n: int = 40, seed: int = 3):
    rng = np.random.default_rng(seed)
    labels = (rng.random((n, len(SYMPTOMS))) < 0.3).astype(int)
    probs = np.clip(labels * 0.35 + rng.random((n, len(SYMPTOMS))) * 0.65, 0, 1).round(2)  # ties on purpose
    counts = {level: rng.integers(0, 6, (n, 3)) for level in EVIDENCE_LEVELS}
    return labels, probs, counts


def test_each_resample_equals_the_reference_metrics_on_the_resampled_posts() -> None:
    labels, probs, counts = fixed_data()
    thresholds = np.linspace(0.3, 0.6, len(SYMPTOMS))
    weights = resample_counts(len(labels), 25, seed=11)
    resampled = resampled_metrics(labels, probs, thresholds, counts, "sentence", weights)
    for b, row in enumerate(weights):
        posts = np.repeat(np.arange(len(labels)), row.astype(int))  # the resample as posts drawn
        reference = criteria_metrics(labels[posts], probs[posts], thresholds)
        for name, value in reference.items():
            assert resampled[name][b] == pytest.approx(value, abs=1e-12), name
        paper = paper_metrics(labels[posts], probs[posts])
        for name in ("micro_f1", "macro_f1", "weighted_f1", "exact_match_accuracy"):
            assert resampled[f"paper_{name}"][b] == pytest.approx(paper[name], abs=1e-12), name
        for level in EVIDENCE_LEVELS:
            tp, fp, fn = counts[level][posts].sum(axis=0)
            precision, recall, f1 = precision_recall_f1(tp, fp, fn)
            assert (resampled[f"evidence_{level}_precision"][b], resampled[f"evidence_{level}_f1"][b]) == pytest.approx(
                (precision, f1)
            )
            assert resampled[f"evidence_{level}_recall"][b] == pytest.approx(recall)
        assert resampled["evidence_f1"][b] == resampled["evidence_sentence_f1"][b]


def test_the_interval_is_scipys_percentile_interval_with_the_same_resamples() -> None:
    x = np.random.default_rng(5).normal(size=30)
    weights = resample_counts(len(x), 400, seed=21)
    means = (weights @ x) / len(x)
    ours = percentile_intervals({"mean": means}, 0.9)["mean"]
    theirs = stats.bootstrap(
        (x,), np.mean, n_resamples=400, method="percentile", confidence_level=0.9, rng=np.random.default_rng(21)
    ).confidence_interval
    assert ours == pytest.approx((theirs.low, theirs.high), abs=1e-12)


def test_resamples_draw_posts_as_units_and_are_seeded() -> None:
    weights = resample_counts(12, 50, seed=1)
    assert weights.shape == (50, 12) and (weights.sum(axis=1) == 12).all()  # n posts per resample
    assert (weights == resample_counts(12, 50, seed=1)).all() and not (weights == resample_counts(12, 50, 2)).all()


def test_intervals_contain_the_point_estimates_on_realistic_data() -> None:
    labels, probs, counts = fixed_data(n=80)
    point = criteria_metrics(labels, probs, 0.5)
    resampled = resampled_metrics(labels, probs, 0.5, counts, "char", resample_counts(len(labels), 500, 13))
    intervals = percentile_intervals(resampled, 0.95)
    for name in ("criteria_macro_f1", "criteria_micro_f1", "criteria_macro_pr_auc"):
        low, high = intervals[name]
        assert low <= point[name] <= high and low < high, name


def test_the_interval_settings_are_checked_up_front() -> None:
    from redsm5_hpo.config.errors import ConfigError
    from redsm5_hpo.config.loading import load_config
    from tests.conftest import CONFIG_DIR

    assert load_config(["evaluation.bootstrap_samples=0"], CONFIG_DIR).evaluation.bootstrap_samples == 0
    for bad, said in (("evaluation.bootstrap_samples=50", "at least 100"), ("evaluation.confidence=1.5", "(0, 1)")):
        with pytest.raises(ConfigError, match=said.replace("(", r"\(").replace(")", r"\)")):
            load_config([bad], CONFIG_DIR)
