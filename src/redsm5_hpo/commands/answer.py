"""A study's answer as the console shows it at the end of ``tune``, ``resume``, ``evaluate`` and ``report``:
the trials in one table, the best trial's parameters, the test metrics, the report's warnings and the next
commands. Pure: from the report (and the study's directory, for the commands) to lines of text."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from redsm5_hpo.layout import StudyDir

STATE_NAMES = {"complete": "complete", "pruned": "pruned", "fail": "failed"}


def short(value: object) -> str:
    """A parameter or metric at 4 significant digits (``8.638e-05``, ``0.1775``); anything else as it is."""
    if isinstance(value, float):
        return format(value, ".4g")
    return str(value)


def trials_table(report: dict[str, Any]) -> list[str]:
    """One row per counted trial (index, state, objective, the searched parameters); ``*`` marks the best."""
    history = report["summary"]["best_value_history"]
    names = sorted({name for h in history for name in h.get("params", {})})
    staged = any(h.get("stage", "search") != "search" for h in history)  # a stage column only when it says something
    header = ["", "trial", *(["stage"] if staged else []), "state", report["optimization_metric"], *names]
    rows = [
        [
            "*" if h.get("trial_id") == report["best_trial_id"] else "",
            str(h["trial"]),
            *([h.get("stage", "search")] if staged else []),
            STATE_NAMES.get(h["state"], h["state"]),
            "-" if h["value"] is None else short(h["value"]),
            *(short(h.get("params", {}).get(name, "-")) for name in names),
        ]
        for h in history
    ]
    return aligned([header, *rows])


def aligned(rows: list[list[str]]) -> list[str]:
    """The rows as text columns, each as wide as its widest cell."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip() for row in rows]


def trial_index(report: dict[str, Any], trial_id: str | None) -> str:
    """The 1-based index (``trial k/N``) of the trial with this id, ``?`` when the report has none."""
    found = (h["trial"] for h in report["summary"]["best_value_history"] if h.get("trial_id") == trial_id)
    return str(next(found, "?"))


HEADLINE = (
    ("macro-F1", "test_criteria_macro_f1"),
    ("micro-F1", "test_criteria_micro_f1"),
    ("evidence F1", "test_evidence_f1"),
)


def spread_text(spread: dict[str, Any], digits: int = 4) -> str:
    """``0.8349 ± 0.0120 [0.805, 0.865]``: mean ± std over seeds and the interval of the mean."""
    low, high = spread["interval"]
    return f"{spread['mean']:.{digits}f} ± {spread['std']:.{digits}f} [{low:.3f}, {high:.3f}]"


def confirmation_lines(report: dict[str, Any]) -> list[str]:
    """Each confirmed configuration: its search-time objective beside its mean over the seeds (the
    winner's curse, visible), then the winner's test metrics over its seeds."""
    confirmation = report.get("confirmation")
    if not confirmation:
        return []
    metric = report["optimization_metric"]
    lines = [f"confirmation over seeds {confirmation['seeds']} ({confirmation['interval_method']}):"]
    header = ["", "rank", "search trial", f"{metric} in the search", "over the seeds: mean ± std [interval]"]
    rows = [
        [
            "*" if c["rank"] == confirmation["winner"] else "",
            str(c["rank"]),
            trial_index(report, c.get("search_trial_id")),
            "-" if c["search_value"] is None else f"{c['search_value']:.4f}",
            "-" if c["validation"] is None else spread_text(c["validation"]),
        ]
        for c in confirmation["configurations"]
    ]
    lines += [f"  {line}" for line in aligned([header, *rows])]
    test = confirmation["winner_test"]
    shown = [f"{label} {spread_text(test['summary'][key])}" for label, key in HEADLINE if key in test["summary"]]
    lines.append(f"the winner on test over its {len(test['per_seed'])} seed(s): {', '.join(shown)}")
    return lines


def baseline_lines(report: dict[str, Any]) -> list[str]:
    """The answer's gain over the baseline trial (the configuration's own values)."""
    baseline = report.get("baseline")
    if not baseline:
        return []
    metric, index = report["optimization_metric"], trial_index(report, baseline["trial_id"])
    if baseline["trial_id"] == report["best_trial_id"] and "search_gain" in baseline:
        search = trial_index(report, baseline.get("best_search_trial_id"))
        return [
            f"the baseline trial {index} (the configuration's own values) is the answer: the best search trial "
            f"({search}) scores {metric} {baseline['search_gain']:+.4f} against it"
        ]
    line = f"gain over the baseline trial {index} (the configuration's own values): {metric} "
    line += f"{baseline['validation_gain']:+.4f} on validation"
    gains = baseline.get("test_gain") or {}
    shown = [
        f"{label} {gains[key]['gain']:+.4f} [{gains[key]['interval'][0]:+.3f}, {gains[key]['interval'][1]:+.3f}]"
        for label, key in HEADLINE
        if key in gains
    ]
    if shown:
        line += f"; on test (the winner's mean over seeds minus the baseline): {', '.join(shown)}"
    return [line]


