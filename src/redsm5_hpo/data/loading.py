"""Source -> validated posts -> the three splits: what training and evaluation consume."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from redsm5_hpo.config.schema import DataConfig
from redsm5_hpo.data.corpus import CorpusStats, Post, build_posts
from redsm5_hpo.data.errors import DataError
from redsm5_hpo.data.sources import load_release
from redsm5_hpo.data.splits import SPLITS, paper_split_post_ids, split_post_ids

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Corpus:
    splits: dict[str, list[Post]]
    source: str
    revision: str
    stats: CorpusStats
    predefined_splits: bool


def load_corpus(cfg: DataConfig, seed: int) -> Corpus:
    """Load the configured source and split it (or keep its own splits, unless the paper's split is asked
    for)."""
    release = load_release(cfg)
    posts, stats = build_posts(
        release.posts, release.annotations, release.source, cfg.split_column, cfg.fuzzy_threshold
    )
    predefined = any(p.split is not None for p in posts) and cfg.split_protocol != "paper"
    if predefined:
        splits = _predefined(posts, cfg, release.source, release.revision)
    else:
        if cfg.split_protocol == "paper":
            ids = paper_split_post_ids([p.post_id for p in posts], cfg.val_fraction)
            log.info(
                "%s: the published baselines' split (80/20, random_state=42; validation %d posts from the 80%%)",
                release.source,
                len(ids["validation"]),
            )
        else:
            ids = split_post_ids(
                [p.post_id for p in posts], [p.labels for p in posts], cfg.val_fraction, cfg.test_fraction, seed
            )
        by_id = {p.post_id: p for p in posts}
        splits = {name: [by_id[i] for i in ids[name]] for name in SPLITS}
    return Corpus(splits, release.source, release.revision, stats, predefined)


def _predefined(posts: list[Post], cfg: DataConfig, source: str, revision: str) -> dict[str, list[Post]]:
    wanted = {cfg.split_names[name]: name for name in SPLITS}
    found = sorted({str(p.split) for p in posts})
    missing = sorted(set(wanted) - set(found))
    if missing:
        raise DataError(
            f"data source {source!r} (revision {revision}): column {cfg.split_column!r} holds splits {found}, "
            f"required {sorted(wanted)} (missing {missing}). Map the names with "
            "data.split_names={train: ..., validation: ..., test: ...}, or drop the column to split by seed."
        )
    return {name: [p for p in posts if p.split == source_name] for source_name, name in wanted.items()}
