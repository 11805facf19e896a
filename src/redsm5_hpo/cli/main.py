"""``redsm5-hpo <command> [key=value ...]``: Hydra-style overrides on top of ``configs/config.yaml``."""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from redsm5_hpo import __version__
from redsm5_hpo.checkpoints.disk import EXIT_DISK_FULL, DiskSpaceError, human_bytes
from redsm5_hpo.checkpoints.errors import CheckpointError
from redsm5_hpo.config.errors import ConfigError
from redsm5_hpo.config.loading import ConfigDeprecationWarning, load_config
from redsm5_hpo.config.schema import Config
from redsm5_hpo.data.errors import DataError
from redsm5_hpo.device_errors import EXIT_DEVICE_FAILED, DeviceFailed
from redsm5_hpo.errors import FILES_ONLY
from redsm5_hpo.hpo.errors import StudyError
from redsm5_hpo.hpo.lock import StudyLockedError
from redsm5_hpo.interrupts import StopRequested, graceful_stop
from redsm5_hpo.layout import StudyDir
from redsm5_hpo.models.errors import EncoderLoadError
from redsm5_hpo.remote import BucketError
from redsm5_hpo.tracking.logs import setup_logging
from redsm5_hpo.tracking.sanitize import mask_secrets

if TYPE_CHECKING:
    from redsm5_hpo.pipeline.study import StudyResult

log = logging.getLogger("redsm5_hpo.cli")

USER_ERRORS = (ConfigError, DataError, EncoderLoadError, CheckpointError, StudyError, BucketError)
EXIT_USER_ERROR = 2
EXIT_ALREADY_RUNNING = 4
EXIT_BROKEN_PIPE = 141
"""128 + SIGPIPE, what a shell reports for a writer whose reader went away."""

TUNE_HELP = """Run an HPO study: its trials (hpo.n_workers at a time), then one test evaluation of the best trial.

Writes experiments/study_<uuid>/study_report.json, experiments/trial_<uuid>/ per trial and
logs everything to MLflow (default: experiments/mlflow.db).

example:
  redsm5-hpo tune model.encoder=tiny-random hpo.n_trials=2 train.epochs=2 experiments_dir=/tmp/exp
  redsm5-hpo tune --dry-run retention_policy=aggressive
  redsm5-hpo tune hpo.n_workers=2 hpo.devices=[cuda:0,cuda:1]
"""

TRAIN_HELP = """Train one configuration (no search) and write its validation report.

Writes experiments/trial_<uuid>/ (config.yaml, checkpoints/, logs/, evaluation_report.json).
train.save_checkpoints=false runs without writing checkpoints and still logs every metric.

example:
  redsm5-hpo train model.encoder=tiny-random train.epochs=1 seed=7
"""

RESUME_HELP = """Continue an interrupted study with its saved configuration.

Finished trials stay as they are; a trial interrupted after a checkpoint continues from its newest
valid checkpoint in the same MLflow run (optimizer, scheduler, RNG and data order restored, no metric
logged twice); one interrupted before its first checkpoint restarts from epoch 0. Safe to repeat: a
resume that is itself interrupted can be resumed again, and a second process on a running study exits
with code 4 and a message. `tune hpo.study_name=study_<id>` does the same. A study that has finished
(its report current) is left as it is: resume prints its summary and exits 0, logs nothing and does not
score the test split again (`evaluate` does that on purpose).

The study keeps its saved configuration; --device moves it to another device (e.g. a study started
on a GPU machine, resumed on a CPU one). Resuming on the device and precision that wrote the checkpoint
is exact; elsewhere training continues and a warning says that exactness is not promised. Overrides
that do not change what a trial computes are accepted and saved with the study (retention_policy,
disk_guard, tracking, logs, hub, train.device, train.checkpoint_interval_epochs, hpo.n_workers,
hpo.devices, hpo heartbeats), and so is any key set to the value the study saved; any other is refused
with the list. SIGTERM or SIGINT stops a study at the next batch, resumable (exit 143 / 130).

example:
  redsm5-hpo resume                       # the newest study under experiments/
  redsm5-hpo resume --study 3f2a... experiments_dir=/data/exp
  redsm5-hpo resume retention_policy=aggressive    # after a disk-full stop, keep less
  redsm5-hpo resume --device cpu
"""

