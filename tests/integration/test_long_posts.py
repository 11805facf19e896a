"""A tiny study end to end on posts longer than one window: trained, evaluated and reported with windows,
nothing lost to truncation; the same posts truncated lose evidence, and the loss is logged."""

from __future__ import annotations

import json

from mlflow.tracking import MlflowClient

from redsm5_hpo.cli.main import main
from redsm5_hpo.config import load_config
from redsm5_hpo.data.loading import load_corpus
from redsm5_hpo.evaluation.reports import validate_report
from redsm5_hpo.models.encoder import load_encoder
from redsm5_hpo.pipeline.builders import split_datasets
from tests.conftest import CONFIG_DIR, tiny_overrides

SHORT = ["data.max_length=32", "train.epochs=1"]


def truncation_losses(root) -> list[float]:
    client = MlflowClient(tracking_uri=f"sqlite:///{root / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("redsm5-hpo").experiment_id])
    trials = [r for r in runs if r.info.run_name.startswith("trial_")]
    assert trials
    keys = ("train_evidence_truncation_loss", "val_evidence_truncation_loss")
    return [r.data.metrics[k] for r in trials for k in keys]


def test_a_tiny_study_runs_end_to_end_with_windows(tmp_path) -> None:
    config = load_config(tiny_overrides(tmp_path, *SHORT), CONFIG_DIR)
    corpus = load_corpus(config.data, config.seed)
    (train_set,) = split_datasets(config, corpus, load_encoder("tiny-random").tokenizer, "train")
    assert max(train_set.window_counts) >= 3  # the sample's posts do not fit in 32 tokens

    root = tmp_path / "windows"
    overrides = tiny_overrides(root, *SHORT, "hpo.n_trials=2", "model.window_pooling=attention")
    assert main(["tune", *overrides, "--config-dir", str(CONFIG_DIR), "--no-progress"]) == 0
    (study_dir,) = root.glob("study_*")
    report = json.loads((study_dir / "study_report.json").read_text())
    validate_report(report, "study_report")
    assert 0.0 <= report["test_metrics"]["test_evidence_f1"] <= 1.0
    assert truncation_losses(root) == [0.0] * len(truncation_losses(root))

    cut = tmp_path / "truncate"
    overrides = tiny_overrides(cut, *SHORT, "data.long_posts=truncate")
    assert main(["train", *overrides, "--config-dir", str(CONFIG_DIR), "--no-progress"]) == 0
    assert all(loss > 0.2 for loss in truncation_losses(cut))
