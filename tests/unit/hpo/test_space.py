"""The `hpo=zoo` space: every trial it can draw is a valid config whose model trains a step."""

from __future__ import annotations

import optuna
import torch

from redsm5_hpo.config import load_config
from redsm5_hpo.config.loading import apply_overrides
from redsm5_hpo.data.formats import make_dataset
from redsm5_hpo.hpo.space import suggest
from redsm5_hpo.pipeline.builders import build_model
from tests.conftest import CONFIG_DIR


def test_every_drawn_trial_validates_builds_and_takes_a_training_step(sample_corpus) -> None:
    base = load_config(["hpo=zoo", "model=tiny", "data.max_length=96"], CONFIG_DIR)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    posts = sample_corpus.splits["train"][:4]
    seen: dict[str, set] = {}
    for _ in range(24):
        trial = study.ask()
        values = suggest(trial, base.hpo.search_space)
        config = apply_overrides(base, values)  # raises ConfigError on an impossible combination
        for key in ("model.evidence_head", "model.criteria_head", "train.criteria_loss", "data.input_format"):
            seen.setdefault(key, set()).add(values[key])
        if "train.momentum" in values or ("model.head_hidden" in values) != (
            config.model.criteria_head in ("mlp", "residual_mlp", "gated")
        ):
            raise AssertionError(f"a conditional dimension was drawn outside its condition: {values}")
        model, tokenizer = build_model(config, sample_corpus)
        dataset = make_dataset(posts, tokenizer, config.data.max_length, config.data.input_format)
        batch = dataset.collate([dataset[i] for i in range(4)])
        model.train()
        loss = model.loss(model(batch), batch, config.train.evidence_loss_weight)
        loss.backward()
        assert torch.isfinite(loss), values
        study.tell(trial, 0.0)
    assert len(seen["model.evidence_head"]) >= 5 and len(seen["model.criteria_head"]) >= 4
    assert seen["data.input_format"] == {"multilabel", "pair"}
