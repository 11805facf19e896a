"""One loading path for every source, through the ``datasets`` library.

- ``sample``: the bundled synthetic release (``redsm5_hpo/data/sample``).
- a local directory holding ``redsm5_posts.csv`` and ``redsm5_annotations.csv``.
- a Hugging Face dataset id, pinned to ``revision``.

Local sources are identified by a SHA-256 of their two files, hub sources by the resolved
commit, so every run records exactly which data it read.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from redsm5_hpo.config.schema import DataConfig
from redsm5_hpo.data.csv_checks import csv_problem
from redsm5_hpo.data.errors import DataError
from redsm5_hpo.hub_reach import unreachable_reason

log = logging.getLogger(__name__)

SAMPLE_DIR = Path(__file__).resolve().parent / "sample"
POST_COLUMNS = ("post_id", "text")
ANNOTATION_COLUMNS = ("post_id", "sentence_id", "sentence_text", "DSM5_symptom", "status", "explanation")


@dataclass(frozen=True)
class Release:
    posts: list[dict[str, Any]]
    annotations: list[dict[str, Any]]
    source: str
    """What was asked for: ``sample``, a path or a hub id."""
    revision: str
    """``sha256:<hex>`` of local files, or the hub commit the revision resolved to."""


def load_release(cfg: DataConfig) -> Release:
    """Read posts and annotations from the configured source and check their columns."""
    if cfg.source == "sample" or Path(cfg.source).expanduser().is_dir():
        directory = SAMPLE_DIR if cfg.source == "sample" else Path(cfg.source).expanduser()
        files = _local_files(directory, cfg)
        contents = {table: path.read_bytes() for table, path in files.items()}  # read once: hashed, checked
        revision = "sha256:" + _content_hash(contents.values())
        for table, path in files.items():
            problem = csv_problem(contents[table])
            if problem:
                raise DataError(f"data source {cfg.source!r} (revision {revision}), {table} file {path}: {problem}")
        posts, annotations = (_load("csv", cfg, revision, data_files=str(files[t])) for t in ("posts", "annotations"))
    else:
        revision = resolve_hub_revision(cfg.source, cfg.revision)
        posts, annotations = (
            _load(cfg.source, cfg, revision, data_files=name, revision=cfg.revision)
            for name in (cfg.posts_file, cfg.annotations_file)
        )
    _require_columns(cfg.source, revision, "posts", cfg.posts_file, POST_COLUMNS, posts.column_names)
    _require_columns(
        cfg.source, revision, "annotations", cfg.annotations_file, ANNOTATION_COLUMNS, annotations.column_names
    )
    return Release(posts.to_list(), annotations.to_list(), cfg.source, revision)


def _local_files(directory: Path, cfg: DataConfig) -> dict[str, Path]:
    files = {"posts": directory / cfg.posts_file, "annotations": directory / cfg.annotations_file}
    missing = [p.name for p in files.values() if not p.is_file()]
    if missing:
        found = sorted(p.name for p in directory.iterdir()) if directory.is_dir() else []
        raise DataError(
            f"data source {directory}: missing {missing}; found {found or 'nothing'}. "
            f"Put the release files {cfg.posts_file} and {cfg.annotations_file} there, or point "
            "data.posts_file / data.annotations_file at the names you have."
        )
    return files


def _content_hash(contents: Iterable[bytes]) -> str:
    digest = hashlib.sha256()
    for data in contents:
        digest.update(data)
    return digest.hexdigest()


def resolve_hub_revision(repo_id: str, revision: str) -> str:
    """The commit ``revision`` points to on the hub; offline, the revision as given (with a warning)."""
    from huggingface_hub import HfApi

    unreachable = unreachable_reason()
    if unreachable:  # no minutes of retries: the datasets cache answers, or load_dataset says what is missing
        log.warning("the hub cannot be reached (%s); recording %s@%s as given", unreachable, repo_id, revision)
        return revision
    try:
        info = HfApi().dataset_info(repo_id, revision=revision)
    except Exception as e:  # offline, unknown repo, auth: load_dataset below gives the precise error
        log.warning(
            "could not resolve %s@%s on the hub (%s); recording the revision as given",
            repo_id,
            revision,
            type(e).__name__,
        )
        return revision
    return str(info.sha or revision)


def _load(path: str, cfg: DataConfig, recorded_revision: str, **kwargs: Any) -> Any:
    """One CSV table through ``datasets``, every column read as text (empty fields as ""): ids keep their
    leading zeros and a bad ``status`` is a value to report, not a parser failure."""
    import datasets
    from datasets.exceptions import DatasetGenerationError

    source = cfg.source
    columns = (*POST_COLUMNS, *ANNOTATION_COLUMNS, cfg.split_column)
    as_text = {"converters": dict.fromkeys(columns, str), "keep_default_na": False, "na_filter": False}
    try:
        return datasets.load_dataset(path, split="train", **kwargs, **as_text)
    except DatasetGenerationError as e:  # the parser failed: say on what, not where in datasets
        cause = _root_cause(e)
        raise DataError(
            f"cannot read {kwargs.get('data_files')} of data source {source!r} (revision {recorded_revision}): "
            f"{type(cause).__name__}: {cause}. The file must be UTF-8 CSV with the release's header; fix or "
            "re-export it."
        ) from e
    except (FileNotFoundError, ValueError, ConnectionError, OSError) as e:
        raise DataError(
            f"cannot load data source {source!r} (revision {recorded_revision}): {e}. "
            "For a hub id, check the id and revision, run `hf auth login` for gated data, or download it "
            "once with network access (the datasets cache is reused offline). For local data pass a directory "
            "with the two release CSVs: data.source=/path/to/redsm5."
        ) from e


def _root_cause(error: BaseException) -> BaseException:
    while error.__cause__ is not None or error.__context__ is not None:
        error = error.__cause__ or error.__context__  # type: ignore[assignment]
    return error


def _require_columns(
    source: str, revision: str, table: str, filename: str, required: tuple[str, ...], found: list[str]
) -> None:
    missing = [c for c in required if c not in found]
    if missing:
        raise DataError(
            f"data source {source!r} (revision {revision}), {table} file {filename}: missing column(s) {missing}; "
            f"required {list(required)}, found {found}. Rename the columns to the ReDSM5 release schema."
        )