def stopped_lines(report: dict[str, Any], study_dir: Path) -> list[str]:
    """Why the study claimed no more trials, and the command that lets it go on."""
    stopped = report.get("stopped")
    if not stopped:
        return []
    hpo = (report.get("config") or {}).get("hpo", {})
    if stopped["reason"] == "timeout":
        more = f"hpo.timeout_s={short(float(hpo.get('timeout_s') or 3600))}"
    else:
        more = f"hpo.patience_trials={2 * int(hpo.get('patience_trials') or 1)}"
    resume = StudyDir(study_dir).command("resume", more)
    return [f"the study stopped early: {stopped['why']}; `{resume}` lets it go on"]


def counts_line(report: dict[str, Any]) -> str:
    trials = report["trials"]
    return (
        f"study {report['study_id']}: {trials['completed']} completed, {trials['pruned']} pruned, "
        f"{trials['failed']} failed of {trials['requested']} requested"
    )


def best_lines(report: dict[str, Any]) -> list[str]:
    index = trial_index(report, report["best_trial_id"])
    params = report.get("best_params") or {}
    return [
        f"best trial{'' if index == '?' else f' {index}'} ({report['best_trial_id']}): "
        f"{report['optimization_metric']} = {report['best_validation_value']:.4f}",
        "best parameters: " + (" ".join(f"{k}={short(v)}" for k, v in sorted(params.items())) or "(none searched)"),
    ]


def with_interval(report: dict[str, Any], name: str, value: float, digits: int = 4) -> str:
    """``0.8349 [0.781, 0.884]`` when the report has the metric's interval, else the value alone."""
    interval = (report.get("test_intervals") or {}).get(name)
    shown = f"{value:.{digits}f}"
    return f"{shown} [{interval[0]:.3f}, {interval[1]:.3f}]" if interval else shown


def test_lines(report: dict[str, Any]) -> list[str]:
    metrics = report["test_metrics"]
    baselines = ", ".join(f"{name} {value:.3f}" for name, value in report["baselines"].items())
    names = (("macro-F1", "test_criteria_macro_f1"), ("micro-F1", "test_criteria_micro_f1"))
    scores = [f"{label} {with_interval(report, key, metrics[key])}" for label, key in names]
    scores.append(f"evidence F1 {with_interval(report, 'test_evidence_f1', metrics['test_evidence_f1'])}")
    method = report.get("interval_method")
    intervals = (
        [
            f"[intervals: {method['confidence']:.0%} percentile bootstrap over the test posts, {method['samples']} "
            f"resamples, seed {method['seed']}]"
        ]
        if method
        else []
    )
    return [
        f"test (calibrated thresholds): {', '.join(scores)}",
        *intervals,
        paper_summary(report),
        f"constant baselines (test macro-F1): {baselines}",
    ]


def paper_summary(report: dict[str, Any]) -> str:
    """One line: the test split scored as the published baselines are (``paper_metrics``)."""
    paper = report.get("paper_metrics")
    if not paper:
        return "paper protocol: not in this report (written by an earlier version)"
    scores = ", ".join(
        f"{label} {with_interval(report, f'test_paper_{key}', paper[key], 3)}"
        for label, key in (
            ("micro-F1", "micro_f1"),
            ("macro-F1", "macro_f1"),
            ("weighted-F1", "weighted_f1"),
            ("exact match", "exact_match_accuracy"),
        )
    )
    return f"paper protocol (10 classes, threshold 0.5, {paper['posts']} test posts): {scores}"


def next_commands(study_dir: Path) -> list[str]:
    """What a user does with the answer, each a complete command that works pasted anywhere."""
    files = StudyDir(study_dir)
    return [
        "next:",
        f"  {files.command('predict', 'POSTS.csv', '--output', 'predictions.csv')}",
        f"  {files.command('export', '--output', f'models/{files.path.name}')}",
        f"  {files.command('ui')}",
    ]


def answer_lines(report: dict[str, Any], study_dir: Path, plots: list[Path] | None = None) -> list[str]:
    """Everything the end of a study prints, in reading order."""
    return [
        counts_line(report),
        *stopped_lines(report, study_dir),
        *trials_table(report),
        *best_lines(report),
        *test_lines(report),
        *confirmation_lines(report),
        *baseline_lines(report),
        *(f"warning: {w}" for w in report.get("warnings", [])),
        *(f"plot: {p}" for p in plots or []),
        f"study report: {StudyDir(study_dir).report_path}",
        *next_commands(study_dir),
    ]
