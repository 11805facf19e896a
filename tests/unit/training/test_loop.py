import dataclasses
import math

import numpy as np
import pytest
import torch

from redsm5_hpo.checkpoints.manager import CheckpointManager
from redsm5_hpo.checkpoints.retention import RetentionPolicy
from redsm5_hpo.checkpoints.store import CheckpointStore, load_training_state, load_weights
from redsm5_hpo.config.schema import ModelConfig, TrainConfig
from redsm5_hpo.data.formats import MultiLabelDataset, Windowing
from redsm5_hpo.devices import resolve_runtime
from redsm5_hpo.evaluation.predict import predict
from redsm5_hpo.models.encoder import enable_activation_checkpointing, load_encoder
from redsm5_hpo.models.model import CriteriaEvidenceModel
from redsm5_hpo.training.hooks import CheckpointHook
from redsm5_hpo.training.loop import EpochResult, FitOptions, LoopState, NonFiniteLossError, fit
from redsm5_hpo.training.optim import build_optimizer, linear_warmup_decay
from redsm5_hpo.training.seeding import capture_rng_state, restore_rng_state, seed_everything
from tests.helpers.batches import tokenized

CPU = resolve_runtime(TrainConfig(device="cpu", precision="fp32"))


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
    result = fit(
        model, train_set, val_set, config.train, config.seed, CPU, FitOptions(hooks=[recorder], progress=False)
    )
    assert [r.epoch for r in recorder.results] == [1, 2]
    assert [r.global_step for r in recorder.results] == [3, 6]  # 48 posts / 8 = 6 batches, 2 per step
    assert set(recorder.results[0].metrics) >= {"train_loss", "val_criteria_macro_f1", "val_evidence_f1", "val_loss"}
    assert result.best_value == max(r.objective for r in recorder.results)


def test_a_loss_objective_picks_the_epoch_with_the_lowest_loss(tiny_config, sample_corpus) -> None:
    train = dataclasses.replace(tiny_config.train, epochs=4, optimization_metric="val_loss", lr_head=3e-2)
    model, train_set, val_set = build(dataclasses.replace(tiny_config, train=train), sample_corpus)
    recorder = Recorder()
    result = fit(model, train_set, val_set, train, tiny_config.seed, CPU, FitOptions(hooks=[recorder], progress=False))
    losses = [r.metrics["val_loss"] for r in recorder.results]
    assert [r.objective for r in recorder.results] == losses
    assert result.best_value == min(losses)
    assert result.best_epoch == 1 + losses.index(min(losses))
    assert [r.is_best for r in recorder.results] == [loss <= min(losses[: i + 1]) for i, loss in enumerate(losses)]
    assert max(losses) > min(losses)  # else every direction would agree


def test_same_seed_gives_identical_metrics(tiny_config, sample_corpus) -> None:
    runs = []
    for _ in range(2):
        model, train_set, val_set = build(tiny_config, sample_corpus)
        runs.append(
            fit(model, train_set, val_set, tiny_config.train, tiny_config.seed, CPU, FitOptions(progress=False)).history
        )
    assert runs[0] == runs[1]


def test_truncation_loss_is_measured(sample_corpus) -> None:
    tokenizer = load_encoder("tiny-random").tokenizer
    full = MultiLabelDataset(sample_corpus.splits["train"], tokenizer, 64, Windowing(16))
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
    fit(model, train_set, val_set, train_cfg, tiny_config.seed, CPU, FitOptions(hooks=[recorder, hook], progress=False))
    manager.wait()  # the last write runs in the background
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


class OneGpuRng:
    """The generators of a machine's CUDA devices, by index (``seeding.CudaRng``): CPU tensors standing in."""

    def __init__(self, devices: int) -> None:
        self.states = {i: torch.full((4,), float(i)) for i in range(devices)}

    def get_rng_state(self, device: torch.device) -> torch.Tensor:
        return self.states[device.index].clone()

    def set_rng_state(self, new_state: torch.Tensor, device: torch.device) -> None:
        self.states[device.index] = new_state.clone()


