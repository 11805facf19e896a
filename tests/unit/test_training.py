import dataclasses

import pytest
import torch

from redsm5_hpo.checkpoints.manager import CheckpointManager
from redsm5_hpo.checkpoints.retention import RetentionPolicy
from redsm5_hpo.checkpoints.store import CheckpointStore, load_training_state, load_weights
from redsm5_hpo.data.formats import MultiLabelDataset
from redsm5_hpo.models.encoder import load_encoder
from redsm5_hpo.models.model import CriteriaEvidenceModel
from redsm5_hpo.training.hooks import CheckpointHook
from redsm5_hpo.training.loop import fit
from redsm5_hpo.training.seeding import capture_rng_state, restore_rng_state, seed_everything


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


def test_checkpoint_hook_saves_per_interval_prunes_and_stores_resume_state(
    tiny_config, sample_corpus, tmp_path
) -> None:
    train_cfg = dataclasses.replace(tiny_config.train, epochs=3, checkpoint_interval_epochs=2, max_steps_per_epoch=2)
    model, train_set, val_set = build(tiny_config, sample_corpus)
    manager = CheckpointManager(CheckpointStore(tmp_path / "ckpt"), RetentionPolicy(1, 1), tmp_path)
    manager.start(model)
    hook = CheckpointHook(manager, train_cfg, {"architecture": model.architecture_signature()}, seed=5)
    recorder = Recorder()
    fit(model, train_set, val_set, train_cfg, tiny_config.seed, [recorder, hook], progress=False)
    saved = manager.store.list()
    assert {c.epoch for c in saved} <= {2, 3} and 3 in {c.epoch for c in saved}  # interval 2, plus the last epoch
    newest = saved[-1]
    assert newest.manifest["architecture"] == model.architecture_signature()
    assert newest.manifest["objective"] == pytest.approx(recorder.results[-1].objective)
    state = load_training_state(newest)
    assert state["data_order"] == {"seed": 5, "next_epoch": 4} and state["global_step"] == 6
    assert {"python", "numpy", "torch"} <= set(state["rng"]) and "state" in state["optimizer"]
    assert manager.bytes_written >= sum(c.size_bytes for c in saved)


def test_rng_state_round_trips() -> None:
    import random

    import numpy as np
    import torch

    seed_everything(3)
    state = capture_rng_state()
    first = (random.random(), np.random.rand(), torch.rand(1).item())
    restore_rng_state(state)
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == first


def test_resumed_fit_continues_exactly_like_an_uninterrupted_one(tiny_config, sample_corpus, tmp_path) -> None:
    train_cfg = dataclasses.replace(tiny_config.train, epochs=3, max_steps_per_epoch=3)
    model, train_set, val_set = build(tiny_config, sample_corpus)
    full = fit(model, train_set, val_set, train_cfg, tiny_config.seed, progress=False)
    expected = {k: v.clone() for k, v in model.state_dict().items()}

    model, train_set, val_set = build(tiny_config, sample_corpus)
    manager = CheckpointManager(CheckpointStore(tmp_path / "ckpt"), RetentionPolicy(3, 1), tmp_path)
    hook = CheckpointHook(manager, train_cfg, {"architecture": "x"}, seed=tiny_config.seed)

    class Crash(Exception):
        pass

    class CrashAfterFirstEpoch:
        def on_epoch_end(self, state, result):
            raise Crash

    with pytest.raises(Crash):
        fit(model, train_set, val_set, train_cfg, tiny_config.seed, [hook, CrashAfterFirstEpoch()], progress=False)
    (checkpoint,) = manager.store.list()

    model, train_set, val_set = build(tiny_config, sample_corpus)  # a fresh process would rebuild everything
    torch.manual_seed(999)  # and its RNGs would be anywhere
    load_weights(checkpoint, model, "x")
    resumed = fit(
        model,
        train_set,
        val_set,
        train_cfg,
        tiny_config.seed,
        progress=False,
        resume_from=load_training_state(checkpoint),
    )
    assert resumed.history == full.history
    assert all(torch.equal(expected[k], v) for k, v in model.state_dict().items())
