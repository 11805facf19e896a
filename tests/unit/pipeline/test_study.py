"""The report claim of a shared study: one writer, and a successor only for a claimer that died here."""

import os
import socket
import subprocess
import sys
from pathlib import Path

import optuna

from redsm5_hpo.layout import StudyDir
from redsm5_hpo.pipeline.study import claim_report

REPORT_CLAIM = StudyDir(Path(".")).report_claim_path.name


def test_one_claim_and_a_successor_only_for_a_claimer_that_died_on_this_machine(tmp_path) -> None:
    study = optuna.create_study()  # no trial waiting or running: the report may be claimed
    host = socket.gethostname()
    (tmp_path / REPORT_CLAIM).write_text(f"{host} {os.getpid()}\n")  # a live claimer here
    assert not claim_report(study, tmp_path)
    (tmp_path / REPORT_CLAIM).write_text(f"other-host {os.getpid() + 1}\n")  # cannot tell: it may be alive
    assert not claim_report(study, tmp_path)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    pid = int(dead.stdout)
    (tmp_path / REPORT_CLAIM).write_text(f"{host} {pid}\n")
    assert claim_report(study, tmp_path)
    assert (tmp_path / f"{REPORT_CLAIM}.{host}-{pid}").read_text() == f"{host} {os.getpid()}\n"
    assert not claim_report(study, tmp_path)  # the successor (this process) is alive: nobody else claims


def test_no_claim_while_a_trial_waits(tmp_path) -> None:
    study = optuna.create_study()
    study.enqueue_trial({})
    assert not claim_report(study, tmp_path) and not (tmp_path / REPORT_CLAIM).exists()