def test_a_trial_resumed_on_another_gpu_continues_with_its_own_gpus_generator() -> None:
    writer = OneGpuRng(devices=4)
    writer.states[2] = torch.tensor([7.0, 7.0, 7.0, 7.0])  # the trial trained on cuda:2
    state = capture_rng_state(torch.device("cuda:2"), cuda=writer)
    assert torch.equal(state["cuda_device"], writer.states[2]) and "cuda" not in state

    reader = OneGpuRng(devices=1)  # resumed by a worker that sees one GPU: its cuda:0
    restore_rng_state(state, torch.device("cuda:0"), cuda=reader)
    assert torch.equal(reader.states[0], torch.tensor([7.0, 7.0, 7.0, 7.0]))
    earlier = {**state, "cuda": [torch.zeros(4), torch.ones(4)]}  # a checkpoint of an earlier version
    del earlier["cuda_device"]
    two = OneGpuRng(devices=2)
    restore_rng_state(earlier, torch.device("cuda:1"), cuda=two)
    assert torch.equal(two.states[1], torch.ones(4)) and torch.equal(two.states[0], torch.zeros(4))
    on_cpu = capture_rng_state(torch.device("cpu"), cuda=writer)
    assert "cuda_device" not in on_cpu
    restore_rng_state(state, torch.device("cpu"), cuda=reader)  # a GPU checkpoint resumed on a CPU


def test_an_fp16_step_the_scaler_skips_does_not_count_as_a_step() -> None:
    from redsm5_hpo.training.loop import _scale_kept

    weight = torch.nn.Parameter(torch.ones(2))
    optimizer = torch.optim.SGD([weight], lr=0.1)
    scaler = torch.amp.GradScaler("cpu")
    before = scaler.get_scale()
    for grad, taken in ((float("inf"), False), (1.0, True)):
        scaler.scale((weight * 2).sum()).backward()
        weight.grad[0] = grad  # an overflowing gradient, then a finite one
        scaler.step(optimizer)
        scaler.update()
        kept, now = _scale_kept(scaler, before)
        assert kept is taken and (now < before) is not taken
        before = now
        optimizer.zero_grad()
    assert weight[0].item() < 1.0  # only the second step moved the weight


class Crash(Exception):
    pass


class CrashAfterFirstEpoch:
    def on_epoch_end(self, state, result):
        raise Crash


def checkpoint_of_a_run_killed_after_epoch_1(config, train_cfg, corpus, tmp_path, runtime):
    """Train ``train_cfg`` with a checkpoint hook until a crash after epoch 1; the epoch 1 checkpoint."""
    model, train_set, val_set = build(config, corpus)
    manager = CheckpointManager(CheckpointStore(tmp_path / "ckpt"), RetentionPolicy(3, 1), tmp_path)
    hook = CheckpointHook(manager, train_cfg, {"architecture": "x"}, seed=config.seed)
    with pytest.raises(Crash):
        fit(
            model,
            train_set,
            val_set,
            train_cfg,
            config.seed,
            runtime,
            FitOptions(hooks=[hook, CrashAfterFirstEpoch()], progress=False),
        )
    manager.close()  # as the trial does when it stops: the write in flight is committed
    (checkpoint,) = manager.store.list()
    return checkpoint


