"""Every criteria head x every pooling on the tiny encoder: shapes, finite gradients, padding ignored."""

from __future__ import annotations

import itertools

import pytest
import torch

from redsm5_hpo.config import load_config
from redsm5_hpo.config.errors import ConfigError
from redsm5_hpo.config.schema import CRITERIA_HEADS, POOLINGS, ModelConfig
from redsm5_hpo.models.heads import MultiSampleDropoutHead, Pooler
from redsm5_hpo.models.model import CriteriaEvidenceModel
from tests.conftest import CONFIG_DIR
from tests.helpers.batches import tokenized

TEXTS = ["I feel sad.", "I can't sleep at night at all and I am tired."]


@pytest.mark.parametrize(("head", "pooling"), list(itertools.product(CRITERIA_HEADS, POOLINGS)))
def test_every_head_and_pooling_trains(tiny, head: str, pooling: str) -> None:
    cfg = ModelConfig(encoder="tiny-random", pooling=pooling, criteria_head=head, head_hidden=8, dropout_samples=3)
    model = CriteriaEvidenceModel(tiny.model, cfg)
    model.train()
    batch = tokenized(tiny, TEXTS)
    output = model(batch)
    assert output.criteria_logits.shape == (2, 9)
    assert output.evidence_logits.shape == batch["input_ids"].shape
    output.criteria_logits.pow(2).sum().backward()
    head_params = [p for p in model.criteria_head.parameters()] + list(model.pooler.parameters())
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in head_params)
    assert any(p.grad.abs().sum() > 0 for p in model.criteria_head.parameters())
    assert f"+{head}(8)" in model.architecture_signature() and f"pool={pooling}" in model.architecture_signature()


@pytest.mark.parametrize("pooling", POOLINGS)
def test_pooling_ignores_what_padding_holds(pooling: str) -> None:
    torch.manual_seed(0)
    pooler = Pooler(pooling, 4)
    hidden = torch.randn(1, 5, 4)
    layers = (torch.randn(1, 5, 4), hidden)
    mask = torch.tensor([[1, 1, 1, 0, 0]])
    changed, changed_layers = hidden.clone(), tuple(layer.clone() for layer in layers)
    changed[:, 3:] = 1000.0
    for layer in changed_layers:
        layer[:, 3:] = -1000.0
    before = pooler(hidden, mask, layers)
    after = pooler(changed, mask, (changed_layers[0], changed))
    assert before.shape == (1, 4)
    assert torch.allclose(before, after)


def test_multi_sample_dropout_averages_masks_in_training_only() -> None:
    torch.manual_seed(0)
    head = MultiSampleDropoutHead(4, 2, dropout=0.5, samples=8)
    x = torch.randn(3, 4)
    head.eval()
    assert torch.allclose(head(x), head.linear(x))
    head.train()
    assert not torch.allclose(head(x), head.linear(x))


def test_unknown_heads_and_poolings_are_rejected(tmp_path) -> None:
    with pytest.raises(ConfigError, match=r"model\.criteria_head"):
        load_config([f"experiments_dir={tmp_path}", "model.criteria_head=transformer"], CONFIG_DIR)
    with pytest.raises(ConfigError, match=r"model\.pooling"):
        load_config([f"experiments_dir={tmp_path}", "model.pooling=max"], CONFIG_DIR)
