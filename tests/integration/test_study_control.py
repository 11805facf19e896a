"""Study control with real processes (tiny encoder): a time budget across workers, a plateau stop, more trials
for a finished study, a warm start from an earlier study, and each of Optuna's samplers killed and resumed."""

import json

import optuna
import pytest
from mlflow.tracking import MlflowClient

from tests.helpers.study_cli import cli, kill_and_resume, study_trials

TINY = ["model=tiny", "train.epochs=2", "train.batch_size=16", "train.max_steps_per_epoch=4"]
SEARCH = [*TINY, "hpo.baseline_trial=false"]


def _report(root) -> dict:
    (path,) = root.glob("study_*/study_report.json")
    return json.loads(path.read_text())


def _study_id(root) -> str:
    (path,) = root.glob("study_*/study.json")
    return json.loads(path.read_text())["study_id"]


@pytest.mark.parametrize("workers", [1, 2])
def test_a_time_budget_stops_claiming_and_the_report_says_why(tmp_path, workers) -> None:
    root = tmp_path / "experiments"
    budget = 10 if workers == 1 else 25  # two workers start their own processes inside the budget
    result = cli(root, "tune", *SEARCH, "hpo.n_trials=40", f"hpo.timeout_s={budget}", f"hpo.n_workers={workers}")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    report = _report(root)
    assert report["stopped"]["reason"] == "timeout"
    assert 1 <= report["trials"]["completed"] < 40
    assert report["trials"]["requested"] == report["trials"]["completed"]  # the closed slots are not owed
    assert "the study stopped early: its time budget" in result.stdout
    trials = study_trials(root)
    assert sum(1 for t in trials if t.user_attrs.get("skipped") == "timeout") == 40 - report["trials"]["completed"]
    again = cli(root, "resume")
    assert again.returncode == 0 and "nothing to do" in again.stdout + again.stderr
    status = cli(root, "status")
    done = report["trials"]["completed"]
    assert (
        "finished (stopped early: its time budget" in status.stdout and f"trials: {done}/{done} done" in status.stdout
    )


def test_a_plateau_stops_the_search_and_more_trials_resume_it_with_the_test_evaluations_recorded(tmp_path) -> None:
    root = tmp_path / "experiments"
    first = cli(root, "tune", *SEARCH, "hpo.n_trials=8", "hpo.patience_trials=1", "hpo.min_improvement=1.0")
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    report = _report(root)
    assert report["stopped"]["reason"] == "plateau"
    assert report["trials"]["completed"] == 2  # no trial can beat the first by a whole 1.0
    assert "hpo.patience_trials=1" in report["stopped"]["why"]
    # more trials for the stopped study: the patience counts anew, only the extra trials run
    more = cli(root, "resume", "hpo.n_trials=9")
    assert more.returncode == 0, more.stdout[-3000:] + more.stderr[-3000:]
    extended = _report(root)
    assert extended["trials"]["completed"] == 3
    history = extended["summary"]["best_value_history"]
    assert [h["trial_id"] for h in history[:2]] == [h["trial_id"] for h in report["summary"]["best_value_history"]]
    evaluations = extended["test_evaluations"]
    assert [e["completed_trials"] for e in evaluations] == [2, 3]
    client = MlflowClient(tracking_uri=f"sqlite:///{root / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("redsm5-hpo").experiment_id])
    (study_run,) = [r for r in runs if r.info.run_name.startswith("study_")]
    steps = [m.step for m in client.get_metric_history(study_run.info.run_id, "test_criteria_macro_f1")]
    assert sorted(steps) == [0, 1]  # one step per test evaluation, each logged once


def test_more_trials_for_a_finished_study_are_those_an_uninterrupted_study_runs(tmp_path) -> None:
    short, whole = tmp_path / "short", tmp_path / "whole"
    assert cli(short, "tune", *SEARCH, "hpo.n_trials=2").returncode == 0
    more = cli(short, "resume", "hpo.n_trials=3")
    assert more.returncode == 0, more.stdout[-3000:] + more.stderr[-3000:]
    assert cli(whole, "tune", *SEARCH, "hpo.n_trials=3").returncode == 0
    assert [t.params for t in study_trials(short)] == [t.params for t in study_trials(whole)]
    assert _report(short)["test_metrics"] == _report(whole)["test_metrics"]
    assert len(_report(short)["test_evaluations"]) == 2
    fewer = cli(short, "resume", "hpo.n_trials=1")
    assert fewer.returncode == 2 and "can run more trials, not fewer" in fewer.stderr


def test_a_warm_start_queues_the_earlier_studys_best_parameters_first(tmp_path) -> None:
    root = tmp_path / "experiments"
    assert (
        cli(root, "tune", *SEARCH, "hpo.n_trials=3", "train.optimization_metric=val_criteria_macro_pr_auc").returncode
        == 0
    )
    earlier = _report(root)
    ranked = sorted(
        (h for h in earlier["summary"]["best_value_history"] if h["state"] == "complete"),
        key=lambda h: -h["value"],
    )
    warm = cli(root, "tune", *SEARCH, "hpo.n_trials=3", f"hpo.warm_start={_study_id(root)}", "hpo.warm_start_top_k=2")
    assert warm.returncode == 0, warm.stdout[-3000:] + warm.stderr[-3000:]
    (newer,) = [d for d in root.glob("study_*") if d.name != f"study_{earlier['study_id']}"]
    saved = json.loads((newer / "study.json").read_text())
    study = optuna.load_study(study_name=saved["study_name"], storage=f"sqlite:///{newer / 'optuna.db'}")
    trials = sorted(study.trials, key=lambda t: t.user_attrs["slot"])
    assert [t.params for t in trials[:2]] == [h["params"] for h in ranked[:2]]
    assert all(t.user_attrs["warm_start"].endswith("study_report.json") for t in trials[:2])
    assert "warm_start" not in trials[2].user_attrs
    missing = cli(tmp_path / "other", "tune", *SEARCH, "hpo.warm_start=nosuchstudy")
    assert missing.returncode != 0 and "hpo.warm_start=nosuchstudy: no study report" in missing.stderr
    assert not list((tmp_path / "other").glob("study_*"))  # refused before any work: no half-made study


@pytest.mark.parametrize("sampler", ["tpe", "random", "gp", "cmaes", "qmc"])
def test_each_sampler_killed_and_resumed_suggests_what_an_uninterrupted_study_does(tmp_path, sampler) -> None:
    overrides = [*SEARCH, "hpo.n_trials=3", f"hpo.sampler={sampler}"]
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    assert cli(whole, "tune", *overrides).returncode == 0
    # 8 batches a trial: batch 12 is the second trial's first epoch
    kill_and_resume(killed, overrides, "mid_epoch:12")

    def suggested(root):
        trials = study_trials(root)
        return [t.params for t in sorted(trials, key=lambda t: t.user_attrs["slot"]) if t.state.name == "COMPLETE"]

    assert suggested(killed) == suggested(whole)
    assert len({json.dumps(p, sort_keys=True) for p in suggested(whole)}) == 3
    assert _report(killed)["test_metrics"] == _report(whole)["test_metrics"]
