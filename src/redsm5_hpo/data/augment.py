"""Evidence-only augmentation of the train split.

Only evidence sentences are rewritten; every other character of the post stays as it was, and the
evidence spans are recomputed for the new text. Word swap, word deletion and keyboard character noise
come from nlpaug; synonym substitution and synonym insertion use WordNet from the installed
``wordnet-base`` files (nlpaug's own synonym augmenter would need NLTK's downloaded corpus).
Everything is seeded per post, so the same seed gives the same augmented posts.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import random
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

from redsm5_hpo.config.schema import AugmentConfig
from redsm5_hpo.data.corpus import Post
from redsm5_hpo.data.evidence import Span
from redsm5_hpo.data.wordnet import WordNet, load

log = logging.getLogger(__name__)

WORDNET_METHODS = ("synonym", "insert")
WORD = re.compile(r"[A-Za-z][A-Za-z'-]*")
STOPWORDS = frozenset(
    "i me my we you he she it they them the a an and or but is am are was were be been to of in on at".split()  # noqa: SIM905
)

Rewrite = Callable[[str, random.Random], str]


def rewrite_evidence(post: Post, rewrite: Rewrite, probability: float, rng: random.Random, suffix: str) -> Post:
    """A copy of ``post`` whose evidence sentences are each rewritten with ``probability``. Characters
    outside the evidence are copied unchanged; ``evidence`` and ``evidence_by_symptom`` point at the new
    sentences. Overlapping evidence spans are left as they are."""
    spans = sorted({*post.evidence, *(s for spans in post.evidence_by_symptom for s in spans)})
    pieces: list[str] = []
    moved: dict[Span, Span] = {}
    cursor = length = 0
    for start, end in spans:
        if start < cursor:  # overlaps the previous span: keep it, untouched
            continue
        pieces.append(post.text[cursor:start])
        length += start - cursor
        sentence = post.text[start:end]
        if rng.random() < probability:
            sentence = rewrite(sentence, rng).strip() or sentence
        pieces.append(sentence)
        moved[(start, end)] = (length, length + len(sentence))
        length += len(sentence)
        cursor = end
    pieces.append(post.text[cursor:])
    text = "".join(pieces)

    def shift(span: Span) -> Span:
        if span in moved:
            return moved[span]
        before = max((old for old in moved if old[1] <= span[0]), default=None)
        delta = 0 if before is None else moved[before][1] - before[1]
        return span[0] + delta, span[1] + delta

    return dataclasses.replace(
        post,
        post_id=f"{post.post_id}{suffix}",
        text=text,
        evidence=tuple(sorted(shift(s) for s in post.evidence)),
        evidence_by_symptom=tuple(tuple(sorted(shift(s) for s in spans)) for spans in post.evidence_by_symptom),
    )


def augment_posts(posts: list[Post], cfg: AugmentConfig, seed: int) -> list[Post]:
    """``posts`` followed by ``cfg.copies`` augmented copies of every post with evidence; ``posts`` alone
    when no method is configured. Deterministic in (seed, post id, copy)."""
    if not cfg.methods:
        return posts
    rewriters = {name: _rewriter(name, cfg) for name in cfg.methods}
    names = sorted(rewriters)

    def rewrite(sentence: str, rng: random.Random) -> str:
        return rewriters[rng.choice(names)](sentence, rng)

    extra = []
    with _global_rng_preserved():
        for post in posts:
            if not post.evidence:
                continue
            for copy in range(1, cfg.copies + 1):
                rng = random.Random(_seed(seed, post.post_id, copy))
                extra.append(rewrite_evidence(post, rewrite, cfg.probability, rng, f"#aug{copy}"))
    log.info("augmentation: %d train posts + %d augmented copies (%s)", len(posts), len(extra), ", ".join(names))
    return posts + extra


def _seed(seed: int, post_id: str, copy: int) -> int:
    return int.from_bytes(hashlib.sha256(f"{seed}:{post_id}:{copy}".encode()).digest()[:8], "big")


@contextmanager
def _global_rng_preserved() -> Iterator[None]:
    """nlpaug draws from the global ``random`` and numpy generators: reseed them per call, and hand
    them back to training as they were."""
    python_state, numpy_state = random.getstate(), np.random.get_state()
    try:
        yield
    finally:
        random.setstate(python_state)
        np.random.set_state(numpy_state)


def _rewriter(name: str, cfg: AugmentConfig) -> Rewrite:
    if name in WORDNET_METHODS:
        wordnet = load(cfg.wordnet_dir)
        method = substitute if name == "synonym" else insert
        return lambda sentence, rng: method(sentence, wordnet, cfg.word_fraction, rng)
    augmenter = _nlpaug(name, cfg.word_fraction)

    def run(sentence: str, rng: random.Random) -> str:
        random.seed(rng.getrandbits(32))
        np.random.seed(rng.getrandbits(32))
        out = augmenter.augment(sentence)
        return out[0] if isinstance(out, list) else str(out)

    return run


def _nlpaug(name: str, fraction: float) -> Any:
    import nlpaug.augmenter.char as nac  # slow first import: only when augmentation is on
    import nlpaug.augmenter.word as naw

    if name == "swap":
        return naw.RandomWordAug(action="swap", aug_p=fraction)
    if name == "delete":
        return naw.RandomWordAug(action="delete", aug_p=fraction)
    return nac.KeyboardAug(aug_word_p=fraction, include_special_char=False, include_numeric=False)


def _candidates(sentence: str, wordnet: WordNet) -> list[tuple[re.Match[str], list[str]]]:
    found = []
    for match in WORD.finditer(sentence):
        word = match.group()
        if len(word) > 2 and word.lower() not in STOPWORDS:
            synonyms = wordnet.synonyms(word)
            if synonyms:
                found.append((match, synonyms))
    return found


def _like(word: str, synonym: str) -> str:
    return synonym[:1].upper() + synonym[1:] if word[:1].isupper() else synonym


def substitute(sentence: str, wordnet: WordNet, fraction: float, rng: random.Random) -> str:
    """Replace about ``fraction`` of the words (at least one) that have WordNet synonyms by one of them."""
    candidates = _candidates(sentence, wordnet)
    if not candidates:
        return sentence
    count = min(len(candidates), max(1, round(fraction * len(WORD.findall(sentence)))))
    chosen = rng.sample(candidates, count)
    out, cursor = [], 0
    for match, synonyms in sorted(chosen, key=lambda c: c[0].start()):
        out += [sentence[cursor : match.start()], _like(match.group(), rng.choice(synonyms))]
        cursor = match.end()
    return "".join(out) + sentence[cursor:]


def insert(sentence: str, wordnet: WordNet, fraction: float, rng: random.Random) -> str:
    """Insert synonyms of the sentence's own words at random word boundaries (EDA's random insertion)."""
    candidates = _candidates(sentence, wordnet)
    words = WORD.findall(sentence)
    for _ in range(min(len(candidates), max(1, round(fraction * len(words))))):
        word = rng.choice(rng.choice(candidates)[1])
        starts = [m.start() for m in WORD.finditer(sentence)]
        at = rng.randrange(len(starts) + 1)
        if at < len(starts):  # before an existing word
            sentence = f"{sentence[: starts[at]]}{word} {sentence[starts[at] :]}"
        else:  # after the last word, before closing punctuation
            end = len(sentence.rstrip(".!?\"')] "))
            sentence = f"{sentence[:end]} {word}{sentence[end:]}"
    return sentence
