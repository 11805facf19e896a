"""A trained model for use after the study: load it (a study's best, a checkpoint or an exported folder) and
run it on new posts (``redsm5-hpo predict``)."""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from safetensors.torch import load_file

from redsm5_hpo.atomic_files import write_text_atomic
from redsm5_hpo.checkpoints.errors import CheckpointError
from redsm5_hpo.checkpoints.loading import best_first, load_first_valid
from redsm5_hpo.checkpoints.store import CheckpointStore, StoredCheckpoint
from redsm5_hpo.config.loading import config_from_dict
from redsm5_hpo.config.schema import Config
from redsm5_hpo.data.corpus import Post
from redsm5_hpo.data.evidence import sentence_spans
from redsm5_hpo.data.formats import Windowing, make_dataset
from redsm5_hpo.devices import Runtime, resolve_runtime
from redsm5_hpo.evaluation.predict import predict
from redsm5_hpo.evaluation.thresholds import as_vector
from redsm5_hpo.hpo.errors import StudyError
from redsm5_hpo.labels import SYMPTOMS
from redsm5_hpo.layout import StudyDir, TrialDir
from redsm5_hpo.models.model import CriteriaEvidenceModel
from redsm5_hpo.pipeline.builders import build_model
from redsm5_hpo.pipeline.services import trial_stores
from redsm5_hpo.pipeline.study_record import find_study_dir

log = logging.getLogger(__name__)

EXPORT_KEY = "redsm5_hpo"
"""Key of the exported folder's ``config.json`` that holds what the heads need (``commands.export``)."""
HEADS_FILE = "heads.safetensors"
DEFAULT_THRESHOLD = 0.5


@dataclass
class LoadedModel:
    model: CriteriaEvidenceModel
    tokenizer: Any
    config: Config
    """The configuration it was trained with (data settings decide how posts are read)."""
    thresholds: dict[str, Any]
    """``{"criteria": {symptom: t}, "evidence": t}``, calibrated on validation."""
    runtime: Runtime
    source: Path
    """The checkpoint or exported folder the weights came from."""
    report: dict[str, Any] | None = None
    """The study report, when the model is a study's best."""


def load_model(
    config: Config, study: str | None = None, checkpoint: Path | None = None, device: str | None = None
) -> LoadedModel:
    """``checkpoint``: a checkpoint directory (``trial_<id>/checkpoints/epoch_NNNN``) or a folder written by
    ``redsm5-hpo export``; else the best model of ``study`` (default: the newest study under
    ``experiments_dir``). A checkpoint that fails verification falls back to the trial's next valid one,
    as the test evaluation does."""
    if checkpoint is not None:
        checkpoint = Path(checkpoint)
        if (checkpoint / "config.json").is_file():
            return _load_export(checkpoint, device)
        if not (checkpoint / "manifest.json").is_file():
            raise CheckpointError(
                f"{checkpoint} is neither a checkpoint (no manifest.json) nor an exported model (no config.json); "
                "give a trial_<id>/checkpoints/epoch_NNNN directory or a folder written by `redsm5-hpo export`"
            )
        trial_dir = checkpoint.parent.parent
        store = CheckpointStore(checkpoint.parent)
        return _load_trial(trial_dir, store, [str(checkpoint.resolve())], _trial_thresholds(trial_dir), device, None)
    study_dir = find_study_dir(config, study)
    files = StudyDir(study_dir)
    if not files.report_path.is_file():
        raise StudyError(
            f"study {study_dir.name} has no report yet (it is running or was stopped): finish it with "
            f"`{files.command('resume')}`, or give a checkpoint with --checkpoint"
        )
    report = files.read_report()
    references = list(report["checkpoint_references"])
    if not references:
        raise StudyError(f"the report of study {study_dir.name} references no checkpoint")
    stores = trial_stores(config, study_dir.parent)
    trial = stores.trial(Path(references[0]).parent.parent)
    return _load_trial(trial.path, stores.store(trial), references, report.get("thresholds") or {}, device, report)


def _trial_thresholds(trial_dir: Path) -> dict[str, Any]:
    trial = TrialDir(trial_dir)
    if trial.report_path.is_file():
        return trial.read_report().get("thresholds") or {}
    log.warning(
        "no %s in %s: every decision uses the threshold %.1f", trial.report_path.name, trial_dir, DEFAULT_THRESHOLD
    )
    return {}


