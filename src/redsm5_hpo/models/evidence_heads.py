"""Evidence-binding heads: which characters of a post are evidence for a symptom.

Every head maps token states to its own output and provides, from that output:
- ``loss``: the head's training loss against the batch's gold evidence;
- ``token_scores``: (B, T) soft evidence weights in [0, 1], used by evidence-informed criteria matching;
- ``candidates``: per post, scored (first token, last token) spans that ``evaluation.decode`` turns into
  the predicted evidence, so one character-level metric compares every head.
A post without evidence is an all-negative target for every head ("no evidence" needs no special case).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from redsm5_hpo.models.activations import activation
from redsm5_hpo.models.crf import CRF

Batch = Mapping[str, torch.Tensor]
Candidates = list[tuple[np.ndarray, np.ndarray, np.ndarray]]


def band_candidates(
    scores: np.ndarray, content: np.ndarray, max_span: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Candidates from a (T, T) matrix of span scores: both ends on post tokens, 0 <= last - first < max_span."""
    length = len(content)
    first, last = np.meshgrid(np.arange(length), np.arange(length), indexing="ij")
    valid = content[:, None] & content[None, :] & (last >= first) & (last - first < max_span)
    return first[valid], last[valid], scores[valid]


def bio_spans(tags: Sequence[int]) -> list[tuple[int, int]]:
    """Maximal runs of B (1) / I (2) tags as inclusive token spans; a B always opens a new span."""
    spans: list[tuple[int, int]] = []
    start = None
    for index, tag in enumerate([*tags, 0]):
        if start is not None and tag != 2:
            spans.append((start, index - 1))
            start = None
        if tag in (1, 2) and start is None:
            start = index
    return spans


def projection(hidden_size: int, width: int, outputs: int, dropout: float, act: str) -> nn.Module:
    """Linear (``width`` 0) or one-hidden-layer MLP from token states to ``outputs`` scores."""
    if width == 0:
        return nn.Sequential(nn.Dropout(dropout), nn.Linear(hidden_size, outputs))
    return nn.Sequential(
        nn.Dropout(dropout),
        nn.Linear(hidden_size, width),
        activation(act),
        nn.Dropout(dropout),
        nn.Linear(width, outputs),
    )


