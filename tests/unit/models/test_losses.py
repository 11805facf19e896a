"""The criteria loss family against hand-computed values and at extreme logits; LR decay; FGM; validation."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from redsm5_hpo.config.schema import ACTIVATIONS, CRITERIA_LOSSES, Config, ModelConfig, TrainConfig, with_values
from redsm5_hpo.config.validation import validate
from redsm5_hpo.devices import resolve_runtime
from redsm5_hpo.models.activations import ACTIVATIONS as ACTIVATION_CLASSES
from redsm5_hpo.models.encoder import load_encoder
from redsm5_hpo.models.losses import CriteriaLoss, LossSettings, bce, focal, positive_weights, smooth
from redsm5_hpo.models.model import CriteriaEvidenceModel
from redsm5_hpo.training.adversarial import FGM
from redsm5_hpo.training.optim import build_optimizer, layer_scale
from tests.helpers.batches import tokenized

LN2 = math.log(2)


def one(kind: str, logit: float, target: float, pos_weight: torch.Tensor | None = None, **settings) -> float:
    loss = CriteriaLoss(LossSettings(kind, **settings), pos_weight, n_labels=1)
    return loss(torch.tensor([[logit]]), torch.tensor([[target]])).item()


def test_hand_computed_values() -> None:
    assert one("bce", 0.0, 1.0) == pytest.approx(LN2)
    assert one("weighted_bce", 0.0, 1.0, pos_weight=torch.tensor([3.0])) == pytest.approx(3 * LN2)
    assert one("weighted_bce", 0.0, 0.0, pos_weight=torch.tensor([3.0])) == pytest.approx(LN2)
    # p = sigmoid(2) for a positive: focal = (1 - p)^2 * -log p
    p = 1 / (1 + math.exp(-2.0))
    assert one("focal", 2.0, 1.0, gamma=2.0) == pytest.approx((1 - p) ** 2 * -math.log(p))
    assert one("focal", -2.0, 0.0, gamma=2.0) == pytest.approx((1 - p) ** 2 * -math.log(p))
    assert one("focal", 1.5, 1.0, gamma=0.0) == pytest.approx(one("bce", 1.5, 1.0))
    hybrid = one("hybrid", 2.0, 1.0, alpha=0.25, gamma=2.0, hybrid_bce="bce")
    assert hybrid == pytest.approx(0.25 * -math.log(p) + 0.75 * (1 - p) ** 2 * -math.log(p))
    # label smoothing 0.2: target 0.9 at logit 0 still costs ln 2; at logit 3 it costs more than the hard target
    assert one("bce", 0.0, 1.0, label_smoothing=0.2) == pytest.approx(LN2)
    q = 1 / (1 + math.exp(-3.0))
    assert one("bce", 3.0, 1.0, label_smoothing=0.2) == pytest.approx(-(0.9 * math.log(q) + 0.1 * math.log(1 - q)))
    assert smooth(torch.tensor([0.0, 1.0]), 0.2).tolist() == pytest.approx([0.1, 0.9])


@pytest.mark.parametrize("kind", CRITERIA_LOSSES)
def test_extreme_logits_give_finite_losses_and_gradients(kind: str) -> None:
    loss = CriteriaLoss(LossSettings(kind, label_smoothing=0.1), torch.full((4,), 5.0), n_labels=4)
    logits = torch.tensor([[1e4, -1e4, 1e4, -1e4], [80.0, -80.0, 0.0, 1e-8]], requires_grad=True)
    targets = torch.tensor([[1.0, 0.0, 0.0, 1.0], [1.0, 1.0, 0.0, 1.0]])
    value = loss(logits, targets)
    value.backward()
    assert torch.isfinite(value) and torch.isfinite(logits.grad).all()
    for gamma in (0.0, 0.5, 2.0):
        hard = focal(torch.tensor([1e4, -1e4]), torch.tensor([0.0, 1.0]), gamma)
        assert torch.isfinite(hard).all() and (hard > 1e3).all()


def test_adaptive_focal_learns_one_gamma_per_criterion_anchored_at_the_configured_one() -> None:
    loss = CriteriaLoss(LossSettings("adaptive_focal", gamma=2.0, gamma_penalty=0.5), n_labels=3)
    assert loss.learned_gamma.tolist() == pytest.approx([2.0, 2.0, 2.0])
    logits = torch.tensor([[-3.0, 0.0, 3.0]])
    targets = torch.tensor([[1.0, 1.0, 1.0]])
    expected = focal(logits, targets, 2.0).mean()
    assert loss(logits, targets).item() == pytest.approx(expected.item())
    loss(logits, targets).backward()
    grad = loss.raw_gamma.grad
    assert grad is not None and (grad != 0).all()
    with torch.no_grad():
        loss.raw_gamma.add_(1.0)
    drifted = loss(logits, targets).item()
    assert drifted > focal(logits, targets, loss.learned_gamma.detach()).mean().item()


def test_class_weights_come_from_train_labels() -> None:
    weights = positive_weights([[1, 0, 0], [1, 1, 0], [0, 0, 0], [1, 0, 0]])
    assert weights.tolist() == pytest.approx([1 / 3, 3.0, 1.0])


def test_bce_matches_torch() -> None:
    logits, targets = torch.randn(5, 3), torch.rand(5, 3)
    torch.testing.assert_close(
        bce(logits, targets), torch.nn.functional.binary_cross_entropy_with_logits(logits, targets, reduction="none")
    )


def test_every_configured_activation_exists() -> None:
    assert tuple(ACTIVATION_CLASSES) == ACTIVATIONS


def test_layer_wise_lr_decay_scales_each_encoder_layer() -> None:
    assert layer_scale("encoder.encoder.layer.1.attention.self.query.weight", 2, 0.5) == 1.0
    assert layer_scale("encoder.encoder.layer.0.output.dense.bias", 2, 0.5) == 0.5
    assert layer_scale("encoder.embeddings.word_embeddings.weight", 2, 0.5) == 0.25
    assert layer_scale("encoder.embeddings.word_embeddings.weight", 2, 1.0) == 1.0
    tiny = load_encoder("tiny-random", seed=0)
    model = CriteriaEvidenceModel(tiny.model, ModelConfig(encoder="tiny-random", head_hidden=8))
    optimizer = build_optimizer(model, TrainConfig(lr_encoder=1e-3, lr_head=1e-2, layer_lr_decay=0.5))
    lr_of = {id(p): g["lr"] for g in optimizer.param_groups for p in g["params"]}
    named = dict(model.named_parameters())
    layers = tiny.model.config.num_hidden_layers
    top = f"encoder.encoder.layer.{layers - 1}.attention.self.query.weight"
    assert lr_of[id(named[top])] == pytest.approx(1e-3)
    assert lr_of[id(named["encoder.embeddings.word_embeddings.weight"])] == pytest.approx(1e-3 * 0.5**layers)
    assert lr_of[id(named["evidence_head.linear.weight"])] == pytest.approx(1e-2)


def test_fgm_adds_the_adversarial_gradient_and_restores_the_embeddings() -> None:
    tiny = load_encoder("tiny-random", seed=0)
    torch.manual_seed(0)
    model = CriteriaEvidenceModel(tiny.model, ModelConfig(encoder="tiny-random", head_hidden=8, dropout=0.0))
    batch = tokenized(tiny, ["I feel sad. It rains.", "I cannot sleep. The end."])
    cfg = TrainConfig(fgm_epsilon=1.0)
    model.loss(model(batch), batch, 0.5).backward()
    clean = model.criteria_head.net[1].weight.grad.clone()
    embeddings = model.encoder.get_input_embeddings().weight.detach().clone()
    cpu = resolve_runtime(cfg)
    FGM(model, cfg).attack(model, batch, 1, cpu, cpu.grad_scaler())
    assert torch.equal(model.encoder.get_input_embeddings().weight, embeddings)
    assert not torch.allclose(model.criteria_head.net[1].weight.grad, clean)


def test_fgm_equals_the_loss_at_embeddings_pushed_along_their_gradient_and_skips_a_zero_one() -> None:
    tiny = load_encoder("tiny-random", seed=0)
    torch.manual_seed(0)
    model = CriteriaEvidenceModel(tiny.model, ModelConfig(encoder="tiny-random", head_hidden=8, dropout=0.0))
    model.eval()  # no dropout in the encoder either: every pass below sees the same network
    batch = tokenized(tiny, ["I feel sad. It rains.", "I cannot sleep. The end."])
    cfg = TrainConfig(fgm_epsilon=0.5)
    cpu = resolve_runtime(cfg)
    embedding = model.encoder.get_input_embeddings().weight
    model.loss(model(batch), batch, 0.5).backward()
    clean = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    with torch.no_grad():  # the reference: the whole matrix pushed by epsilon * g / ||g||, by hand
        original = embedding.detach().clone()
        embedding += 0.5 * embedding.grad / torch.linalg.vector_norm(embedding.grad)
    model.zero_grad()
    model.loss(model(batch), batch, 0.5).backward()
    adversarial = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    with torch.no_grad():
        embedding.copy_(original)
    model.zero_grad()
    model.loss(model(batch), batch, 0.5).backward()
    FGM(model, cfg).attack(model, batch, 1, cpu, cpu.grad_scaler())
    for name, grad in clean.items():
        torch.testing.assert_close(dict(model.named_parameters())[name].grad, grad + adversarial[name])
    assert torch.equal(embedding, original)

    model.zero_grad()
    model.loss(model(batch), batch, 0.5).backward()
    embedding.grad.zero_()  # nothing to push along: the second loss adds nothing
    before = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    FGM(model, cfg).attack(model, batch, 1, cpu, cpu.grad_scaler())
    for name, grad in before.items():
        assert torch.equal(dict(model.named_parameters())[name].grad, grad)


def test_impossible_or_unknown_model_zoo_settings_are_rejected() -> None:
    config = with_values(
        Config(),
        {
            "model.coupling": "evidence_informed",
            "train.evidence_loss_weight": 0.0,
            "model.evidence_head": "crf",
            "train.layer_lr_decay": 0.0,
            "hpo.search_space": {"train": {"criteria_loss": {"type": "categorical", "choices": ["bce", "dice"]}}},
        },
    )
    problems = "\n".join(validate(config))
    assert "train.evidence_loss_weight > 0" in problems
    assert "model.evidence_head: one of token, start_end_linear" in problems
    assert "train.layer_lr_decay" in problems
    assert "['dice'] not among" in problems
    assert validate(dataclasses.replace(Config())) == []