ROLLBACK_HELP = """Roll an interrupted or failed trial back to an earlier retained checkpoint (e.g. after divergence).

Checkpoints newer than --epoch are deleted, --set key=value changes of the trial's config are applied
(typically a lower learning rate), and the next `resume` continues the trial from that epoch in a new
MLflow run tagged rolled_back_from. Earlier resume points exist only if the study keeps them:
run it with retention_policy.keep_last_n=3 (or more).

example:
  redsm5-hpo rollback --trial 5ea2... --epoch 2 --set train.lr_head=5e-4 && redsm5-hpo resume
"""

CLEANUP_HELP = """List orphaned checkpoints and trial directories with their sizes; delete them with --execute.

Orphans: temp directories of interrupted writes, checkpoints without a manifest, checkpoints of
finished trials that their report does not reference, and trial directories no study or report
references. Nothing touched within --min-age-hours is considered.

example:
  redsm5-hpo cleanup                      # dry run: list only
  redsm5-hpo cleanup --execute experiments_dir=/data/exp
"""

EVALUATE_HELP = """Redo a study's test evaluation from disk: the best trial's retained best and co-best checkpoints.

Rewrites experiments/study_<id>/study_report.json (same checkpoints, same thresholds, same numbers)
and the plots; use it when the report was lost or the study was stopped before its end.

example:
  redsm5-hpo evaluate --study 3f2a...
  redsm5-hpo evaluate --device cpu        # a study trained on a GPU, evaluated on this machine
"""

REPORT_HELP = """Print a study's report and refresh its summary and plots (no test evaluation).

Recounts completed / pruned / failed trials and the best value after each, and redraws
experiments/study_<id>/plots/*.png (optimization history, parameter importances, intermediate
values, the best trial's learning curves).

example:
  redsm5-hpo report                       # the newest study
"""

VERIFY_HELP = """Check that the tracker holds every metric of a study exactly once; exit 1 on any gap.

First sends what the outage journal still holds (up to --timeout seconds), then compares the series
the loop logs (every epoch metric at steps 1..epochs of each completed trial, step-0 and final
metrics, the study run's per-trial and test metrics) with MLflow, and lists each missing or
duplicated (run, metric, step). Failed and interrupted runs are checked for duplicates only.

example:
  redsm5-hpo verify                       # the newest study
  redsm5-hpo verify --study 3f2a... tracking.uri=https://mlflow.example.org
"""

SYNC_HELP = """Send the tracking journal (metrics buffered during an outage, also those of dead processes).

Exits 0 once everything is confirmed, 1 if the tracker is still unreachable after --timeout seconds
(nothing is lost: the journal stays on disk for the next try).

example:
  redsm5-hpo sync --timeout 120
"""

PREDICT_HELP = """Run a trained model on new posts: criteria probabilities, decisions and evidence spans.

POSTS is a CSV (columns post_id, text) or JSONL ({"post_id": ..., "text": ...} per line); a file that names
them otherwise says so with --id-column / --text-column. The model is
the best of a study (the newest under experiments_dir by default, or --study), a checkpoint directory, or
a folder written by `export` (--checkpoint). The output (CSV or JSONL, by its suffix) has per post the
nine probabilities, the 0/1 decisions at the thresholds calibrated on validation, and the evidence spans
(character offsets, score, the sentence they start in). Long posts are read as in training. Post text
never goes to the logs.

example:
  redsm5-hpo predict posts.csv --output predictions.csv
  redsm5-hpo predict posts.jsonl --output out.jsonl --checkpoint exported_model/ train.device=cpu
  redsm5-hpo predict export.csv --id-column id --text-column body --output predictions.csv
"""

EXPORT_HELP = """Write a trained model as a Hugging Face folder with a model card.

The folder holds the encoder (save_pretrained: AutoModel.from_pretrained(DIR) loads it), its tokenizer,
heads.safetensors, config.json (with the head configuration and thresholds under redsm5_hpo) and
README.md, a model card with the test metrics, the data and the intended use and limits. `predict
--checkpoint DIR` uses it.

example:
  redsm5-hpo export --output models/redsm5-best           # the newest study's best model
  redsm5-hpo export --output models/epoch3 --checkpoint experiments/trial_<id>/checkpoints/epoch_0003
"""

STATUS_HELP = """What a study is doing now (read-only; from another terminal while it runs).

Says whether the study is running, finished or stopped (crashed or interrupted: resumable), its trials
done / running / queued / pruned / failed, each running trial's epoch and last metrics, the best so far
and the ETA, the free space of the experiments filesystem with the disk guard's level, and how many
tracking records wait in the journal.

example:
  redsm5-hpo status                       # the newest study
  redsm5-hpo status --all                 # every study: state, trials, best value, when it started
  watch -n 10 redsm5-hpo status --study 3f2a...
"""