def test_resumed_fit_continues_exactly_like_an_uninterrupted_one(tiny_config, sample_corpus, tmp_path) -> None:
    train_cfg = dataclasses.replace(tiny_config.train, epochs=3, max_steps_per_epoch=3)
    model, train_set, val_set = build(tiny_config, sample_corpus)
    full = fit(model, train_set, val_set, train_cfg, tiny_config.seed, CPU, FitOptions(progress=False))
    expected = {k: v.clone() for k, v in model.state_dict().items()}

    checkpoint = checkpoint_of_a_run_killed_after_epoch_1(tiny_config, train_cfg, sample_corpus, tmp_path, CPU)

    model, train_set, val_set = build(tiny_config, sample_corpus)  # a fresh process would rebuild everything
    torch.manual_seed(999)  # and its RNGs would be anywhere
    load_weights(checkpoint, model, "x")
    resumed = fit(
        model,
        train_set,
        val_set,
        train_cfg,
        tiny_config.seed,
        CPU,
        FitOptions(progress=False, resume_from=load_training_state(checkpoint)),
    )
    assert resumed.history == full.history
    assert all(torch.equal(expected[k], v) for k, v in model.state_dict().items())


class ScalerRecorder:
    def __init__(self):
        self.states = []

    def on_epoch_end(self, state, result):
        self.states.append(state.scaler.state_dict())


def test_bf16_training_on_the_cpu_gives_finite_metrics(tiny_config, sample_corpus) -> None:
    train_cfg = dataclasses.replace(tiny_config.train, epochs=1, max_steps_per_epoch=4, precision="bf16")
    model, train_set, val_set = build(tiny_config, sample_corpus)
    runtime = resolve_runtime(train_cfg)
    assert runtime.precision == "bf16"
    result = fit(model, train_set, val_set, train_cfg, tiny_config.seed, runtime, FitOptions(progress=False))
    assert all(math.isfinite(v) for v in result.history[0].values())
    assert all(p.dtype == torch.float32 for p in model.parameters())  # autocast, not a bf16 model


def test_fp16_grad_scaler_state_round_trips_through_a_checkpoint_and_resume_stays_exact(
    tiny_config, sample_corpus, tmp_path
) -> None:
    train_cfg = dataclasses.replace(tiny_config.train, epochs=2, max_steps_per_epoch=3, precision="fp16")
    runtime = resolve_runtime(train_cfg)
    model, train_set, val_set = build(tiny_config, sample_corpus)
    scales = ScalerRecorder()
    full = fit(
        model, train_set, val_set, train_cfg, tiny_config.seed, runtime, FitOptions(hooks=[scales], progress=False)
    )
    expected = {k: v.clone() for k, v in model.state_dict().items()}
    assert scales.states[0] != torch.amp.GradScaler("cpu").state_dict()  # the scaler's state moved in epoch 1

    checkpoint = checkpoint_of_a_run_killed_after_epoch_1(tiny_config, train_cfg, sample_corpus, tmp_path, runtime)
    assert load_training_state(checkpoint)["grad_scaler"] == scales.states[0]

    model, train_set, val_set = build(tiny_config, sample_corpus)
    load_weights(checkpoint, model, "x")
    resumed_scales = ScalerRecorder()
    resumed = fit(
        model,
        train_set,
        val_set,
        train_cfg,
        tiny_config.seed,
        runtime,
        FitOptions(hooks=[resumed_scales], progress=False, resume_from=load_training_state(checkpoint)),
    )
    assert resumed.history == full.history
    assert resumed_scales.states == scales.states[1:]
    assert all(torch.equal(expected[k], v) for k, v in model.state_dict().items())


def test_a_non_finite_loss_stops_the_trial_before_its_checkpoint(tiny_config, sample_corpus, tmp_path) -> None:
    train_cfg = dataclasses.replace(tiny_config.train, epochs=2, max_steps_per_epoch=3)
    model, train_set, val_set = build(tiny_config, sample_corpus)
    with torch.no_grad():
        model.criteria_head.net[-1].bias.fill_(float("nan"))  # the model has diverged
    manager = CheckpointManager(CheckpointStore(tmp_path / "ckpt"), RetentionPolicy(3, 1), tmp_path)
    hook = CheckpointHook(manager, train_cfg, {"architecture": "x"}, seed=tiny_config.seed)
    with pytest.raises(NonFiniteLossError) as error:
        fit(model, train_set, val_set, train_cfg, tiny_config.seed, CPU, FitOptions(hooks=[hook], progress=False))
    manager.close()
    assert (
        error.value.reason == "non_finite_loss: the training loss was nan at epoch 1, batch 1 (after optimizer step 0)"
    )
    assert "rollback" in str(error.value)
    assert manager.store.list() == []


