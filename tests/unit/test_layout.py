"""The one owner of the experiments directory's layout: where a study's and a trial's files live, and a trial's
configuration read back exactly as it was written."""

import os
import stat

from redsm5_hpo.config import load_config
from redsm5_hpo.layout import StudyDir, TrialDir, study_dirs, trial_dirs
from tests.conftest import CONFIG_DIR


def test_a_trial_directory_names_its_files_and_round_trips_its_config(tmp_path) -> None:
    trial = TrialDir.of(tmp_path, "5ea2")
    assert trial.path == tmp_path / "trial_5ea2" and trial.trial_id == "5ea2"
    assert (trial.config_path.name, trial.report_path.name) == ("config.yaml", "evaluation_report.json")
    assert trial.checkpoints == trial.path / "checkpoints" and trial.events == trial.path / "logs" / "events.jsonl"
    config = load_config(["model=tiny", "train.lr_head=0.0005", "seed=31"], CONFIG_DIR)
    trial.path.mkdir()
    trial.write_config(config)
    assert trial.read_config() == config
    assert stat.S_IMODE(os.stat(trial.config_path).st_mode) == 0o600  # secrets in clear: owner only


def test_a_study_directory_names_its_files_and_the_root_lists_both_kinds(tmp_path) -> None:
    study = StudyDir.of(tmp_path, "study_ab12")
    names = [study.record_path, study.report_path, study.lock_path, study.claim_lock_path, study.report_claim_path]
    assert [p.name for p in names] == ["study.json", "study_report.json", ".lock", ".claim.lock", ".report_claim"]
    assert (study.optuna_db.name, study.optuna_journal.name) == ("optuna.db", "optuna.journal")
    for path in (study.path, TrialDir.of(tmp_path, "b").path, TrialDir.of(tmp_path, "a").path):
        path.mkdir()
    (tmp_path / "trial_not_a_directory").write_text("")
    assert [t.trial_id for t in trial_dirs(tmp_path)] == ["a", "b"]
    assert study_dirs(tmp_path) == [study]
