"""``redsm5-hpo <command> [key=value ...]``: Hydra-style overrides on top of ``configs/config.yaml``."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Callable, Sequence

from redsm5_hpo.checkpoints.store import CheckpointError
from redsm5_hpo.config.errors import ConfigError
from redsm5_hpo.config.loading import load_config
from redsm5_hpo.config.schema import Config
from redsm5_hpo.data.errors import DataError
from redsm5_hpo.hpo.errors import StudyError
from redsm5_hpo.models.encoder import EncoderLoadError
from redsm5_hpo.tracking.logs import setup_logging

log = logging.getLogger("redsm5_hpo.cli")

USER_ERRORS = (ConfigError, DataError, EncoderLoadError, CheckpointError, StudyError)

TUNE_HELP = """Run an HPO study: sequential trials, then one test evaluation of the best trial.

Writes experiments/study_<uuid>/study_report.json, experiments/trial_<uuid>/ per trial and
logs everything to MLflow (default: experiments/mlflow.db).

example:
  redsm5-hpo tune model.encoder=tiny-random hpo.n_trials=2 train.epochs=2 experiments_dir=/tmp/exp
"""

TRAIN_HELP = """Train one configuration (no search) and write its validation report.

Writes experiments/trial_<uuid>/ (config.yaml, checkpoints/, logs/, evaluation_report.json).

example:
  redsm5-hpo train model.encoder=tiny-random train.epochs=1 seed=7
"""

OVERRIDES_HELP = (
    "Hydra-style overrides, e.g. experiments_dir=DIR seed=N data.source=sample|DIR|HUB_ID "
    "model.encoder=tiny-random|bundled:all-MiniLM-L6-v2|HUB_ID|PATH train.epochs=N hpo.n_trials=N "
    "hpo.storage=URL tracking.uri=URI"
)


def _cmd_tune(config: Config, progress: bool) -> int:
    from redsm5_hpo.pipeline import run_study

    result = run_study(config, progress=progress)
    metrics = result.report["test_metrics"]
    print(
        f"best trial: {result.report['best_trial_id']} ({config.train.optimization_metric}="
        f"{result.report['best_validation_value']:.4f})"
    )
    print(
        f"test macro-F1: {metrics['test_criteria_macro_f1']:.4f}  micro-F1: {metrics['test_criteria_micro_f1']:.4f}  "
        f"evidence F1: {metrics['test_evidence_f1']:.4f}"
    )
    print(f"baselines (test macro-F1): {json.dumps(result.report['baselines'])}")
    print(f"study report: {result.report_path}")
    return 0


def _cmd_train(config: Config, progress: bool) -> int:
    from redsm5_hpo.pipeline import run_single

    result = run_single(config, progress=progress)
    print(f"best {config.train.optimization_metric}: {result.best_value:.4f}")
    print(f"trial report: {result.report_path}")
    return 0


COMMANDS: dict[str, tuple[str, Callable[[Config, bool], int]]] = {
    "tune": (TUNE_HELP, _cmd_tune),
    "train": (TRAIN_HELP, _cmd_train),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="redsm5-hpo",
        description="Storage-optimized training and HPO for DSM-5 criteria matching and evidence binding (ReDSM5).",
        epilog="example:\n  redsm5-hpo tune hpo.n_trials=4\n  redsm5-hpo train --help",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="{" + ",".join(COMMANDS) + "}")
    for name, (text, _) in COMMANDS.items():
        sub = commands.add_parser(
            name, help=text.splitlines()[0], description=text, formatter_class=argparse.RawDescriptionHelpFormatter
        )
        sub.add_argument("overrides", nargs="*", metavar="key=value", help=OVERRIDES_HELP)
        sub.add_argument(
            "--config-dir", default=None, help="directory holding config.yaml (default: ./configs of the source tree)"
        )
        sub.add_argument("--no-progress", action="store_true", help="hide progress bars (logs still go to stdout)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging()
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    _, command = COMMANDS[args.command]
    try:
        config = load_config(args.overrides, args.config_dir)
        return command(config, not args.no_progress)
    except USER_ERRORS as e:
        log.critical("%s", e)
        print(f"error: {e}", file=sys.stderr)
        return 2
