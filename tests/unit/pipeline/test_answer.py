"""The answer printed at the end of a study: the trials table, the best parameters, warnings, next commands."""

import shlex

from redsm5_hpo.cli.main import build_parser
from redsm5_hpo.pipeline.answer import answer_lines, short, trials_table


def report(warnings=()):
    history = [
        {
            "trial": 1,
            "state": "complete",
            "value": 0.61,
            "best_so_far": 0.61,
            "trial_id": "a",
            "params": {"train.lr_encoder": 8.637740655039981e-05, "model.head_hidden": 128},
        },
        {
            "trial": 2,
            "state": "pruned",
            "value": None,
            "best_so_far": 0.61,
            "trial_id": "b",
            "params": {"train.lr_encoder": 1.2e-4, "model.head_hidden": 256},
        },
        {
            "trial": 3,
            "state": "complete",
            "value": 0.7345678,
            "best_so_far": 0.7345678,
            "trial_id": "c",
            "params": {"train.lr_encoder": 3e-5, "model.head_hidden": 64},
        },
    ]
    return {
        "study_id": "s1",
        "best_trial_id": "c",
        "optimization_metric": "val_criteria_macro_f1",
        "best_validation_value": 0.7345678,
        "best_params": {"train.lr_encoder": 3e-5, "model.head_hidden": 64},
        "test_metrics": {"test_criteria_macro_f1": 0.5, "test_criteria_micro_f1": 0.6, "test_evidence_f1": 0.7},
        "baselines": {"all_positive_macro_f1": 0.16},
        "trials": {"requested": 3, "completed": 2, "pruned": 1, "failed": 0},
        "summary": {"best_value_history": history, "pruned": [], "failed": []},
        "warnings": list(warnings),
    }


def test_parameters_print_at_four_significant_digits() -> None:
    assert short(8.637740655039981e-05) == "8.638e-05"
    assert short(0.17751303) == "0.1775"
    assert short(128) == "128" and short("adamw") == "adamw"


def test_the_table_has_one_row_per_trial_numbered_from_one_with_the_best_marked() -> None:
    header, *rows = trials_table(report())
    assert header.split() == ["trial", "state", "val_criteria_macro_f1", "model.head_hidden", "train.lr_encoder"]
    assert [row.split()[0] for row in rows] == ["1", "2", "*"]
    assert rows[0].split() == ["1", "complete", "0.61", "128", "8.638e-05"]
    assert rows[1].split() == ["2", "pruned", "-", "256", "0.00012"]
    assert rows[2].split() == ["*", "3", "complete", "0.7346", "64", "3e-05"]
    assert header.index("train.lr_encoder") == rows[0].index("8.638e-05") == rows[2].index("3e-05")  # aligned


def test_the_answer_names_the_best_parameters_warnings_and_next_commands(tmp_path) -> None:
    lines = answer_lines(report(["the search had no signal"]), tmp_path / "study_s1")
    assert "best trial 3 (c): val_criteria_macro_f1 = 0.7346" in lines
    assert "best parameters: model.head_hidden=64 train.lr_encoder=3e-05" in lines
    assert "warning: the search had no signal" in lines
    commands = [line.strip() for line in lines[lines.index("next:") + 1 :]]
    assert [c.split()[1] for c in commands] == ["predict", "export", "ui"]
    for command in commands:  # each parses as the CLI reads it, with the study and where it lives
        args, extra = build_parser().parse_known_args(shlex.split(command)[1:])
        assert args.study == "study_s1" and f"experiments_dir={tmp_path}" in [*args.overrides, *extra]
