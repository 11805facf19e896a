"""Model-zoo results on the bundled sample: one training per head family with the bundled encoder.

Each row trains on the sample's train split, calibrates thresholds on validation and scores test once,
through the same functions a study trial uses (``fit``, ``predict``, ``calibrate``, ``score_calibrated``).
Rows differ from the default configuration only in the overrides shown. Writes bench/zoo.json and
bench/zoo.md.

Usage: python bench/zoo.py [--quick] [--epochs N] [--only NAME ...]
  --quick: the tiny encoder and 2 epochs, a smoke check of the harness
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from redsm5_hpo.config.loading import load_config
from redsm5_hpo.data.loading import load_corpus
from redsm5_hpo.devices import resolve_runtime
from redsm5_hpo.evaluation.predict import calibrate, predict, score_calibrated
from redsm5_hpo.pipeline.builders import build_model, split_datasets
from redsm5_hpo.training.loop import FitOptions, fit

REPO = Path(__file__).resolve().parents[1]
ROWS: list[tuple[str, str, list[str]]] = [
    ("criteria head", "linear", ["model.criteria_head=linear"]),
    ("criteria head", "mlp (default)", []),
    ("criteria head", "residual_mlp", ["model.criteria_head=residual_mlp"]),
    ("criteria head", "gated", ["model.criteria_head=gated"]),
    ("criteria head", "multi_sample_dropout", ["model.criteria_head=multi_sample_dropout"]),
    ("evidence head", "start_end_linear", ["model.evidence_head=start_end_linear"]),
    ("evidence head", "start_end_mlp", ["model.evidence_head=start_end_mlp"]),
    ("evidence head", "biaffine", ["model.evidence_head=biaffine"]),
    ("evidence head", "bio_crf", ["model.evidence_head=bio_crf"]),
    ("evidence head", "sentence_reranker", ["model.evidence_head=sentence_reranker"]),
    ("coupling", "evidence_informed (mean, concat)", ["model.coupling=evidence_informed"]),
    ("loss", "hybrid (weighted BCE + focal)", ["train.criteria_loss=hybrid"]),
    ("input format", "pair", ["data.input_format=pair"]),
]


def run_row(overrides: list[str], epochs: int, quick: bool) -> dict[str, float]:
    encoder = ["model=tiny"] if quick else []
    config = load_config([*encoder, f"train.epochs={epochs}", "experiments_dir=/tmp/zoo-bench", *overrides])
    corpus = load_corpus(config.data, config.seed)
    runtime = resolve_runtime(config.train)
    model, tokenizer = build_model(config, corpus, runtime)
    train_set, val_set, test_set = split_datasets(config, corpus, tokenizer, "train", "validation", "test")
    started = time.perf_counter()
    fit(model, train_set, val_set, config.train, config.seed, runtime, FitOptions(progress=False))
    seconds = time.perf_counter() - started
    thresholds = calibrate(predict(model, val_set, config.train, runtime), val_set)
    test = score_calibrated(predict(model, test_set, config.train, runtime), test_set, "test", thresholds)
    return {
        "test_criteria_macro_f1": test["test_criteria_macro_f1"],
        "test_evidence_f1": test["test_evidence_f1"],
        "train_seconds": seconds,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--only", nargs="*", default=None, help="row names to run (the others are kept)")
    args = parser.parse_args()
    epochs = args.epochs or (2 if args.quick else 5)
    out = REPO / "bench" / ("zoo-quick.json" if args.quick else "zoo.json")
    results = json.loads(out.read_text()) if out.exists() and args.only else {}
    for family, name, overrides in ROWS:
        if args.only and name not in args.only:
            continue
        print(f"{family}: {name} ...", flush=True)
        row = run_row(overrides, epochs, args.quick)
        results[name] = {"family": family, "overrides": overrides, "epochs": epochs, **row}
        print(f"  {row}", flush=True)
        out.write_text(json.dumps(results, indent=2) + "\n")
    lines = [
        "| family | variant | overrides | test macro-F1 | test evidence F1 | train time |",
        "|---|---|---|---|---|---|",
    ]
    for name, row in results.items():
        lines.append(
            f"| {row['family']} | {name} | `{' '.join(row['overrides']) or '-'}` | "
            f"{row['test_criteria_macro_f1']:.3f} | {row['test_evidence_f1']:.3f} | {row['train_seconds']:.0f} s |"
        )
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
