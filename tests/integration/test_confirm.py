"""A study with a baseline trial and a confirmation over seeds (tiny encoder, real processes): the trials it
runs, what the report says, which checkpoints stay, and a kill during the confirmation resumed exactly."""

import json
import statistics

import pytest
from mlflow.tracking import MlflowClient

from redsm5_hpo.hpo.confirm import confirm_seeds
from tests.helpers.study_cli import cli, metric_counts, study_trials

CONFIRMED = [
    "model=tiny",
    "train.epochs=2",
    "train.batch_size=16",
    "train.max_steps_per_epoch=4",
    "hpo.n_trials=2",
    "hpo.baseline_trial=true",
    "hpo.confirm.top_k=2",
    "hpo.confirm.seeds=2",
]
# 4 batches an epoch, 8 a trial: trials 1-3 (baseline and search) take batches 1-24, so batch 30 is in the
# first confirmation trial's second epoch, after its first checkpoint
KILL_IN_CONFIRMATION = "mid_epoch:30"


def _report(root) -> dict:
    (path,) = root.glob("study_*/study_report.json")
    return json.loads(path.read_text())


@pytest.fixture(scope="module")
def confirmed_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("confirmed") / "experiments"
    result = cli(root, "tune", *CONFIRMED)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return root, result.stdout + result.stderr


def test_one_baseline_n_search_and_k_times_s_confirmation_trials(confirmed_root) -> None:
    root, _ = confirmed_root
    report = _report(root)
    history = report["summary"]["best_value_history"]
    assert [h["stage"] for h in history] == ["baseline", "search", "search"] + ["confirm"] * 4
    assert report["trials"] == {"requested": 7, "completed": 7, "pruned": 0, "failed": 0}
    trials = study_trials(root)
    staged = {t.number: t.user_attrs.get("stage", "search") for t in trials}
    # set, not sampled: the sampler holds no parameters of the baseline or confirmation trials
    assert all(not t.params for t in trials if staged[t.number] != "search")
    assert all(t.params for t in trials if staged[t.number] == "search")
    seeds = confirm_seeds(13, 2)
    assert sorted(t.user_attrs["seed"] for t in trials if staged[t.number] == "confirm") == sorted(seeds * 2)
    client = MlflowClient(tracking_uri=f"sqlite:///{root / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("redsm5-hpo").experiment_id])
    tags = [r.data.tags.get("stage") for r in runs if r.data.tags.get("trial_id")]
    assert sorted(tags) == sorted(["baseline", "search", "search"] + ["confirm"] * 4)
    assert all(set(steps.values()) == {1} for steps in metric_counts(root).values())


def test_the_report_gives_each_seed_the_mean_the_spread_and_the_gain_over_the_baseline(confirmed_root) -> None:
    root, output = confirmed_root
    report = _report(root)
    confirmation = report["confirmation"]
    assert confirmation["seeds"] == sorted(confirm_seeds(13, 2))
    configurations = confirmation["configurations"]
    assert [c["rank"] for c in configurations] == [1, 2]
    assert all(len(c["seeds"]) == 2 for c in configurations)
    means = [statistics.fmean(s["value"] for s in c["seeds"]) for c in configurations]
    for c, mean in zip(configurations, means, strict=True):
        assert c["validation"]["mean"] == pytest.approx(mean)
        low, high = c["validation"]["interval"]
        assert low <= mean <= high
    winner = configurations[confirmation["winner"] - 1]
    assert winner["validation"]["mean"] == max(means)
    # the answer is the winner's best seed, and its checkpoint is the only one the study kept
    best_seed = max(winner["seeds"], key=lambda s: s["value"])
    assert report["best_trial_id"] == best_seed["trial_id"]
    kept = [d for d in root.glob("trial_*") if any((d / "checkpoints").glob("epoch_*"))]
    assert [d.name for d in kept] == [f"trial_{best_seed['trial_id']}"]
    # each seed's test metrics, their mean and spread
    per_seed = confirmation["winner_test"]["per_seed"]
    assert [s["trial_id"] for s in per_seed] == [s["trial_id"] for s in winner["seeds"]]
    macro = [s["test_criteria_macro_f1"] for s in per_seed]
    summary = confirmation["winner_test"]["summary"]["test_criteria_macro_f1"]
    assert summary["mean"] == pytest.approx(statistics.fmean(macro))
    assert summary["std"] == pytest.approx(statistics.stdev(macro))
    baseline = report["baseline"]
    assert baseline["trial_id"] == report["summary"]["best_value_history"][0]["trial_id"]
    assert baseline["validation_gain"] == pytest.approx(report["best_validation_value"] - baseline["validation_value"])
    gain = baseline["test_gain"]["test_criteria_macro_f1"]
    assert gain["gain"] == pytest.approx(summary["mean"] - baseline["test_metrics"]["test_criteria_macro_f1"])
    assert "confirmation over seeds" in output
    assert "gain over the baseline trial 1" in output
    extended = cli(root, "resume", "hpo.n_trials=3")  # search after a confirmation: a new study instead
    assert extended.returncode != 0
    assert f"redsm5-hpo tune hpo.warm_start={report['study_id']} experiments_dir={root}" in extended.stderr
    unchanged = cli(root, "resume")  # the refused count was not saved: the study is as it was
    assert unchanged.returncode == 0 and "nothing to do" in unchanged.stdout + unchanged.stderr


def test_a_kill_during_the_confirmation_resumes_to_the_same_report(confirmed_root, tmp_path) -> None:
    expected = _report(confirmed_root[0])
    root = tmp_path / "experiments"
    killed = cli(root, "tune", *CONFIRMED, fault=KILL_IN_CONFIRMATION)
    assert killed.returncode == -9, killed.stderr[-2000:]
    assert "confirmation: the 2 best configuration(s)" in killed.stdout + killed.stderr
    resumed = cli(root, "resume")
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    report = _report(root)
    for key in ("test_metrics", "best_validation_value", "trials", "best_params"):
        assert report[key] == expected[key], key
    strip = {"search_trial_id", "trial_id", "best_search_trial_id"}  # trial ids are new uuids in every study

    def shape(section):
        if isinstance(section, dict):
            return {k: shape(v) for k, v in section.items() if k not in strip}
        return [shape(v) for v in section] if isinstance(section, list) else section

    assert shape(report["confirmation"]) == shape(expected["confirmation"])
    assert shape(report["baseline"]) == shape(expected["baseline"])
    assert all(set(steps.values()) == {1} for steps in metric_counts(root).values())
    again = cli(root, "resume")
    assert again.returncode == 0
    assert "nothing to do" in again.stdout + again.stderr
    assert _report(root)["created_at"] == report["created_at"]