UI_HELP = """Open the results in MLflow's UI and optuna-dashboard (both on 127.0.0.1; Ctrl-C stops both).

MLflow's UI serves the experiments' tracking store (experiments/mlflow.db by default; with
tracking.uri=https://... the tracking server's own UI is printed instead): the study run with its trial
runs nested under it, every metric per epoch, the dataset of each run. optuna-dashboard serves the
study's storage (the newest study, or --study): trials, states, parameters, history and importances.

example:
  redsm5-hpo ui                           # then open the two printed URLs
  redsm5-hpo ui --mlflow-port 5001 --dashboard-port 8081 --study 3f2a...
"""

WORKER_HELP = """One worker process of a study (started by `tune` / `resume` with hpo.n_workers > 1).

Claims the study's waiting trials one at a time until none is left, with the configuration saved in
<study-dir>/study.json; the process that started it watches it and writes the study report. Its log is
<study-dir>/logs/worker-<index>.log.
"""

DEVICE_HELP = "run on this device instead of the saved train.device: auto, cpu, cuda, cuda:N or mps"
OVERRIDES_HELP = (
    "Hydra-style overrides, e.g. experiments_dir=DIR seed=N data.source=sample|DIR|HUB_ID "
    "model.encoder=tiny-random|bundled:all-MiniLM-L6-v2|HUB_ID|PATH train.epochs=N hpo.n_trials=N "
    "train.device=auto|cpu|cuda|cuda:N|mps train.precision=auto|fp32|bf16|fp16 "
    "hpo.storage=URL tracking.uri=URI retention_policy=default|aggressive"
)


def _cmd_tune(config: Config, args: argparse.Namespace) -> int:
    from redsm5_hpo.pipeline import dry_run, run_study  # heavy imports only when a command runs

    if args.dry_run:
        print(dry_run(config))
        return 0
    _print_study_result(run_study(config, progress=not args.no_progress))
    return 0


def _print_study_result(result: StudyResult) -> None:
    """The end of ``tune`` and ``resume``: the trials, the best trial, its test scores and what to do next."""
    from redsm5_hpo.commands.answer import answer_lines

    if result.report is None:
        print(f"worker done; another worker writes {result.report_path} when the last trial ends")
        return
    if result.finished_before:
        print(
            f"study {result.study_id} had finished: nothing ran and nothing was logged again, and its test split "
            f"was not scored again (`{StudyDir(result.study_dir).command('evaluate')}` redoes the test evaluation)"
        )
    print("\n".join(answer_lines(result.report, result.study_dir)))


def _cmd_train(config: Config, args: argparse.Namespace) -> int:
    from redsm5_hpo.pipeline import dry_run, run_single

    if args.dry_run:
        print(dry_run(config))
        return 0
    result = run_single(config, progress=not args.no_progress)
    print(f"best {config.train.optimization_metric}: {result.best_value:.4f}")
    print(f"trial report: {result.report_path}")
    return 0


def _cmd_resume(config: Config, args: argparse.Namespace) -> int:
    from redsm5_hpo.pipeline import run_study
    from redsm5_hpo.pipeline.study_record import find_study_dir

    study_dir = find_study_dir(config, args.study)
    result = run_study(
        config, progress=not args.no_progress, resume_dir=study_dir, device=args.device, overrides=args.overrides
    )
    _print_study_result(result)
    return 0


def _cmd_rollback(config: Config, args: argparse.Namespace) -> int:
    from redsm5_hpo.commands.rollback import rollback_trial
    from redsm5_hpo.pipeline.study_record import find_study_dir

    overrides = dict(o.split("=", 1) for o in args.trial_overrides)
    typed = {k: _parse_value(v) for k, v in overrides.items()}
    print(rollback_trial(find_study_dir(config, args.study), args.trial, args.epoch, typed))
    return 0


def _parse_value(text: str) -> object:
    """``5e-4`` -> 0.0005, ``3`` -> 3, ``true`` -> True, anything else as YAML reads it."""
    import yaml

    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return yaml.safe_load(text)


