"""`redsm5-hpo ui` in a real browser (Debian's chromium driven by Playwright) on the finished two-trial study:
MLflow's runs table lists the study run with its trial runs nested under it and the Dataset column
filled, a trial's train_loss chart gets one point per epoch, and optuna-dashboard lists every trial with
its state. Screenshots go next to the test's temporary files."""

from __future__ import annotations

import shutil
import signal
import time
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from tests.helpers.mlflow_server import free_port
from tests.integration.test_tracking_outage import Cli

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
pytestmark = pytest.mark.skipif(
    not Path(CHROMIUM).is_file(), reason="no chromium binary: `make setup` as root installs Debian's chromium"
)


def printed_url(ui: Cli, label: str) -> str:
    (line,) = [line for line in ui.lines if line.startswith(f"{label}: ")]
    return line.split(": ", 1)[1].strip()


def test_mlflow_and_optuna_dashboard_show_the_study_in_a_browser(uninterrupted_root, tmp_path) -> None:
    from playwright.sync_api import sync_playwright

    client = MlflowClient(tracking_uri=f"sqlite:///{uninterrupted_root / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("redsm5-hpo")
    trial_run = next(r for r in client.search_runs([experiment.experiment_id]) if r.info.run_name.startswith("trial_"))
    ui = Cli(uninterrupted_root, "ui", f"--mlflow-port={free_port()}", f"--dashboard-port={free_port()}")
    try:
        ui.wait_for("Ctrl-C stops both", timeout_s=180)
        runs_page, dashboard = printed_url(ui, "MLflow UI"), printed_url(ui, "optuna-dashboard")
        assert runs_page.endswith(f"#/experiments/{experiment.experiment_id}/runs?workflowType=machine_learning")
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
            page = browser.new_page(viewport={"width": 1600, "height": 1000})

            page.goto(runs_page)
            page.wait_for_selector("text=study_", timeout=90_000)
            body = page.inner_text("body")
            assert "3 matching runs" in body and "redsm5-sample" in body  # the Dataset column is filled
            assert "trial_" not in body  # nested under the study run, folded
            page.locator("[role=gridcell]", has_text="study_").first.locator("button").first.click()
            page.wait_for_selector("text=trial_", timeout=30_000)
            assert page.locator("[role=gridcell]", has_text="trial_").count() == 2
            page.screenshot(path=str(tmp_path / "mlflow_runs.png"))

            histories: list[list[dict]] = []  # each fetch of the chart's series

            def keep_history(response) -> None:
                if "get-history-bulk-interval" in response.url and "metric_key=train_loss" in response.url:
                    histories.append(response.json().get("metrics", []))

            page.on("response", keep_history)
            base = runs_page.split("#", 1)[0]
            experiment_id, run_id = experiment.experiment_id, trial_run.info.run_id
            page.goto(f"{base}#/experiments/{experiment_id}/runs/{run_id}/model-metrics?workflowType=machine_learning")
            page.wait_for_selector("text=train_loss", timeout=60_000)
            deadline = time.monotonic() + 30
            while not histories and time.monotonic() < deadline:
                page.wait_for_timeout(250)
            assert histories and all(sorted(p["step"] for p in h) == [1, 2, 3] for h in histories)  # one per epoch
            page.screenshot(path=str(tmp_path / "mlflow_train_loss.png"))

            page.goto(f"{dashboard}/dashboard")
            page.click("text=study_", timeout=60_000)
            page.wait_for_url("**/dashboard/studies/*")
            page.goto(page.url.rstrip("/") + "/trials")
            page.wait_for_selector("text=2 Trials", timeout=60_000)
            body = page.inner_text("body")
            assert "Trial 0" in body and "Trial 1" in body and body.count("Complete") >= 2
            page.screenshot(path=str(tmp_path / "optuna_dashboard_trials.png"))
            study_page = page.url.rsplit("/", 1)[0]
            shown = page.request.get(study_page.replace("/dashboard/studies/", "/api/studies/")).json()
            assert shown["objective_names"] == ["val_criteria_macro_pr_auc"]  # the metric, not "Objective 0"
            facts = {a["key"]: a["value"] for a in shown["user_attrs"]}
            report = next(uninterrupted_root.glob("study_*/study_report.json"))
            assert facts["report_path"] == str(report) and facts["data_revision"].startswith("sample@sha256:")
            page.goto(study_page)
            page.wait_for_selector("text=val_criteria_macro_pr_auc", timeout=60_000)  # the history plot's axis
            browser.close()
    finally:
        ui.process.send_signal(signal.SIGINT)
        code = ui.finish(timeout_s=60)
    assert code == 0 and "stopped" in ui.output, ui.output[-2000:]
    assert not (uninterrupted_root / "ui_logs").exists()  # the servers' logs are the study's
    assert {p.name for p in uninterrupted_root.glob("study_*/logs/ui/*.log")} == {"mlflow.log", "optuna-dashboard.log"}
    assert all((tmp_path / name).is_file() for name in ("mlflow_runs.png", "optuna_dashboard_trials.png"))
