"""The names of the Optuna user attributes a study keeps, in one place.

The storage is a protocol between processes, machines and versions: every name below is written and
read through these constants, never as a literal.
"""

from __future__ import annotations

# -- on a trial -------------------------------------------------------------------------------------------
SLOT = "slot"
"""Its 0-based position among the study's ``hpo.n_trials`` queue slots (a continuation takes it over)."""
STAGE = "stage"
"""``baseline`` | ``search`` (when absent) | ``confirm`` (``hpo.confirm``)."""
PARAMS = "params"
"""A baseline or confirmation trial's parameters: they are set, not sampled, so Optuna holds none for it
(the sampler never learns from these trials)."""
CONFIRM_GROUP = "confirm_group"
"""A confirmation trial's configuration: its 0-based rank among the confirmed configurations."""
CONFIRM_OF = "confirm_of"
"""The number of the search (or baseline) trial whose configuration a confirmation trial trains again."""
SEED = "seed"
"""A confirmation trial's training seed (``train.seed``)."""
WARM_START = "warm_start"
"""A search slot queued with an earlier study's parameters (``hpo.warm_start``): where they came from."""
SLOT_ATTRS = (SLOT, STAGE, PARAMS, CONFIRM_GROUP, CONFIRM_OF, SEED)
"""What a slot is: its continuations carry these over."""
RESUME_OF = "resume_of"
"""The number of the interrupted (or rolled-back) trial it continues."""
ROLLBACK_EPOCH = "rollback_epoch"
"""A continuation that starts from this earlier epoch, in a new MLflow run."""
SURPLUS = "surplus"
"""Created by Optuna for a worker that asked when no slot was left: it never runs and never counts."""
WORKER = "worker"
"""``{"index": i, "pid": pid, "host": name}`` of the worker running it."""
TRIAL_ID = "trial_id"
"""The uuid of its ``trial_<uuid>`` directory (shared by a trial and its continuations)."""
TRIAL_DIR = "trial_dir"
"""Its directory's path."""
RUN_ID = "mlflow_run_id"
"""Its MLflow run."""
LIFECYCLE = "lifecycle"
"""queued -> preparing -> running -> finishing -> completed | interrupted | pruned | failed."""
RESUMABLE = "resumable"
"""Stopped with its checkpoints kept (a signal, a full disk, a failed GPU): ``resume`` continues it."""
DIVERGED = "diverged"
"""Its loss became non-finite: its last resume point stays for a rollback."""
SKIPPED = "skipped"
"""A waiting slot closed unrun because a stopping rule held (``hpo.stopping``); ``resume`` with a larger
budget or patience queues its slot again."""
FAIL_REASON = "fail_reason"
PRUNE_REASON = "prune_reason"

# -- on the study -----------------------------------------------------------------------------------------
REQUEUED_TRIALS = "requeued_trials"
"""Numbers of interrupted trials that were re-queued (their continuations count instead)."""
BUDGET_START = "budget_start"
"""When ``hpo.timeout_s`` started counting (seconds since the epoch): the study's creation, or the resume
that passed ``hpo.timeout_s`` again."""
PATIENCE_FROM = "patience_from"
"""How many counted trials the study had when a resume gave it more (``hpo.patience_trials`` counts anew)."""
STOPPED = "stopped"
"""Why the study stopped claiming trials (``hpo.stopping``: ``timeout`` or ``plateau``); None once a
resume lifted it."""
CONFIRM_QUEUED = "confirm_queued"
"""How many confirmation trials were queued (all of them, once the search ended)."""
REPORT_PATH = "report_path"
"""Where its ``study_report.json`` was written (set with the report, for optuna-dashboard's readers)."""
BEST_TRIAL_ID = "best_trial_id"
"""The report's best trial (the uuid of its ``trial_<uuid>`` directory)."""
DATA_REVISION = "data_revision"
"""The data the study ran on: ``<source>@<revision>``."""
