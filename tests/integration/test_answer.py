"""A study whose search could not tell its trials apart says so, in its report and on the console."""

from __future__ import annotations

import json

from redsm5_hpo.cli.main import main
from tests.conftest import CONFIG_DIR


def test_a_study_with_no_signal_warns_once_in_the_report_and_on_the_console(tmp_path, capsys) -> None:
    root = tmp_path / "experiments"
    overrides = ["model=tiny", "hpo.n_trials=2", "train.epochs=1", f"experiments_dir={root}"]
    assert main(["tune", *overrides, "--config-dir", str(CONFIG_DIR), "--no-progress"]) == 0
    out = capsys.readouterr().out
    (first,) = [line for line in out.splitlines() if "progress: the first epoch took" in line]
    assert "ETA unknown" not in first and "ETA " in first  # an estimate before any trial ended
    (path,) = root.glob("study_*/study_report.json")
    report = json.loads(path.read_text())
    values = [h["value"] for h in report["summary"]["best_value_history"]]
    assert values == [0.0, 0.0]  # one epoch of the random tiny encoder predicts no criterion
    (warning,) = [w for w in report["warnings"] if "no signal" in w]
    assert out.count(f"warning: {warning}") == 1
    assert main(["report", f"experiments_dir={root}", "--config-dir", str(CONFIG_DIR)]) == 0
    assert f"warning: {warning}" in capsys.readouterr().out  # `report` recomputes and prints it too