def _cmd_cleanup(config: Config, args: argparse.Namespace) -> int:
    from redsm5_hpo.commands.cleanup import find_all_orphans

    orphans = find_all_orphans(config, args.min_age_hours)
    for line in orphans.lines():
        print(line)
    found = f"{orphans.count} orphan(s)"
    if not args.execute:
        print(f"{found}, {human_bytes(orphans.size_bytes)}; dry run: nothing deleted (add --execute to delete)")
        return 0
    print(f"deleted {found}, freed {human_bytes(orphans.remove())}")
    return 0


def _cmd_evaluate(config: Config, args: argparse.Namespace) -> int:
    from redsm5_hpo.commands.answer import answer_lines
    from redsm5_hpo.commands.evaluate import reevaluate_study
    from redsm5_hpo.pipeline.study_record import find_study_dir

    study_dir = find_study_dir(config, args.study)
    report, plots = reevaluate_study(study_dir, args.device)
    print("\n".join(answer_lines(report, study_dir, plots)))
    return 0


def _cmd_report(config: Config, args: argparse.Namespace) -> int:
    from redsm5_hpo.commands.answer import answer_lines
    from redsm5_hpo.commands.report import refresh_report
    from redsm5_hpo.pipeline.study_record import find_study_dir

    study_dir = find_study_dir(config, args.study)
    report, plots = refresh_report(study_dir)
    print("\n".join(answer_lines(report, study_dir, plots)))
    return 0


def _cmd_verify(config: Config, args: argparse.Namespace) -> int:
    from redsm5_hpo.commands.verify import verify_study
    from redsm5_hpo.pipeline.study_record import find_study_dir
    from redsm5_hpo.tracking.audit import format_audit

    result = verify_study(config, find_study_dir(config, args.study), args.timeout)
    print(format_audit(result))
    return 0 if result.ok else 1


def _cmd_predict(config: Config, args: argparse.Namespace) -> int:
    from redsm5_hpo.commands.predict import load_model, predict_posts, write_predictions
    from redsm5_hpo.data.posts_file import read_posts

    posts = read_posts(args.posts, args.id_column, args.text_column)  # a bad file fails before the model loads
    loaded = load_model(config, args.study, args.checkpoint, args.device)
    rows = predict_posts(loaded, posts, progress=not args.no_progress)
    path = write_predictions(rows, args.output)
    flagged = sum(1 for row in rows if any(row["criteria"].values()))
    print(f"{len(rows)} post(s), {flagged} with at least one criterion; predictions: {path}")
    return 0


def _cmd_export(config: Config, args: argparse.Namespace) -> int:
    from redsm5_hpo.commands.export import check_output, export_model
    from redsm5_hpo.commands.predict import load_model

    check_output(args.output)  # before the model loads
    card = export_model(load_model(config, args.study, args.checkpoint, "cpu"), args.output)
    print(f"exported to {card.parent} (model card: {card})")
    return 0


def _cmd_status(config: Config, args: argparse.Namespace) -> int:
    from redsm5_hpo.commands.status import describe, describe_all, read_all, read_status
    from redsm5_hpo.layout import experiments_root
    from redsm5_hpo.pipeline.study_record import find_study_dir

    if args.all:
        root = experiments_root(config)
        print(describe_all(read_all(root), root))
        return 0
    print(describe(read_status(find_study_dir(config, args.study))))
    return 0


def _cmd_ui(config: Config, args: argparse.Namespace) -> int:
    from redsm5_hpo.layout import experiments_root, study_dirs
    from redsm5_hpo.ports import busy_ports_problem

    wanted = {}  # the servers ui starts: MLflow's for a local store, the dashboard once a study exists
    if not (config.tracking.uri or "").startswith("http"):
        wanted["--mlflow-port"] = args.mlflow_port
    if args.study or study_dirs(experiments_root(config)):
        wanted["--dashboard-port"] = args.dashboard_port
    problem = busy_ports_problem(wanted)  # in a second, before the servers' imports and start-up
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return EXIT_USER_ERROR

    from redsm5_hpo.commands.ui import serve_ui

    serve_ui(config, args.study, args.mlflow_port, args.dashboard_port)
    return 0


def _cmd_worker(config: Config, args: argparse.Namespace) -> int:
    import torch

    from redsm5_hpo.pipeline.worker import work_on_study

    if args.threads:
        torch.set_num_threads(args.threads)
    work_on_study(args.study_dir, args.index, args.device)
    return 0


def _cmd_sync(config: Config, args: argparse.Namespace) -> int:
    from redsm5_hpo.commands.verify import sync_journal

    sent, left = sync_journal(config, args.timeout)
    print(f"sent {sent} journaled record(s); {left} still waiting")
    return 0 if left == 0 else 1


