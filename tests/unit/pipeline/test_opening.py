"""Opening a study: the step the study process and a joining worker process share gives both the same
study, with the sampler and objective its record says."""

from redsm5_hpo.hpo.samplers import ResumableSampler
from redsm5_hpo.hpo.slots import enqueue_slots
from redsm5_hpo.pipeline.opening import open_study
from redsm5_hpo.pipeline.services import open_tracker
from redsm5_hpo.pipeline.study_record import StudyRecord


def test_the_study_process_and_a_joining_worker_open_the_same_study(tiny_config, tmp_path) -> None:
    study_dir = tmp_path / "experiments" / "study_abc"
    study_dir.mkdir(parents=True)
    storage = f"sqlite:///{study_dir / 'optuna.db'}"
    StudyRecord("abc", "study_abc", storage, "run-1", {}).with_config(tiny_config).write(study_dir)
    with open_tracker(tiny_config) as tracker:
        first = open_study(tiny_config, StudyRecord.read(study_dir), study_dir, tracker)
        enqueue_slots(first.study, tiny_config)
        record = StudyRecord.read(study_dir)  # what a worker process reads
        joined = open_study(record.resolved_config(), record, study_dir, tracker)
    assert (joined.study_id, joined.study_run, joined.study_dir) == ("abc", "run-1", study_dir)
    assert joined.study.study_name == "study_abc" and joined.study.metric_names == ["val_criteria_macro_f1"]
    assert len(joined.study.trials) == tiny_config.hpo.n_trials == len(first.study.trials)
    assert isinstance(joined.study.sampler, ResumableSampler)
