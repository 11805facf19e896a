"""Evidence heads, the CRF, span decoding and evidence-informed coupling on the tiny encoder."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from redsm5_hpo.config.schema import COUPLING_COMBINES, EVIDENCE_HEADS, EVIDENCE_POOLINGS, ModelConfig
from redsm5_hpo.evaluation.decode import greedy_spans
from redsm5_hpo.models.coupling import EvidenceCoupling
from redsm5_hpo.models.crf import CRF
from redsm5_hpo.models.evidence_heads import balanced_bce, bio_spans
from redsm5_hpo.models.model import CriteriaEvidenceModel
from tests.helpers.batches import tokenized

SHORT = "I feel so sad every day. The weather is fine."
LONG = "I cannot sleep at night anymore. My dog likes long walks in the park. I ate pasta for dinner."


def model_with(tiny, **fields) -> CriteriaEvidenceModel:
    torch.manual_seed(0)
    cfg = ModelConfig(
        encoder="tiny-random", head_hidden=8, evidence_hidden=8, max_span_tokens=12, dropout=0.0, **fields
    )
    return CriteriaEvidenceModel(tiny.model, cfg).eval()


@pytest.mark.parametrize("head", EVIDENCE_HEADS)
def test_every_evidence_head_trains_and_decodes_post_tokens_only(tiny, head: str) -> None:
    model = model_with(tiny, evidence_head=head)
    batch = tokenized(tiny, [SHORT, LONG])
    output = model(batch)
    loss = model.evidence_head.loss(output.evidence_logits, batch)
    assert torch.isfinite(loss) and loss > 0
    loss.backward()
    grads = [p.grad for p in model.evidence_head.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert any(g.abs().sum() > 0 for g in grads)
    scores = model.evidence_head.token_scores(output.evidence_logits, batch)
    assert scores.shape == batch["input_ids"].shape and (scores >= 0).all() and (scores <= 1).all()
    for (starts, ends, values), content in zip(
        model.evidence_head.candidates(output.evidence_logits, batch), batch["content_mask"], strict=True
    ):
        assert len(starts) == len(ends) == len(values)
        assert all(content[s] and content[e] and s <= e for s, e in zip(starts, ends, strict=True))
        assert ((values >= 0) & (values <= 1)).all()


@pytest.mark.parametrize("head", EVIDENCE_HEADS)
def test_padding_changes_no_evidence_output(tiny, head: str) -> None:
    model = model_with(tiny, evidence_head=head)
    alone, padded = tokenized(tiny, [SHORT]), tokenized(tiny, [SHORT, LONG])
    assert padded["input_ids"].shape[1] > alone["input_ids"].shape[1]
    with torch.no_grad():
        first = model.evidence_head.candidates(model(alone).evidence_logits, alone)[0]
        second = model.evidence_head.candidates(model(padded).evidence_logits, padded)[0]
    for a, b in zip(first, second, strict=True):
        np.testing.assert_allclose(a, b, atol=1e-4)


def test_a_post_without_evidence_is_an_all_negative_target(tiny) -> None:
    for head in EVIDENCE_HEADS:
        model = model_with(tiny, evidence_head=head)
        batch = tokenized(tiny, [SHORT])
        batch_without = {k: v.clone() for k, v in batch.items()}
        for key in ("evidence_labels", "start_labels", "end_labels", "bio_labels"):
            batch_without[key].zero_()
        batch_without["evidence_spans"].fill_(-1)
        batch_without["sentence_labels"].clamp_(max=0)
        output = model(batch)
        with_evidence = model.evidence_head.loss(output.evidence_logits, batch)
        without = model.evidence_head.loss(output.evidence_logits, batch_without)
        assert torch.isfinite(without) and without != with_evidence, head


def test_the_biaffine_loss_targets_exactly_the_gold_span_cells(tiny) -> None:
    model = model_with(tiny, evidence_head="biaffine")
    batch = tokenized(tiny, [SHORT, LONG, SHORT])
    batch["evidence_spans"][2].fill_(-1)  # a post without evidence
    out = model(batch).evidence_logits
    targets = torch.zeros_like(out)
    for row, spans in enumerate(batch["evidence_spans"].tolist()):
        for first, last in spans:
            if first >= 0:
                targets[row, first, last] = 1.0
    assert targets[:2].sum() > 0 and targets[2].sum() == 0
    expected = balanced_bce(out, targets, model.evidence_head.valid(batch, out.shape[1]))
    assert torch.equal(model.evidence_head.loss(out, batch), expected)


def brute_force(crf: CRF, emissions: torch.Tensor, length: int) -> tuple[torch.Tensor, list[int], torch.Tensor]:
    """log Z, best path and tag marginals by enumerating every path of ``length`` tags."""
    k = crf.num_tags
    paths = list(itertools.product(range(k), repeat=length))
    scores = []
    for path in paths:
        s = crf.start[path[0]] + crf.end[path[-1]] + sum(emissions[t, path[t]] for t in range(length))
        s = s + sum(crf.transitions[path[t - 1], path[t]] for t in range(1, length))
        scores.append(s)
    scores_t = torch.stack(scores)
    log_z = torch.logsumexp(scores_t, dim=0)
    probs = torch.exp(scores_t - log_z)
    marginals = torch.zeros(length, k)
    for p, path in zip(probs, paths, strict=True):
        for t, tag in enumerate(path):
            marginals[t, tag] += p
    return log_z, list(paths[int(scores_t.argmax())]), marginals


def test_crf_matches_enumeration_of_every_path() -> None:
    torch.manual_seed(3)
    crf = CRF(3)
    with torch.no_grad():
        for p in crf.parameters():
            p.normal_()
    emissions = torch.randn(2, 5, 3)
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]]).bool()
    log_z = crf.log_partition(emissions, mask)
    marginals = crf.marginals(emissions, mask)
    paths = crf.viterbi(emissions, mask)
    for row, length in enumerate((5, 3)):
        expected_z, expected_path, expected_marginals = brute_force(crf, emissions[row], length)
        assert log_z[row].item() == pytest.approx(expected_z.item(), abs=1e-4)
        assert paths[row] == expected_path
        torch.testing.assert_close(marginals[row, :length], expected_marginals, atol=1e-4, rtol=0)
    tags = torch.tensor([paths[0], [*paths[1], 0, 0]])
    assert (crf.log_likelihood(emissions, tags, mask) < 0).all()


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 20), st.integers(0, 6), st.floats(0, 1)), min_size=0, max_size=30),
    st.sampled_from([0.05, 0.2, 0.5, 0.8]),
)
def test_thresholding_after_greedy_decode_equals_decoding_above_the_threshold(candidates, threshold) -> None:
    starts = np.array([c[0] for c in candidates], dtype=int)
    ends = starts + np.array([c[1] for c in candidates], dtype=int)
    scores = np.array([c[2] for c in candidates], dtype=float)
    decoded_once = [s for s in greedy_spans(starts, ends, scores) if s[2] >= threshold]
    above = scores >= threshold
    assert decoded_once == greedy_spans(starts[above], ends[above], scores[above])
    taken = [t for first, last, _ in decoded_once for t in range(first, last + 1)]
    assert len(taken) == len(set(taken))


def test_bio_tags_to_spans() -> None:
    assert bio_spans([0, 1, 2, 2, 0, 2, 2, 1, 1, 0]) == [(1, 3), (5, 6), (7, 7), (8, 8)]
    assert bio_spans([0, 0, 0]) == []
    assert bio_spans([1, 2]) == [(0, 1)]


@pytest.mark.parametrize(("pooling", "combine"), list(itertools.product(EVIDENCE_POOLINGS, COUPLING_COMBINES)))
def test_evidence_informed_criteria_learn_through_the_evidence_head(tiny, pooling: str, combine: str) -> None:
    model = model_with(
        tiny, evidence_head="token", coupling="evidence_informed", evidence_pooling=pooling, coupling_combine=combine
    )
    batch = tokenized(tiny, [SHORT, LONG])
    output = model(batch)
    assert output.criteria_logits.shape == (2, 9)
    output.criteria_logits.pow(2).sum().backward()
    assert model.evidence_head.linear.weight.grad.abs().sum() > 0
    assert f"coupled({pooling},{combine})" in model.architecture_signature()


def test_coupling_ignores_tokens_outside_the_mask() -> None:
    torch.manual_seed(0)
    for pooling in EVIDENCE_POOLINGS:
        coupling = EvidenceCoupling(4, pooling, "sum")
        post, hidden = torch.randn(1, 4), torch.randn(1, 5, 4)
        weights, mask = torch.rand(1, 5), torch.tensor([[1.0, 1.0, 1.0, 0.0, 0.0]])
        changed = hidden.clone()
        changed[:, 3:] = 100.0
        torch.testing.assert_close(coupling(post, hidden, weights, mask), coupling(post, changed, weights, mask))


def test_the_models_loss_weights_the_tasks(tiny) -> None:
    model = model_with(tiny, evidence_head="biaffine")
    batch = tokenized(tiny, [SHORT, LONG])
    output = model(batch)
    criteria = model.criteria_loss(output.criteria_logits, batch["labels"])
    evidence = model.evidence_head.loss(output.evidence_logits, batch)
    assert model.loss(output, batch, 0.3, 2.0).item() == pytest.approx((2 * criteria + 0.3 * evidence).item())