@dataclass(frozen=True)
class Option:
    """One ``add_argument`` of a command, declared once and shared by the commands that take it."""

    flags: tuple[str, ...]
    settings: dict[str, Any]

    def add_to(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument(*self.flags, **self.settings)


def option(*flags: str, **settings: Any) -> Option:
    return Option(flags, settings)


STUDY = option("--study", default=None, help="study id or directory name (default: the newest)")
DEVICE = option("--device", default=None, help=DEVICE_HELP)
NO_PROGRESS = option("--no-progress", action="store_true", help="hide progress bars (logs still go to stdout)")
DRY_RUN = option("--dry-run", action="store_true", help="check config, data, encoder and disk space; no training")
TIMEOUT = option("--timeout", type=float, default=60.0, help="seconds to wait for the journal to be sent (60)")
CHECKPOINT = option("--checkpoint", type=Path, default=None, help="a checkpoint dir or an exported folder")


@dataclass(frozen=True)
class Command:
    """A subcommand: its help, what runs it, its options, and how ``main`` prepares for it."""

    help: str
    run: Callable[[Config, argparse.Namespace], int]
    options: tuple[Option, ...] = ()
    positionals: tuple[Option, ...] = ()
    """Arguments before the ``key=value`` overrides (``predict``'s posts file)."""
    reads_configs: bool = True
    """False for a command that reads a study's saved configuration, not ``configs/`` (``worker``)."""
    runs_model: bool = True
    """False for a command that runs no model (it needs neither torch nor CUDA's settings: it answers in a second)."""
    stoppable: bool = False
    """It stops at the next batch on SIGTERM / SIGINT and exits 143 / 130 (``interrupts``)."""


COMMANDS: dict[str, Command] = {
    "tune": Command(TUNE_HELP, _cmd_tune, (DRY_RUN, NO_PROGRESS), stoppable=True),
    "train": Command(TRAIN_HELP, _cmd_train, (DRY_RUN, NO_PROGRESS), stoppable=True),
    "resume": Command(RESUME_HELP, _cmd_resume, (STUDY, NO_PROGRESS, DEVICE), stoppable=True),
    "rollback": Command(
        ROLLBACK_HELP,
        _cmd_rollback,
        (
            option("--trial", required=True, help="the trial id (the uuid of experiments/trial_<uuid>)"),
            option("--epoch", type=int, required=True, help="the retained resumable epoch to return to"),
            STUDY,
            option(
                "--set",
                dest="trial_overrides",
                action="append",
                default=[],
                metavar="key=value",
                help="change the trial's config, e.g. --set train.lr_head=5e-4 (repeatable)",
            ),
        ),
        runs_model=False,
    ),
    "cleanup": Command(
        CLEANUP_HELP,
        _cmd_cleanup,
        (
            option("--execute", action="store_true", help="delete the orphans (default: only list them)"),
            option("--min-age-hours", type=float, default=24.0, help="skip anything touched more recently (24)"),
        ),
        runs_model=False,
    ),
    "evaluate": Command(EVALUATE_HELP, _cmd_evaluate, (STUDY, DEVICE)),
    "report": Command(REPORT_HELP, _cmd_report, (STUDY,), runs_model=False),
    "verify": Command(VERIFY_HELP, _cmd_verify, (STUDY, TIMEOUT), runs_model=False),
    "sync": Command(SYNC_HELP, _cmd_sync, (TIMEOUT,), runs_model=False),
    "predict": Command(
        PREDICT_HELP,
        _cmd_predict,
        (
            option("--output", type=Path, required=True, help="the predictions file (.csv or .jsonl)"),
            STUDY,
            CHECKPOINT,
            DEVICE,
            option("--id-column", default="post_id", help="the column (or JSON key) of post ids (post_id)"),
            option("--text-column", default="text", help="the column (or JSON key) of post texts (text)"),
            NO_PROGRESS,
        ),
        positionals=(option("posts", type=Path, help="CSV (post_id, text) or JSONL file of posts"),),
    ),
    "export": Command(
        EXPORT_HELP,
        _cmd_export,
        (option("--output", type=Path, required=True, help="a new directory for the model"), STUDY, CHECKPOINT),
    ),
    "status": Command(
        STATUS_HELP,
        _cmd_status,
        (
            STUDY,
            option("--all", action="store_true", help="one line per study under experiments_dir: state, trials, best"),
        ),
        runs_model=False,
    ),
    "ui": Command(
        UI_HELP,
        _cmd_ui,
        (
            STUDY,
            option("--mlflow-port", type=int, default=5000, help="MLflow UI port (5000)"),
            option("--dashboard-port", type=int, default=8080, help="optuna-dashboard port (8080)"),
        ),
        runs_model=False,
    ),
    "worker": Command(
        WORKER_HELP,
        _cmd_worker,
        (
            option("--study-dir", type=Path, required=True, help="the study's directory"),
            option("--index", type=int, default=0, help="this worker's index (0 ... n_workers - 1)"),
            DEVICE,
            option("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)"),
        ),
        reads_configs=False,
        stoppable=True,
    ),
}
CONFIG_DIR = option(
    "--config-dir",
    default=None,
    help="directory holding config.yaml (default: $REDSM5_CONFIG_DIR, else the configs/ of the source tree "
    "this command was installed from, else ./configs)",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="redsm5-hpo",
        description="Storage-optimized training and HPO for DSM-5 criteria matching and evidence binding (ReDSM5).",
        epilog="example:\n  redsm5-hpo tune hpo.n_trials=4\n  redsm5-hpo train --help",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"redsm5-hpo {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="{" + ",".join(COMMANDS) + "}")
    for name, command in COMMANDS.items():
        sub = commands.add_parser(
            name,
            help=command.help.splitlines()[0],
            description=command.help,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        for each in command.positionals:
            each.add_to(sub)
        sub.add_argument("overrides", nargs="*", metavar="key=value", help=OVERRIDES_HELP)
        for each in (CONFIG_DIR, *command.options):
            each.add_to(sub)
    return parser


def _format_warning(message: Warning | str, category: type[Warning], *args: Any, **kwargs: Any) -> str:
    """A renamed configuration key is a one-line note for the user, not a source location."""
    if issubclass(category, ConfigDeprecationWarning):
        return f"warning: {message}\n"
    return _FORMAT_WARNING(message, category, *args, **kwargs)


_FORMAT_WARNING = warnings.formatwarning


def _silence_stdout() -> None:
    """Point stdout at /dev/null so that the interpreter's last flush does not fail on the closed pipe."""
    with contextlib.suppress(OSError, ValueError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())


def main(argv: Sequence[str] | None = None) -> int:
    warnings.formatwarning = _format_warning
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    stray = [a for a in extra if a.startswith("-") or "=" not in a]
    if stray:
        parser.error(f"unrecognized arguments: {' '.join(stray)}")
    args.overrides = [*args.overrides, *extra]  # key=value after an option is an override too
    setup_logging()
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    command = COMMANDS[args.command]
    try:
        config = load_config(args.overrides, args.config_dir) if command.reads_configs else Config()
        setup_logging(config.logs.stdout_level)
        if config.train.deterministic and command.runs_model:  # before any CUDA work (fixes cuBLAS's workspace)
            from redsm5_hpo.devices import CUBLAS_WORKSPACE_CONFIG

            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", CUBLAS_WORKSPACE_CONFIG)
        with graceful_stop() if command.stoppable else contextlib.nullcontext():
            return command.run(config, args)
    except BrokenPipeError:  # `redsm5-hpo status | head -1`: the reader has what it wanted
        _silence_stdout()
        return EXIT_BROKEN_PIPE
    except DeviceFailed as e:  # a fresh process can use the GPU again; the study logged how to resume
        after = (
            "the trial is resumable (the resume command is above)" if args.command != "train" else "checkpoints kept"
        )
        print(f"error: {e}; {after}", file=sys.stderr)
        return EXIT_DEVICE_FAILED
    except StopRequested as e:  # the study logged how to resume; the run's checkpoints are on disk
        resumable = "the study is resumable (the resume command is above)"
        after = resumable if args.command != "train" else "checkpoints kept"
        print(f"{e}; {after}", file=sys.stderr)
        return e.exit_code
    except USER_ERRORS as e:
        log.critical("%s", e, extra=FILES_ONLY)  # for the JSON logs; the terminal gets it once, below
        print(f"error: {mask_secrets(str(e))}", file=sys.stderr)
        return EXIT_USER_ERROR
    except DiskSpaceError as e:  # logged in full for the JSON logs where it was raised; the terminal gets it here
        print(f"error: {mask_secrets(str(e))}", file=sys.stderr)
        return EXIT_DISK_FULL
    except StudyLockedError as e:
        print(str(e), file=sys.stderr)
        return EXIT_ALREADY_RUNNING
