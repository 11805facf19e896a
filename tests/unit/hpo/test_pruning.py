"""What a trial's epochs tell the study: the pruner hears search and baseline trials, prunes only search
trials, and never hears a confirmation trial."""

import optuna
import pytest

from redsm5_hpo.config.schema import HpoConfig
from redsm5_hpo.hpo.confirm import BASELINE, CONFIRM, SEARCH
from redsm5_hpo.hpo.pruning import EpochReports


class _AlwaysPrune(optuna.pruners.BasePruner):
    def prune(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> bool:
        return True


@pytest.mark.parametrize(
    ("stage", "reported", "pruned"), [(SEARCH, True, True), (BASELINE, True, False), (CONFIRM, False, False)]
)
def test_each_stage_reports_and_is_pruned_as_its_role_says(stage: str, reported: bool, pruned: bool) -> None:
    study = optuna.create_study(direction="maximize", pruner=_AlwaysPrune())
    trial = study.ask()
    reports = EpochReports(study, trial, stage, epochs=3, hpo=HpoConfig())
    assert reports.should_prune(1, 0.4) is pruned
    assert reports.should_prune(2, 0.5) is pruned
    assert study.trials[0].intermediate_values == ({1: 0.4, 2: 0.5} if reported else {})


def test_the_first_epoch_of_the_first_trial_gives_the_study_its_first_eta(caplog) -> None:
    study = optuna.create_study(direction="maximize")
    reports = EpochReports(study, study.ask(), SEARCH, epochs=4, hpo=HpoConfig())
    with caplog.at_level("INFO", logger="redsm5_hpo.hpo.pruning"):
        reports.should_prune(1, 0.4)
        reports.should_prune(2, 0.5)
    etas = [r.getMessage() for r in caplog.records if "the first epoch took" in r.getMessage()]
    assert len(etas) == 1 and "ETA" in etas[0]
