"""Every model choice under CPU autocast in bf16 and fp16, as a GPU runs them by default: forward, loss,
backward and the FGM step give a finite loss and finite gradients."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from redsm5_hpo.config.schema import (
    COUPLING_COMBINES,
    CRITERIA_HEADS,
    CRITERIA_LOSSES,
    EVIDENCE_HEADS,
    EVIDENCE_POOLINGS,
    POOLINGS,
    WINDOW_POOLINGS,
    ModelConfig,
    TrainConfig,
)
from redsm5_hpo.data.formats import Windowing, make_dataset
from redsm5_hpo.devices import Runtime
from redsm5_hpo.models.encoder import load_encoder
from redsm5_hpo.models.losses import CriteriaLoss, LossSettings
from redsm5_hpo.models.model import CriteriaEvidenceModel
from redsm5_hpo.training.adversarial import FGM
from tests.helpers.batches import posts_with_first_sentence_as_evidence

TEXTS = [
    "I feel so sad every day. The weather is fine.",
    "I cannot sleep at night anymore. My dog likes long walks in the park. I ate pasta for dinner. "
    "Nothing is fun now, not even music. I am tired all the time and I cannot focus on my work at all.",
]

CHOICES: list[tuple[str, dict[str, object]]] = [
    *((f"pooling={p}", {"pooling": p}) for p in POOLINGS),
    *((f"criteria_head={h}", {"criteria_head": h}) for h in CRITERIA_HEADS),
    *((f"evidence_head={h}", {"evidence_head": h}) for h in EVIDENCE_HEADS),
    *((f"evidence_informed({p})", {"coupling": "evidence_informed", "evidence_pooling": p}) for p in EVIDENCE_POOLINGS),
    *(
        (
            f"evidence_informed(attention,{c})",
            {"coupling": "evidence_informed", "evidence_pooling": "attention", "coupling_combine": c},
        )
        for c in COUPLING_COMBINES
    ),
    *((f"window_pooling={w}", {"window_pooling": w}) for w in WINDOW_POOLINGS),
    *((f"criteria_loss={loss}", {"criteria_loss": loss}) for loss in CRITERIA_LOSSES),
    ("fgm", {"fgm": True}),
    ("pair", {"pair": True}),
]


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
@pytest.mark.parametrize("choice", [c for _, c in CHOICES], ids=[name for name, _ in CHOICES])
def test_every_choice_trains_under_autocast(tiny, precision: str, choice: dict[str, object]) -> None:
    options = dict(choice)
    fgm, pair, loss_kind = options.pop("fgm", False), options.pop("pair", False), options.pop("criteria_loss", "bce")
    torch.manual_seed(0)
    cfg = ModelConfig(encoder="tiny-random", head_hidden=8, evidence_hidden=8, max_span_tokens=12, **options)
    encoder = load_encoder("tiny-random", seed=0).model  # a fresh copy: the FGM step writes its embeddings
    model = CriteriaEvidenceModel(encoder, cfg, CriteriaLoss(LossSettings(str(loss_kind))), pairs=bool(pair)).train()
    posts = posts_with_first_sentence_as_evidence(TEXTS)
    max_length = 64 if pair else 24  # a pair's window holds the criterion's description too
    dataset = make_dataset(posts, tiny.tokenizer, max_length, "pair" if pair else "multilabel", Windowing(stride=8))
    batch = dataset.collate([dataset[i] for i in range(len(dataset))])
    assert len(batch["input_ids"]) > len(batch["labels"]), "the long post must span several windows"
    runtime = Runtime(torch.device("cpu"), precision, "cpu")
    scaler = runtime.grad_scaler()
    with runtime.compute():
        output = model(batch)
        loss = model.loss(output, batch, evidence_weight=1.0)
    assert loss.dtype == torch.float32 and torch.isfinite(loss), f"{precision} loss {loss}"
    scaler.scale(loss).backward()
    if fgm:
        train = dataclasses.replace(TrainConfig(), fgm_epsilon=1.0)
        FGM(model, train).attack(model, batch, 1, runtime, scaler)
    grads = [p.grad for p in model.parameters() if p.requires_grad and p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)
    assert all(p.dtype == torch.float32 for p in model.parameters())  # weights stay fp32 under autocast