def balanced_bce(logits: torch.Tensor, targets: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Mean BCE over the valid positives plus mean BCE over the valid negatives, halved: rare positives
    (span starts, span cells) weigh as much as the many negatives."""
    per_item = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
    valid = valid.to(per_item.dtype)
    positive = valid * targets
    negative = valid * (1 - targets)
    pos = (per_item * positive).sum() / positive.sum().clamp(min=1.0)
    neg = (per_item * negative).sum() / negative.sum().clamp(min=1.0)
    return torch.where(positive.sum() > 0, (pos + neg) / 2, neg)  # no Python branch on a GPU value


class EvidenceHead(nn.Module):
    """What every evidence head provides besides ``forward(hidden, batch)``."""

    def loss(self, out: torch.Tensor, batch: Batch) -> torch.Tensor:
        raise NotImplementedError

    def token_scores(self, out: torch.Tensor, batch: Batch) -> torch.Tensor:
        raise NotImplementedError

    def candidates(self, out: torch.Tensor, batch: Batch) -> Candidates:
        raise NotImplementedError


def _rows(tensor: torch.Tensor) -> list[np.ndarray]:
    """A batch tensor as one numpy row per example (floating point as float32: numpy has no bf16)."""
    tensor = tensor.detach()
    return list((tensor.float() if tensor.is_floating_point() else tensor).cpu().numpy())


class TokenHead(EvidenceHead):
    """One logit per token: is it inside an evidence sentence? Candidates are single tokens."""

    def __init__(self, hidden_size: int, dropout: float, **_: object):
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.linear = nn.Linear(hidden_size, 1)

    def forward(self, hidden: torch.Tensor, batch: Batch) -> torch.Tensor:
        return self.linear(self.dropout(hidden)).squeeze(-1)  # (B, T)

    def loss(self, out: torch.Tensor, batch: Batch) -> torch.Tensor:
        per_token = F.binary_cross_entropy_with_logits(out, batch["evidence_labels"], reduction="none")
        mask = batch["attention_mask"].to(per_token.dtype)
        return (per_token * mask).sum() / mask.sum().clamp(min=1.0)

    def token_scores(self, out: torch.Tensor, batch: Batch) -> torch.Tensor:
        return torch.sigmoid(out)

    def candidates(self, out: torch.Tensor, batch: Batch) -> Candidates:
        result = []
        for probs, content in zip(_rows(torch.sigmoid(out)), _rows(batch["content_mask"]), strict=True):
            index = np.flatnonzero(content)
            result.append((index, index, probs[index]))
        return result


class StartEndHead(EvidenceHead):
    """QA-style start and end logits per token (linear, or an MLP when ``width`` > 0), each trained as a
    balanced binary target so a post may hold several spans or none. A span scores
    sqrt(p_start * p_end), up to ``max_span`` tokens long."""

    def __init__(self, hidden_size: int, dropout: float, width: int, max_span: int, act: str, **_: object):
        super().__init__()
        self.proj = projection(hidden_size, width, 2, dropout, act)
        self.max_span = max_span

    def forward(self, hidden: torch.Tensor, batch: Batch) -> torch.Tensor:
        return self.proj(hidden)  # (B, T, 2)

    def loss(self, out: torch.Tensor, batch: Batch) -> torch.Tensor:
        content = batch["content_mask"]
        return (
            balanced_bce(out[..., 0], batch["start_labels"], content)
            + balanced_bce(out[..., 1], batch["end_labels"], content)
        ) / 2

    def token_scores(self, out: torch.Tensor, batch: Batch) -> torch.Tensor:
        """Inside a span: starts seen so far minus ends seen before this token, clipped to [0, 1]."""
        probs = torch.sigmoid(out) * batch["content_mask"].unsqueeze(-1)
        starts, ends = probs[..., 0], probs[..., 1]
        return (starts.cumsum(dim=1) - ends.cumsum(dim=1) + ends).clamp(0.0, 1.0)

    def candidates(self, out: torch.Tensor, batch: Batch) -> Candidates:
        probs = _rows(torch.sigmoid(out))
        result = []
        for p, content in zip(probs, _rows(batch["content_mask"]), strict=True):
            scores = np.sqrt(np.outer(p[:, 0], p[:, 1]))
            result.append(band_candidates(scores, content.astype(bool), self.max_span))
        return result


class BiaffineHead(EvidenceHead):
    """Start and end token representations (two MLPs) scored pairwise by a biaffine form,
    ``[s_i; 1]^T U [e_j; 1]``, for every span of at most ``max_span`` tokens; balanced BCE against the
    gold spans."""

    def __init__(self, hidden_size: int, dropout: float, width: int, max_span: int, act: str, **_: object):
        super().__init__()
        width = width or hidden_size
        self.start = projection(hidden_size, width, width, dropout, act)
        self.end = projection(hidden_size, width, width, dropout, act)
        self.bilinear = nn.Parameter(torch.zeros(width + 1, width + 1))
        nn.init.xavier_uniform_(self.bilinear)
        self.max_span = max_span

    def forward(self, hidden: torch.Tensor, batch: Batch) -> torch.Tensor:
        ones = hidden.new_ones(*hidden.shape[:2], 1)
        starts = torch.cat([self.start(hidden), ones], dim=-1)  # (B, T, W+1)
        ends = torch.cat([self.end(hidden), ones], dim=-1)
        return torch.einsum("bip,pq,bjq->bij", starts, self.bilinear, ends)  # (B, T, T)

    def valid(self, batch: Batch, length: int) -> torch.Tensor:
        content = batch["content_mask"]
        positions = torch.arange(length, device=content.device)
        offset = positions.view(1, -1) - positions.view(-1, 1)  # [i, j] = j - i
        band = (offset >= 0) & (offset < self.max_span)
        return content.unsqueeze(2) & content.unsqueeze(1) & band

    def loss(self, out: torch.Tensor, batch: Batch) -> torch.Tensor:
        spans = batch["evidence_spans"]  # (B, S, 2); a first token < 0 pads the slot
        positions = torch.arange(out.shape[1], device=out.device)
        first = spans[..., 0, None, None] == positions.view(1, 1, -1, 1)  # (B, S, T, 1)
        last = spans[..., 1, None, None] == positions.view(1, 1, 1, -1)  # (B, S, 1, T)
        # elementwise, not a boolean index: no data-dependent shape (no GPU read to size it), deterministic
        targets = (first & last).any(dim=1).to(out.dtype)  # (B, T, T): 1 at each gold span's cell
        return balanced_bce(out, targets, self.valid(batch, out.shape[1]))

    def token_scores(self, out: torch.Tensor, batch: Batch) -> torch.Tensor:
        """Best span containing each token: max over first <= t <= last of the span probability."""
        probs = torch.sigmoid(out) * self.valid(batch, out.shape[1])  # (B, first, last)
        # best over last >= t for each first (reverse cumulative max), then over first <= t
        best_to_end = probs.flip(2).cummax(dim=2).values.flip(2)  # (B, first, t)
        positions = torch.arange(out.shape[1], device=out.device)
        first_le_t = positions.view(-1, 1) <= positions.view(1, -1)
        return (best_to_end * first_le_t).max(dim=1).values

    def candidates(self, out: torch.Tensor, batch: Batch) -> Candidates:
        return [
            band_candidates(scores, content.astype(bool), self.max_span)
            for scores, content in zip(_rows(torch.sigmoid(out)), _rows(batch["content_mask"]), strict=True)
        ]


class CRFHead(EvidenceHead):
    """BIO tags (O, B, I) from per-token emissions under a linear-chain CRF, trained by its negative
    log-likelihood per token. Decoding is Viterbi; a span's score is the mean marginal probability of
    its tokens being inside evidence (B or I)."""

    def __init__(self, hidden_size: int, dropout: float, width: int, act: str, **_: object):
        super().__init__()
        self.emissions = projection(hidden_size, width, 3, dropout, act)
        self.crf = CRF(3)

    def forward(self, hidden: torch.Tensor, batch: Batch) -> torch.Tensor:
        return self.emissions(hidden)  # (B, T, 3)

    def loss(self, out: torch.Tensor, batch: Batch) -> torch.Tensor:
        mask = batch["attention_mask"].bool()
        return -self.crf.log_likelihood(out, batch["bio_labels"], mask).sum() / mask.sum().clamp(min=1)

    def token_scores(self, out: torch.Tensor, batch: Batch) -> torch.Tensor:
        return 1.0 - torch.softmax(out, dim=-1)[..., 0]

    def candidates(self, out: torch.Tensor, batch: Batch) -> Candidates:
        mask = batch["attention_mask"].bool()
        inside = _rows(1.0 - self.crf.marginals(out, mask)[..., 0])
        result = []
        for path, probs, content in zip(self.crf.viterbi(out, mask), inside, _rows(batch["content_mask"]), strict=True):
            tags = [tag if content[i] else 0 for i, tag in enumerate(path)]
            spans = bio_spans(tags)
            starts = np.array([s for s, _ in spans], dtype=int)
            ends = np.array([e for _, e in spans], dtype=int)
            scores = np.array([probs[s : e + 1].mean() for s, e in spans], dtype=float)
            result.append((starts, ends, scores))
        return result


class SentenceRerankerHead(EvidenceHead):
    """Scores each sentence of the post in the context of the whole post: an MLP over
    [sentence; post; sentence * post], where a sentence is the mean of its token states and the post is
    the first token's state. Candidates are whole sentences."""

    def __init__(self, hidden_size: int, dropout: float, width: int, act: str, **_: object):
        super().__init__()
        self.scorer = projection(3 * hidden_size, width, 1, dropout, act)

    def forward(self, hidden: torch.Tensor, batch: Batch) -> torch.Tensor:
        ids = batch["sentence_ids"]  # (B, T)
        count = batch["sentence_labels"].shape[1]
        member = (ids.unsqueeze(1) == torch.arange(count, device=ids.device).view(1, -1, 1)).to(hidden.dtype)
        sentences = member @ hidden / member.sum(dim=2, keepdim=True).clamp(min=1.0)  # (B, S, H)
        post = hidden[:, :1].expand_as(sentences)
        return self.scorer(torch.cat([sentences, post, sentences * post], dim=-1)).squeeze(-1)  # (B, S)

    def loss(self, out: torch.Tensor, batch: Batch) -> torch.Tensor:
        labels = batch["sentence_labels"]
        valid = (labels >= 0).to(out.dtype)
        per_sentence = F.binary_cross_entropy_with_logits(out, labels.clamp(min=0.0), reduction="none")
        return (per_sentence * valid).sum() / valid.sum().clamp(min=1.0)

    def token_scores(self, out: torch.Tensor, batch: Batch) -> torch.Tensor:
        ids = batch["sentence_ids"]
        probs = torch.sigmoid(out).gather(1, ids.clamp(min=0))
        return probs * (ids >= 0).to(probs.dtype)

    def candidates(self, out: torch.Tensor, batch: Batch) -> Candidates:
        result = []
        for probs, bounds, labels in zip(
            _rows(torch.sigmoid(out)), _rows(batch["sentence_bounds"]), _rows(batch["sentence_labels"]), strict=True
        ):
            real = labels >= 0
            result.append((bounds[real, 0], bounds[real, 1], probs[real]))
        return result


EVIDENCE_HEAD_CLASSES: dict[str, type[EvidenceHead]] = {
    "token": TokenHead,
    "start_end_linear": StartEndHead,
    "start_end_mlp": StartEndHead,
    "biaffine": BiaffineHead,
    "bio_crf": CRFHead,
    "sentence_reranker": SentenceRerankerHead,
}


def evidence_head(kind: str, hidden_size: int, dropout: float, width: int, max_span: int, act: str) -> EvidenceHead:
    """``width`` is the hidden width of the head's MLPs; ``start_end_linear`` always uses none."""
    if kind not in EVIDENCE_HEAD_CLASSES:
        raise ValueError(f"evidence head {kind!r}: one of {', '.join(EVIDENCE_HEAD_CLASSES)}")
    width = 0 if kind == "start_end_linear" else width
    return EVIDENCE_HEAD_CLASSES[kind](
        hidden_size=hidden_size, dropout=dropout, width=width, max_span=max_span, act=act
    )