def _load_trial(
    trial_dir: Path,
    store: CheckpointStore,
    references: list[str],
    thresholds: dict[str, Any],
    device: str | None,
    report: dict | None,
) -> LoadedModel:
    trial = TrialDir(trial_dir)
    if not trial.config_path.is_file():
        raise CheckpointError(
            f"{trial_dir} has no {trial.config_path.name}: the checkpoint's trial directory is incomplete"
        )
    config = trial.read_config()
    runtime = resolve_runtime(config.train, device)
    available = best_first(store.list())
    referenced = {Path(r).name for r in references}  # a reference is the checkpoint's path when it was written
    wanted = [c for c in available if c.path.name in referenced]
    candidates: list[StoredCheckpoint] = wanted + [c for c in available if c not in wanted]
    model, tokenizer = build_model(config, None, runtime)
    loaded = load_first_valid(candidates, model, model.architecture_signature())
    log.info("model: %s (epoch %d) on %s", loaded.path, loaded.epoch, runtime.name)
    return LoadedModel(model.eval(), tokenizer, config, thresholds, runtime, loaded.path, report)


def _load_export(folder: Path, device: str | None) -> LoadedModel:
    meta = json.loads((folder / "config.json").read_text(encoding="utf-8")).get(EXPORT_KEY)
    if not isinstance(meta, dict):
        raise CheckpointError(
            f"{folder}/config.json has no {EXPORT_KEY!r} entry: it is a plain Hugging Face model, not one written "
            "by `redsm5-hpo export`"
        )
    config = config_from_dict(meta["config"])
    config = dataclasses.replace(config, model=dataclasses.replace(config.model, encoder=str(folder.resolve())))
    runtime = resolve_runtime(config.train, device)
    model, tokenizer = build_model(config, None, runtime)
    if model.architecture_signature() != meta["architecture"]:
        raise CheckpointError(
            f"{folder}: its heads fit {meta['architecture']}, the model built from its config is "
            f"{model.architecture_signature()}"
        )
    heads = load_file(str(folder / HEADS_FILE), device=str(runtime.device))
    missing, unexpected = model.load_state_dict(heads, strict=False)
    problems = [k for k in missing if not k.startswith("encoder.")] + list(unexpected)
    if problems:
        raise CheckpointError(f"{folder}/{HEADS_FILE} does not fit the model: {problems[:5]}")
    log.info("model: exported folder %s on %s", folder, runtime.name)
    return LoadedModel(model.eval(), tokenizer, config, meta.get("thresholds") or {}, runtime, folder)


def predict_posts(loaded: LoadedModel, posts: list[Post], progress: bool = True) -> list[dict[str, Any]]:
    """Per post: the nine probabilities, the decisions at the calibrated thresholds, and the evidence spans
    that reach the evidence threshold (character offsets, score, the sentence they start in). Posts longer
    than ``data.max_length`` are read as training read them (``data.long_posts``)."""
    d = loaded.config.data
    windows = Windowing(d.stride, d.max_windows) if d.long_posts == "windows" else None
    dataset = make_dataset(posts, loaded.tokenizer, d.max_length, d.input_format, windows)
    predictions = predict(loaded.model, dataset, loaded.config.train, loaded.runtime, progress=progress)
    cutoffs = as_vector(loaded.thresholds.get("criteria") or {})
    evidence_cutoff = float(loaded.thresholds.get("evidence", DEFAULT_THRESHOLD))
    rows = []
    for post, probs, spans in zip(posts, predictions.probs, predictions.evidence_spans, strict=True):
        sentences = sentence_spans(post.text)
        evidence = []
        for start, end, span_score in sorted(s for s in spans if s[2] >= evidence_cutoff):
            sentence = next(((a, b) for a, b in sentences if a <= start < b), (start, end))
            score = round(float(span_score), 6)
            evidence.append({"start": start, "end": end, "score": score, "sentence": post.text[slice(*sentence)]})
        rows.append(
            {
                "post_id": post.post_id,
                "probabilities": {s: round(float(p), 6) for s, p in zip(SYMPTOMS, probs, strict=True)},
                "criteria": {s: int(p >= t) for s, p, t in zip(SYMPTOMS, probs, cutoffs, strict=True)},
                "evidence": evidence,
            }
        )
    return rows


def write_predictions(rows: list[dict[str, Any]], output: Path) -> Path:
    """JSON lines for ``.jsonl`` / ``.json``, else CSV (``prob_<SYMPTOM>``, ``<SYMPTOM>`` 0/1, ``evidence`` as
    JSON); written to a temporary file and renamed, so a half-written output never exists."""
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    if output.suffix.lower() in (".jsonl", ".json"):
        text = "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
    else:
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(["post_id", *(f"prob_{s}" for s in SYMPTOMS), *SYMPTOMS, "evidence"])
        for row in rows:
            writer.writerow(
                [
                    row["post_id"],
                    *(row["probabilities"][s] for s in SYMPTOMS),
                    *(row["criteria"][s] for s in SYMPTOMS),
                    json.dumps(row["evidence"], ensure_ascii=False),
                ]
            )
        text = buffer.getvalue()
    return write_text_atomic(output, text)
