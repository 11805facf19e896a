import dataclasses

import pytest

from redsm5_hpo.checkpoints.store import CheckpointStore
from redsm5_hpo.data.formats import MultiLabelDataset
from redsm5_hpo.models.encoder import load_encoder
from redsm5_hpo.models.model import CriteriaEvidenceModel
from redsm5_hpo.training.hooks import CheckpointHook
from redsm5_hpo.training.loop import fit
from redsm5_hpo.training.seeding import seed_everything


def build(config, corpus):
    seed_everything(config.seed)
    encoder = load_encoder("tiny-random", seed=config.seed)
    model = CriteriaEvidenceModel(encoder.model, config.model)
    sets = [
        MultiLabelDataset(corpus.splits[s][:48], encoder.tokenizer, config.data.max_length)
        for s in ("train", "validation")
    ]
    return model, *sets


class Recorder:
    def __init__(self):
        self.results = []

    def on_epoch_end(self, state, result):
        self.results.append(result)


def test_fit_calls_hooks_each_epoch_and_counts_accumulated_steps(tiny_config, sample_corpus) -> None:
    config = dataclasses.replace(
        tiny_config, train=dataclasses.replace(tiny_config.train, batch_size=8, grad_accum_steps=2, epochs=2)
    )
    model, train_set, val_set = build(config, sample_corpus)
    recorder = Recorder()
    result = fit(model, train_set, val_set, config.train, config.seed, [recorder], progress=False)
    assert [r.epoch for r in recorder.results] == [1, 2]
    assert [r.global_step for r in recorder.results] == [3, 6]  # 48 posts / 8 = 6 batches, 2 per step
    assert set(recorder.results[0].metrics) >= {"train_loss", "val_criteria_macro_f1", "val_evidence_f1", "val_loss"}
    assert result.best_value == max(r.objective for r in recorder.results)


def test_same_seed_gives_identical_metrics(tiny_config, sample_corpus) -> None:
    runs = []
    for _ in range(2):
        model, train_set, val_set = build(tiny_config, sample_corpus)
        runs.append(fit(model, train_set, val_set, tiny_config.train, tiny_config.seed, progress=False).history)
    assert runs[0] == runs[1]


def test_truncation_loss_is_measured(sample_corpus) -> None:
    tokenizer = load_encoder("tiny-random").tokenizer
    full = MultiLabelDataset(sample_corpus.splits["train"], tokenizer, 512)
    cut = MultiLabelDataset(sample_corpus.splits["train"], tokenizer, 16)
    assert full.truncation_loss == 0.0
    assert 0.3 < cut.truncation_loss < 1.0


def test_checkpoint_hook_saves_per_interval_and_prunes(tiny_config, sample_corpus, tmp_path) -> None:
    train_cfg = dataclasses.replace(tiny_config.train, epochs=3, checkpoint_interval_epochs=2, max_steps_per_epoch=2)
    model, train_set, val_set = build(tiny_config, sample_corpus)
    store = CheckpointStore(tmp_path / "ckpt")
    hook = CheckpointHook(store, train_cfg, {"architecture": model.architecture_signature()})
    recorder = Recorder()
    fit(model, train_set, val_set, train_cfg, tiny_config.seed, [recorder, hook], progress=False)
    saved_epochs = [c.epoch for c in store.list()]
    assert set(saved_epochs) <= {2, 3} and 3 in saved_epochs  # interval 2, plus the last epoch
    manifest = store.list()[-1].manifest
    assert manifest["architecture"] == model.architecture_signature()
    assert manifest["objective"] == pytest.approx(recorder.results[-1].objective)
