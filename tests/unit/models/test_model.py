import pytest
import torch

from redsm5_hpo.config.schema import ModelConfig
from redsm5_hpo.models.encoder import load_encoder
from redsm5_hpo.models.errors import EncoderLoadError
from redsm5_hpo.models.evidence_heads import TokenHead
from redsm5_hpo.models.heads import pool
from redsm5_hpo.models.model import CriteriaEvidenceModel, ModelOutput
from tests.helpers.batches import tokenized


def test_mean_pooling_ignores_padding() -> None:
    hidden = torch.tensor([[[1.0, 1.0], [3.0, 3.0], [100.0, 100.0]]])  # (1, 3, 2)
    mask = torch.tensor([[1, 1, 0]])
    assert torch.equal(pool(hidden, mask, "mean"), torch.tensor([[2.0, 2.0]]))
    assert torch.equal(pool(hidden, mask, "cls"), torch.tensor([[1.0, 1.0]]))


@pytest.mark.parametrize("pooling", ["mean", "cls"])
def test_model_returns_typed_output_with_shapes(tiny, pooling: str) -> None:
    model = CriteriaEvidenceModel(tiny.model, ModelConfig(encoder="tiny-random", pooling=pooling, head_hidden=8))
    batch = tokenized(tiny, ["I feel sad.", "I can't sleep at night at all."])
    output = model(batch)
    assert isinstance(output, ModelOutput)
    assert output.criteria_logits.shape == (2, 9)
    assert output.evidence_logits.shape == batch["input_ids"].shape
    (output.criteria_logits.sum() + output.evidence_logits.sum()).backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.head_parameters())


def test_evidence_loss_ignores_padded_tokens() -> None:
    logits = torch.tensor([[0.0, 0.0, 50.0]])
    labels = torch.tensor([[0.0, 0.0, 0.0]])
    head = TokenHead(hidden_size=2, dropout=0.0)
    padded, unpadded = (
        head.loss(logits, {"evidence_labels": labels, "attention_mask": torch.tensor([[1, 1, 0]])}),
        head.loss(logits, {"evidence_labels": labels, "attention_mask": torch.ones(1, 3)}),
    )
    assert padded == pytest.approx(torch.log(torch.tensor(2.0)).item())
    assert unpadded > padded


def test_tiny_random_is_deterministic_per_seed() -> None:
    a, b, c = (load_encoder("tiny-random", seed=s).model for s in (1, 1, 2))
    weight = "embeddings.word_embeddings.weight"
    assert torch.equal(a.state_dict()[weight], b.state_dict()[weight])
    assert not torch.equal(a.state_dict()[weight], c.state_dict()[weight])


def test_local_directory_encoder_round_trips(tiny, tmp_path) -> None:
    tiny.model.save_pretrained(tmp_path)
    tiny.tokenizer.save_pretrained(tmp_path)
    loaded = load_encoder(str(tmp_path))
    assert loaded.location == str(tmp_path)
    assert torch.equal(
        loaded.model.state_dict()["embeddings.word_embeddings.weight"],
        tiny.model.state_dict()["embeddings.word_embeddings.weight"],
    )


def test_broken_local_directory_lists_what_it_found(tmp_path) -> None:
    (tmp_path / "notes.txt").write_text("no model here")
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(EncoderLoadError, match=r"notes\.txt"):
        load_encoder(str(tmp_path))


def test_a_hub_miss_offline_fails_at_once_and_explains(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    waits: list[float] = []
    with pytest.raises(EncoderLoadError) as error:
        load_encoder("no-such-org/no-such-encoder", cache_dir=str(tmp_path), sleep=waits.append)
    assert waits == []  # nothing to wait for
    message = str(error.value)
    assert str(tmp_path) in message and "HF_HUB_OFFLINE is set" in message and "bundled:all-MiniLM-L6-v2" in message
    assert "hf download no-such-org/no-such-encoder" in message
