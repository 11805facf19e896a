"""A linear-chain CRF in torch: log-likelihood, marginals (forward-backward) and Viterbi decoding.

Sequences are left-aligned: ``mask`` (B, T) is True on a prefix of each row, and the first position
of every row is real.
"""

from __future__ import annotations

import torch
from torch import nn


class CRF(nn.Module):
    def __init__(self, num_tags: int):
        super().__init__()
        self.num_tags = num_tags
        self.start = nn.Parameter(torch.zeros(num_tags))
        self.end = nn.Parameter(torch.zeros(num_tags))
        self.transitions = nn.Parameter(torch.zeros(num_tags, num_tags))
        """``transitions[i, j]``: score of tag j following tag i."""

    def log_likelihood(self, emissions: torch.Tensor, tags: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """emissions (B, T, K), tags (B, T), mask (B, T) -> (B,) log p(tags | emissions)."""
        return self._gold_score(emissions, tags, mask) - self.log_partition(emissions, mask)

    def log_partition(self, emissions: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return torch.logsumexp(self._alphas(emissions, mask)[-1] + self.end, dim=1)

    def marginals(self, emissions: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """(B, T, K): probability of each tag at each position (forward-backward)."""
        alphas = torch.stack(self._alphas(emissions, mask), dim=1)  # (B, T, K)
        betas = torch.stack(self._betas(emissions, mask), dim=1)
        log_z = torch.logsumexp(alphas[:, -1] + self.end, dim=1)
        return torch.exp(alphas + betas - log_z[:, None, None])

    @torch.no_grad()
    def viterbi(self, emissions: torch.Tensor, mask: torch.Tensor) -> list[list[int]]:
        """The most likely tag sequence of each row, as long as the row's mask."""
        mask = mask.bool()
        score = self.start + emissions[:, 0]  # (B, K)
        pointers = []
        for t in range(1, emissions.shape[1]):
            candidates = score.unsqueeze(2) + self.transitions.unsqueeze(0)  # (B, K_prev, K)
            best, pointer = candidates.max(dim=1)
            score = torch.where(mask[:, t, None], best + emissions[:, t], score)
            pointers.append(pointer)
        last = (score + self.end).argmax(dim=1)  # (B,)
        # backtracking indexes one pointer per token: on the CPU, moved there once per batch (not a GPU read
        # per token)
        lengths, last_tags = mask.sum(dim=1).tolist(), last.tolist()
        back = torch.stack(pointers, dim=1).cpu().numpy() if pointers else None  # (B, T - 1, K)
        paths = []
        for row, (length, tag) in enumerate(zip(lengths, last_tags, strict=True)):
            path = [tag]
            for t in range(length - 1, 0, -1):
                tag = int(back[row, t - 1, tag])  # type: ignore[index]  # length > 1: there are pointers
                path.append(tag)
            paths.append(path[::-1])
        return paths

    def _gold_score(self, emissions: torch.Tensor, tags: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        mask_f = mask.to(emissions.dtype)
        emitted = emissions.gather(2, tags.unsqueeze(2)).squeeze(2)  # (B, T)
        score = self.start[tags[:, 0]] + (emitted * mask_f).sum(dim=1)
        score = score + (self.transitions[tags[:, :-1], tags[:, 1:]] * mask_f[:, 1:]).sum(dim=1)
        last = mask.long().sum(dim=1) - 1
        return score + self.end[tags.gather(1, last.unsqueeze(1)).squeeze(1)]

    def _alphas(self, emissions: torch.Tensor, mask: torch.Tensor) -> list[torch.Tensor]:
        """alpha_t (B, K): log-sum of the scores of every prefix ending in each tag at t (held past the end)."""
        mask = mask.bool()
        alphas = [self.start + emissions[:, 0]]
        for t in range(1, emissions.shape[1]):
            step = torch.logsumexp(alphas[-1].unsqueeze(2) + self.transitions.unsqueeze(0), dim=1) + emissions[:, t]
            alphas.append(torch.where(mask[:, t, None], step, alphas[-1]))
        return alphas

    def _betas(self, emissions: torch.Tensor, mask: torch.Tensor) -> list[torch.Tensor]:
        """beta_t (B, K): log-sum of the scores of every suffix after t, given each tag at t."""
        mask = mask.bool()
        end = self.end.expand(emissions.shape[0], -1)
        betas = [end]
        for t in range(emissions.shape[1] - 2, -1, -1):
            following = emissions[:, t + 1] + betas[0]  # (B, K_next)
            step = torch.logsumexp(self.transitions.unsqueeze(0) + following.unsqueeze(1), dim=2)
            betas.insert(0, torch.where(mask[:, t + 1, None], step, end))
        return betas