def test_grouping_by_length_lowers_the_logged_padding_share(tiny_config, sample_corpus) -> None:
    shares = []
    for grouped in (False, True):
        train_cfg = dataclasses.replace(tiny_config.train, epochs=1, group_by_length=grouped)
        model, train_set, val_set = build(tiny_config, sample_corpus)
        history = fit(model, train_set, val_set, train_cfg, tiny_config.seed, CPU, FitOptions(progress=False)).history
        shares.append(history[0]["train_padding_share"])
    assert 0 <= shares[1] < 0.7 * shares[0]


def test_gradient_checkpointing_gives_the_same_loss_and_gradients() -> None:
    results = []
    for checkpointing in (False, True):
        encoder = load_encoder("tiny-random", seed=1)
        if checkpointing:
            enable_activation_checkpointing(encoder.model, "tiny-random")
        torch.manual_seed(1)
        model = CriteriaEvidenceModel(encoder.model, ModelConfig(encoder="tiny-random", head_hidden=8))
        model.train()
        batch = tokenized(encoder, ["I feel sad. It rains all day.", "I cannot sleep at night. The end."])
        torch.manual_seed(7)  # the same dropout masks; the recomputation replays them
        loss = model.loss(model(batch), batch, 0.5)
        loss.backward()
        results.append((loss.item(), [p.grad.clone() for p in model.parameters() if p.grad is not None]))
    assert results[0][0] == pytest.approx(results[1][0], abs=1e-6)
    assert len(results[0][1]) == len(results[1][1])
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(results[0][1], results[1][1], strict=True))


def test_evaluation_sorted_by_length_returns_each_post_its_own_outputs(tiny_config, sample_corpus) -> None:
    model, _, val_set = build(tiny_config, sample_corpus)
    one_by_one = predict(model, val_set, dataclasses.replace(tiny_config.train, eval_batch_size=1), CPU)
    batched = predict(model, val_set, dataclasses.replace(tiny_config.train, eval_batch_size=16), CPU)
    assert one_by_one.post_ids == batched.post_ids
    assert np.allclose(one_by_one.probs, batched.probs, atol=1e-5)
    assert [len(s) for s in one_by_one.evidence_spans] == [len(s) for s in batched.evidence_spans]


def test_a_trial_that_keeps_only_its_best_saves_its_last_epoch_as_weights_only_if_best(
    tiny_config, sample_corpus, tmp_path
) -> None:
    train_cfg = dataclasses.replace(tiny_config.train, epochs=3)
    model, _, _ = build(tiny_config, sample_corpus)
    optimizer = build_optimizer(model, train_cfg)
    state = LoopState(model, optimizer, linear_warmup_decay(optimizer, 10, 0.1), CPU.grad_scaler())
    manager = CheckpointManager(CheckpointStore(tmp_path / "ckpt"), RetentionPolicy(1, 1), tmp_path)
    hook = CheckpointHook(manager, train_cfg, {"architecture": "x"}, seed=1, final_weights_only=True)
    hook.on_epoch_end(state, EpochResult(2, 10, {}, 0.5, True))
    hook.on_epoch_end(state, EpochResult(3, 15, {}, 0.4, False))  # the last epoch, not the best: nothing
    manager.wait()
    assert [(c.epoch, c.resumable) for c in manager.store.list()] == [(2, True)]
    hook.on_epoch_end(state, EpochResult(3, 15, {}, 0.6, True))  # the last epoch and the best: weights only
    manager.wait()
    assert [(c.epoch, c.resumable) for c in manager.store.list()] == [(2, True), (3, False)]
    assert "training_state.pt" not in [p.name for p in (tmp_path / "ckpt" / "epoch_0003").iterdir()]
