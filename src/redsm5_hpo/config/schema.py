"""Configuration schema: one dataclass per area, a docstring per field.

The YAML files under ``configs/`` map one-to-one onto these classes. Defaults here are the
defaults a user gets when a YAML file leaves a field out.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Literal, get_args

BUNDLED_ENCODER = "bundled:all-MiniLM-L6-v2"
TINY_ENCODER = "tiny-random"
DEVICE_PATTERN = r"auto|cpu|mps|cuda(:[0-9]+)?"
"""What ``train.device`` accepts (a full match)."""
MB = 1 << 20
"""Sizes are given in MB (MiB) everywhere, times in seconds."""

# Every field with a fixed set of values is typed with one of these; the tuples of allowed values are
# derived from them, and validation reads each field's choices from its type.
Pooling = Literal["cls", "mean", "attention", "scalar_mix"]
CriteriaHead = Literal["linear", "mlp", "residual_mlp", "gated", "multi_sample_dropout"]
EvidenceHead = Literal["token", "start_end_linear", "start_end_mlp", "biaffine", "bio_crf", "sentence_reranker"]
Coupling = Literal["independent", "evidence_informed"]
EvidencePooling = Literal["mean", "max", "attention"]
CouplingCombine = Literal["concat", "sum", "weighted_sum", "mean", "weighted_mean"]
Activation = Literal["gelu", "silu", "relu", "leaky_relu", "mish", "tanh"]
InputFormat = Literal["multilabel", "pair"]
LongPosts = Literal["windows", "truncate"]
WindowPooling = Literal["max", "mean", "attention"]
Precision = Literal["auto", "fp32", "bf16", "fp16"]
AugmentMethod = Literal["synonym", "insert", "swap", "delete", "char_noise"]
CriteriaLoss = Literal["bce", "weighted_bce", "focal", "adaptive_focal", "hybrid"]
HybridBce = Literal["bce", "weighted_bce"]
HybridFocal = Literal["focal", "adaptive_focal"]
Optimizer = Literal["adamw", "sgd"]
Pruner = Literal["none", "median", "hyperband"]
Sampler = Literal["tpe", "random", "gp", "cmaes", "qmc"]
EvidenceLevel = Literal["char", "sentence", "span"]
SplitProtocol = Literal["stratified", "paper"]

POOLINGS: tuple[str, ...] = get_args(Pooling)
CRITERIA_HEADS: tuple[str, ...] = get_args(CriteriaHead)
EVIDENCE_HEADS: tuple[str, ...] = get_args(EvidenceHead)
COUPLINGS: tuple[str, ...] = get_args(Coupling)
EVIDENCE_POOLINGS: tuple[str, ...] = get_args(EvidencePooling)
COUPLING_COMBINES: tuple[str, ...] = get_args(CouplingCombine)
ACTIVATIONS: tuple[str, ...] = get_args(Activation)
INPUT_FORMATS: tuple[str, ...] = get_args(InputFormat)
LONG_POSTS: tuple[str, ...] = get_args(LongPosts)
WINDOW_POOLINGS: tuple[str, ...] = get_args(WindowPooling)
PRECISIONS: tuple[str, ...] = get_args(Precision)
AUGMENT_METHODS: tuple[str, ...] = get_args(AugmentMethod)
CRITERIA_LOSSES: tuple[str, ...] = get_args(CriteriaLoss)
OPTIMIZERS: tuple[str, ...] = get_args(Optimizer)
PRUNERS: tuple[str, ...] = get_args(Pruner)
EVIDENCE_LEVELS: tuple[str, ...] = get_args(EvidenceLevel)
"""What ``evaluation.evidence_metric`` accepts: evidence scored by characters, sentences or spans."""
SPLIT_PROTOCOLS: tuple[str, ...] = get_args(SplitProtocol)


@dataclass(frozen=True)
class DataConfig:
    source: str = "sample"
    """``sample`` (bundled), a local directory with the two release CSVs, or a hub dataset id."""
    revision: str = "main"
    """Hub revision (branch, tag or commit) to pin; ignored for local sources."""
    posts_file: str = "redsm5_posts.csv"
    """Name of the posts file inside the source."""
    annotations_file: str = "redsm5_annotations.csv"
    """Name of the annotations file inside the source."""
    split_column: str = "split"
    """Posts column holding a predefined split; if present it is kept instead of re-splitting."""
    split_names: dict[str, str] = field(
        default_factory=lambda: {"train": "train", "validation": "validation", "test": "test"}
    )
    """Maps our split names to the names a source with predefined splits uses."""
    val_fraction: float = 0.15
    """Share of posts in the validation split when we split ourselves."""
    test_fraction: float = 0.15
    """Share of posts in the test split when we split ourselves."""
    split_protocol: SplitProtocol = "stratified"
    """How we split a source without its own splits: ``stratified`` (by each post's rarest label, from
    ``seed``, with ``val_fraction`` and ``test_fraction``) or ``paper`` (the published baselines' split:
    scikit-learn's ``train_test_split`` of the posts in file order, 20% test with ``random_state=42``;
    validation is ``val_fraction`` of all posts, carved from the training part the same way)."""
    max_length: int = 160
    """Tokens per model input (one window of a post, or the whole post with ``long_posts=truncate``)."""
    long_posts: LongPosts = "windows"
    """A post longer than ``max_length`` tokens: ``windows`` (overlapping windows of ``max_length`` tokens,
    pooled per post for the criteria, evidence merged back into the post) or ``truncate`` (the rest is
    lost; the share of evidence lost is logged as ``*_evidence_truncation_loss``)."""
    window_stride: int | None = None
    """``long_posts=windows``: tokens each window repeats from the end of the one before, so a sentence
    cut at one window's edge is whole in the next; at most ``max_length / 2``. None = ``max_length / 4``."""
    max_windows: int | None = None
    """``long_posts=windows``: windows kept per post (the first ones, in text order); None = all. Bounds
    the memory of one post; evidence past the last kept window counts as truncated."""
    fuzzy_threshold: float = 80.0
    """Evidence alignment: the last resort, a fuzzy match of the annotated sentence in its post, counts at
    this rapidfuzz ``ratio`` score (0-100) and above, over runs of one to three post sentences."""
    input_format: InputFormat = "multilabel"
    """``multilabel`` (one example per post, nine outputs) or ``pair`` (criterion description + post, one
    output, nine examples per post; predictions are mapped back per post)."""

    @property
    def stride(self) -> int:
        """``window_stride``, or its default for ``max_length``."""
        return self.max_length // 4 if self.window_stride is None else self.window_stride


@dataclass(frozen=True)
class AugmentConfig:
    methods: list[AugmentMethod] = field(default_factory=list)
    """Evidence-sentence rewrites to draw from: ``synonym``, ``insert`` (WordNet), ``swap``, ``delete``,
    ``char_noise`` (nlpaug); empty = no augmentation."""
    probability: float = 0.5
    """Chance that each evidence sentence of an augmented copy is rewritten."""
    copies: int = 1
    """Augmented copies added to the train split per post with evidence."""
    word_fraction: float = 0.15
    """Share of a sentence's words a rewrite touches (at least one)."""
    wordnet_dir: str = "/usr/share/wordnet"
    """WordNet 3.0 database files (Debian ``wordnet-base``), for ``synonym`` and ``insert``."""


@dataclass(frozen=True)
class ModelConfig:
    encoder: str = BUNDLED_ENCODER
    """``tiny-random``, ``bundled:all-MiniLM-L6-v2``, a hub id or a local path."""
    pooling: Pooling = "mean"
    """How token states become one post vector: ``cls``, ``mean`` (mask-aware), ``attention`` (learned
    token weights) or ``scalar_mix`` (learned mix of the last two hidden layers, then mean)."""
    criteria_head: CriteriaHead = "mlp"
    """``linear``, ``mlp``, ``residual_mlp``, ``gated`` (GLU) or ``multi_sample_dropout``."""
    head_hidden: int = 256
    """Width of the criteria head's hidden layer (mlp, residual_mlp, gated)."""
    dropout_samples: int = 5
    """Dropout masks averaged by the ``multi_sample_dropout`` head."""
    dropout: float = 0.1
    """Dropout in the heads."""
    activation: Activation = "gelu"
    """Activation inside the heads' MLPs: ``gelu``, ``silu``, ``relu``, ``leaky_relu``, ``mish`` or ``tanh``."""
    evidence_head: EvidenceHead = "token"
    """``token`` (per-token tagging), ``start_end_linear``, ``start_end_mlp``, ``biaffine`` (span scorer),
    ``bio_crf`` (BIO tags under a CRF) or ``sentence_reranker`` (scores whole sentences)."""
    evidence_hidden: int = 128
    """Hidden width of the evidence head's MLPs (start_end_mlp, biaffine, bio_crf, sentence_reranker)."""
    max_span_tokens: int = 64
    """Longest evidence span, in tokens, the start/end and biaffine heads can predict."""
    coupling: Coupling = "independent"
    """``independent``, or ``evidence_informed``: the criteria head also sees an evidence vector pooled
    under the evidence head's token scores."""
    evidence_pooling: EvidencePooling = "mean"
    """Evidence-informed coupling: how the evidence vector is pooled (``mean``, ``max``, ``attention``)."""
    coupling_combine: CouplingCombine = "concat"
    """Evidence-informed coupling: how post and evidence vectors combine (``concat``, ``sum``,
    ``weighted_sum``, ``mean``, ``weighted_mean``)."""
    window_pooling: WindowPooling = "max"
    """``data.long_posts=windows``: how a post's window vectors become the one vector the criteria head
    reads: ``max``, ``mean`` or ``attention`` (learned weights over the windows)."""
    gradient_checkpointing: bool = False
    """Recompute the encoder's activations in the backward pass instead of keeping them: less memory for
    large encoders and long inputs, about a third more compute per step."""
    cache_dir: str | None = None
    """Hugging Face cache directory (default: the library's, i.e. ``$HF_HOME/hub``)."""


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 5
    """Training epochs per trial."""
    batch_size: int = 8
    """Inputs per forward pass: posts (pairs in the pair format), counted in windows when posts are
    split into windows; a post with more windows than this is a batch of its own."""
    eval_batch_size: int | None = None
    """Inputs per forward pass in validation, test and prediction (no gradients, so it can be larger),
    counted as ``batch_size`` counts them; None = ``batch_size``."""
    grad_accum_steps: int = 1
    """Forward passes per optimizer step."""
    lr_encoder: float = 1e-4
    """Learning rate of the encoder's parameters."""
    lr_head: float = 3e-3
    """Learning rate of the heads."""
    weight_decay: float = 0.01
    """Weight decay (not applied to biases and LayerNorm)."""
    optimizer: Optimizer = "adamw"
    """``adamw`` or ``sgd`` (with ``momentum``)."""
    momentum: float = 0.9
    """SGD momentum (ignored by AdamW)."""
    warmup_ratio: float = 0.1
    """Share of optimizer steps spent warming the LR up linearly."""
    evidence_loss_weight: float = 0.5
    """Task weight of the evidence head's loss."""
    criteria_loss_weight: float = 1.0
    """Task weight of the criteria loss."""
    criteria_loss: CriteriaLoss = "bce"
    """``bce``, ``weighted_bce`` (positives weighted by negatives/positives of the train split), ``focal``,
    ``adaptive_focal`` (learned gamma per criterion) or ``hybrid``."""
    focal_gamma: float = 2.0
    """Focal gamma; the starting point and anchor of the learned gamma of ``adaptive_focal``."""
    gamma_penalty: float = 0.1
    """``adaptive_focal``: weight of (learned gamma - focal_gamma)^2 in the loss."""
    hybrid_alpha: float = 0.5
    """``hybrid``: alpha * hybrid_bce + (1 - alpha) * hybrid_focal."""
    hybrid_bce: HybridBce = "weighted_bce"
    """``hybrid``: its BCE variant, ``bce`` or ``weighted_bce``."""
    hybrid_focal: HybridFocal = "focal"
    """``hybrid``: its focal variant, ``focal`` or ``adaptive_focal``."""
    label_smoothing: float = 0.0
    """Criteria targets move eps/2 towards 1/2."""
    layer_lr_decay: float = 1.0
    """Layer-wise LR decay: encoder layer k of L (1 = lowest) trains at lr_encoder * decay^(L - k) and the
    embeddings at lr_encoder * decay^L, so the top layer keeps lr_encoder; 1.0 = off."""
    fgm_epsilon: float = 0.0
    """FGM adversarial training: perturb the word embeddings by epsilon along the normalized gradient and
    add the loss there (one more forward/backward per batch); 0 = off."""
    optimization_metric: str = "val_criteria_macro_f1"
    """Validation metric that selects the best checkpoint and the best trial: a ``*_loss`` is minimized,
    every other metric maximized (best checkpoint, co-best, pruning, best trial)."""
    checkpoint_interval_epochs: int = 1
    """Save a checkpoint every N epochs (N >= 1)."""
    save_checkpoints: bool = True
    """False: evaluate-only / throwaway runs that log metrics but write no checkpoint."""
    max_steps_per_epoch: int | None = None
    """Cap on batches per epoch (smoke runs); None = the whole split."""
    device: str = "auto"
    """Where the model, batches, losses and evaluation run: ``auto`` (CUDA if available, else MPS, else
    CPU), ``cpu``, ``cuda``, ``cuda:N`` or ``mps``."""
    precision: Precision = "auto"
    """Autocast precision of forward and loss: ``auto`` (bf16 on a CUDA GPU that supports it, else fp32),
    ``fp32``, ``bf16`` or ``fp16`` (with a gradient scaler). Weights and optimizer state stay fp32."""
    deterministic: bool = True
    """Deterministic algorithms (``torch.use_deterministic_algorithms``, deterministic cuDNN, a fixed cuBLAS
    workspace) and no TF32: the same seed on the same machine gives the same metrics. False allows TF32
    matmuls and cuDNN autotuning: faster on a GPU, not bit-reproducible."""
    num_workers: int = 0
    """DataLoader worker processes preparing training batches (0 = in the training process). Workers are
    seeded from the run seed and kept across epochs; batches are the same for any number of workers."""
    group_by_length: bool = False
    """Batch posts of similar length together (in a seeded shuffled order, longest batch first) to cut
    padding; evaluation is always sorted by length."""
    seed: int | None = None
    """Seed of the trial's training (initialisation, data order, dropout, augmentation); None = ``seed``.
    The splits always come from the top-level ``seed``. Confirmation trials set it (``hpo.confirm``)."""


@dataclass(frozen=True)
class RetentionConfig:
    keep_last_n: int = 1
    """Newest checkpoints kept with their training state for resuming. The newest is always kept while a
    trial runs (the one resume point), so 0 and 1 behave the same."""
    keep_best_k: int = 1
    """Best checkpoints kept by the optimization metric (1 or 2). Checkpoints tied for best (co-best) are
    all kept, even past this cap."""
    max_total_size_mb: float = 10240.0
    """Cap on one trial's checkpoint MB; the resume point and co-best survive even past it."""
    lean_best: bool = True
    """Drop the optimizer/scheduler state of checkpoints kept only because they are best."""
    release_finished_trials: bool = True
    """When a trial ends, delete the checkpoints that can no longer matter: everything of a trial that is
    not the study's best, and the resume points of the best trial."""

    @property
    def max_total_size_gb(self) -> float:
        """Deprecated: ``max_total_size_mb`` / 1024 (kept until the next release)."""
        return self.max_total_size_mb / 1024


@dataclass(frozen=True)
class DiskGuardConfig:
    interval_s: float = 60.0
    """Seconds between free-space checks of the experiments filesystem (background thread)."""
    info_interval_s: float = 600.0
    """Seconds between INFO reports of free space while nothing is wrong."""
    critical_free_fraction: float = 0.10
    """Below this share of free space: WARNING, critical flag, staged aggressive pruning before saves."""
    error_free_fraction: float = 0.05
    """Below this share of free space: ERROR."""
    reserve_mb: float = 16.0
    """Free space checkpoints never use, left for logs, tracking and the OS."""


@dataclass(frozen=True)
class RemoteConfig:
    uri: str | None = None
    """An fsspec URL where the study's checkpoints and files live besides the local cache: ``s3://bucket/prefix``,
    ``gs://...``, ``az://...``, or ``file:///mnt/share/...`` for a mounted share. The bucket mirrors
    ``experiments_dir`` (``<prefix>/study_<id>/...``, ``<prefix>/trial_<id>/checkpoints/epoch_NNNN/...``).
    Credentials come from the environment or the provider's usual chain, never from this file. None: local
    only."""
    options: dict[str, Any] = field(default_factory=dict)
    """fsspec storage options, e.g. ``{endpoint_url: https://minio.internal:9000}`` for an S3-compatible
    store (the ``AWS_ENDPOINT_URL`` variable works too)."""
    cache_max_mb: float = 1024.0
    """Local copies of checkpoints already in the bucket are evicted, oldest first, past this many MB
    under ``experiments_dir``; the running trial's resume point and the write in flight always stay."""
    flush_timeout_s: float = 60.0
    """On SIGTERM (a spot VM's preemption notice) or at the end of a trial, how long to wait for the newest
    checkpoint to reach the bucket."""
    retry_s: float = 30.0
    """How long one bucket request is retried (backoff 0.5-8 s) before the bucket counts as unreachable:
    uploads then wait for the next save and training goes on."""


@dataclass(frozen=True)
class TrackingConfig:
    uri: str | None = None
    """MLflow tracking URI: default ``sqlite:///<experiments_dir>/mlflow.db``; an ``https://`` server works
    too (credentials from MLflow's ``MLFLOW_TRACKING_USERNAME``/``PASSWORD``/``TOKEN`` variables)."""
    experiment_name: str = "redsm5-hpo"
    """MLflow experiment holding the study and trial runs."""
    token_command: str | None = None
    """Command printing a short-lived bearer token (bare, or JSON with ``token`` and ``expires_in``); run
    again before the token expires."""
    token_lifetime_s: float = 3600.0
    """Lifetime assumed for a token the command prints without ``expires_in``."""
    token_refresh_margin_s: float = 60.0
    """Renew the token this many seconds before it expires."""
    ca_bundle: str | None = None
    """CA bundle (PEM) to verify the server's TLS certificate (sets ``MLFLOW_TRACKING_SERVER_CERT_PATH``)."""
    allow_insecure_http: bool = False
    """Allow plain ``http://`` to a host other than this machine (metrics would travel unencrypted)."""
    request_timeout_s: float = 10.0
    """Timeout of one request to a remote server; retries are ours (backoff 1-16 s), not MLflow's."""
    journal_dir: str | None = None
    """Outage journal directory; default ``<experiments_dir>/tracking_journal``."""
    journal_warn_mb: float = 100.0
    """WARNING when unconfirmed journal records pass this size (no hard limit, nothing is dropped)."""
    flush_timeout_s: float = 30.0
    """At the end of a command, how long to wait for the tracker to confirm the journal; the rest is
    replayed at the next start."""
    system_metrics: bool = False
    """MLflow's own sampling of CPU, memory, disk, network and GPU into each trial's run (``system/*``
    metrics), every ``system_metrics_interval_s``; sent by MLflow directly, not through the journal."""
    system_metrics_interval_s: float = 10.0
    """Seconds between two system-metrics samples; samples taken while the tracking server is down are lost."""
    journal_sync_s: float = 0.1
    """The journal is fsynced in groups at most this many seconds apart, off the training thread: a
    killed process loses nothing, a power or kernel failure at most this window. 0 = fsync inside every
    tracking call (the caller waits for the disk)."""


@dataclass(frozen=True)
class LogsConfig:
    stdout_level: str = "INFO"
    """Least severe level shown on stdout; CRITICAL is always shown."""
    max_mb: float = 1000.0
    """Rotate a JSON log file when it would pass this many MB."""
    daily: bool = True
    """Also rotate when the date (UTC) changes."""
    backup_count: int = 14
    """Rotated files kept per log (``events.jsonl.1`` is the newest)."""


@dataclass(frozen=True)
class HubConfig:
    token_check: str = "auto"
    """Hugging Face token check before each trial and checkpoint: ``auto`` (ask the hub who the token
    belongs to, only when a hub encoder and a token are in use), ``none``, or ``command:<shell command>``
    (exit 0 = valid, anything else = expired)."""
    recheck_interval_s: float = 300.0
    """While the token is expired, the study pauses and checks again this often."""


@dataclass(frozen=True)
class ConfirmConfig:
    top_k: int = 0
    """After the search, the best ``top_k`` distinct configurations are trained again, each with ``seeds``
    seeds, and the one with the best mean validation objective is the study's answer (0: off)."""
    seeds: int = 3
    """Seeds per confirmed configuration (at least 2, for a spread); derived from ``seed``, the same for
    every configuration."""


@dataclass(frozen=True)
class HpoConfig:
    n_trials: int = 4
    """Search trials in the study, counted over every worker (the baseline and confirmation trials come on
    top)."""
    baseline_trial: bool = True
    """Run the configuration's own values, unsampled, as the study's first trial; the report states the
    best trial's gain over it."""
    confirm: ConfirmConfig = field(default_factory=ConfirmConfig)
    """Confirmation of the search's best configurations over several seeds (``hpo=publish`` turns it on)."""
    sampler: Sampler = "tpe"
    """Optuna's sampler, seeded per trial so a resumed study suggests what an uninterrupted one would:
    ``tpe`` (default), ``random``, ``gp`` (Gaussian process), ``cmaes`` (CMA-ES: numeric parameters;
    others drawn independently), ``qmc`` (a scrambled Sobol sequence)."""
    warm_start: str | None = None
    """Start from an earlier study: its id (``study_<id>`` under ``experiments_dir``) or the path of its
    ``study_report.json``. Its best ``warm_start_top_k`` parameter sets, restricted to this search space's
    parameters and values, are the first search trials (Optuna's ``enqueue_trial``); the rest are sampled."""
    warm_start_top_k: int = 5
    """How many of the earlier study's best distinct parameter sets ``warm_start`` queues."""
    timeout_s: float | None = None
    """Time budget: no trial is claimed once the study has run this long (seconds from the budget's start,
    kept in the study's storage so every worker and machine reads it: the study's creation, or the
    ``resume`` that passes ``hpo.timeout_s`` again); running trials finish and the report is written.
    None: no budget."""
    patience_trials: int | None = None
    """Plateau stop: the search claims no more trials once this many counted trials in a row did not
    improve the best value by more than ``min_improvement`` (confirmation, if on, still runs). None: off."""
    min_improvement: float = 0.0
    """The margin ``patience_trials`` counts an improvement by (in the objective's units)."""
    n_workers: int = 1
    """Worker processes on this machine running the study's trials at once (each one trial at a time)."""
    devices: list[str] = field(default_factory=list)
    """The device of each worker, round robin (e.g. ``[cuda:0, cuda:1]``); empty: every worker uses
    ``train.device`` (on a CPU each worker gets its share of the cores)."""
    storage: str | None = None
    """Optuna storage URL; default a SQLite file in the study directory for one worker, a journal file
    (``journal://<path>``) for several."""
    study_name: str | None = None
    """Optuna study name; default ``study_<uuid>``. Required for a new study on a database server
    (``hpo.storage=postgresql://...``): every machine runs the same command with the same name and joins one
    study. Naming an existing study continues it (like ``resume``)."""
    search_space: dict[str, Any] = field(default_factory=dict)
    """Nested mapping ``area.field`` -> parameter spec (type, low/high/log or choices; ``when`` makes it
    conditional on other parameters' values)."""
    pruner: Pruner = "none"
    """``none``, ``median`` or ``hyperband``; fed the optimization metric after every epoch."""
    pruner_startup_trials: int = 2
    """Median pruner: trials that run to the end before any is pruned."""
    pruner_warmup_epochs: int = 1
    """Median pruner: epochs of each trial that are never pruned."""
    hyperband_reduction_factor: int = 3
    """Hyperband: the share of trials kept at each rung is 1 / this."""
    heartbeat_interval_s: float = 30.0
    """With a database server: each running trial records an Optuna heartbeat this often."""
    stale_after_s: float = 300.0
    """With a database server: a RUNNING trial whose heartbeat is older than this is failed by Optuna and
    re-queued (to continue from its newest checkpoint) by the next worker that claims a trial."""

    @property
    def search_slots(self) -> int:
        """The baseline trial (when on) and the search trials: the slots a new study queues."""
        return self.n_trials + int(self.baseline_trial)

    @property
    def planned_trials(self) -> int:
        """Every trial the study counts: baseline, search and confirmation (``top_k`` x ``seeds``)."""
        return self.search_slots + self.confirm.top_k * self.confirm.seeds


@dataclass(frozen=True)
class EvaluationConfig:
    evidence_metric: EvidenceLevel = "char"
    """Which evidence level is ``evidence_{precision,recall,f1}``, the one objectives and threshold
    calibration use: ``char`` (non-space characters), ``sentence`` (a sentence counts when at least half of
    its characters are evidence) or ``span`` (runs of evidence matched one to one at IoU >= 0.5). Every
    level is logged and reported as ``evidence_<level>_*`` whichever is chosen."""
    bootstrap_samples: int = 1000
    """Resamples of the test posts for the confidence interval of every test metric (0: no intervals)."""
    confidence: float = 0.95
    """The intervals' confidence level, in (0, 1)."""


@dataclass(frozen=True)
class Config:
    experiments_dir: str = "experiments"
    """Root of all outputs: trial and study directories, the MLflow database."""
    seed: int = 13
    """Seed for splits, initialisation, data order and the sampler."""
    data: DataConfig = field(default_factory=DataConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    evaluation: EvaluationConfig = field(default_factory=EvaluationConfig)
    retention_policy: RetentionConfig = field(default_factory=RetentionConfig)
    disk_guard: DiskGuardConfig = field(default_factory=DiskGuardConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    remote: RemoteConfig = field(default_factory=RemoteConfig)
    logs: LogsConfig = field(default_factory=LogsConfig)
    hub: HubConfig = field(default_factory=HubConfig)
    hpo: HpoConfig = field(default_factory=HpoConfig)


DEPRECATED_KEYS: dict[str, tuple[str, float, str]] = {
    "retention_policy.max_total_size_gb": ("max_total_size_mb", 1024.0, "GB to MB"),
    "tracking.journal_sync_ms": ("journal_sync_s", 0.001, "milliseconds to seconds"),
    "logs.max_bytes": ("max_mb", 1 / MB, "bytes to MB"),
}
"""Keys renamed when every size became MB and every time seconds: old key -> (new key, factor, what
changes). Accepted, with a warning, until the next release."""


def with_values(config: Config, values: dict[str, Any]) -> Config:
    """A copy of ``config`` with dotted fields (``hpo.pruner``) set, not validated (``apply_overrides``
    validates)."""
    sections: dict[str, dict[str, Any]] = {}
    top: dict[str, Any] = {}
    for dotted, value in values.items():
        area, _, name = dotted.partition(".")
        if name:
            sections.setdefault(area, {})[name] = value
        else:
            top[area] = value
    for area, changes in sections.items():
        top[area] = replace(getattr(config, area), **changes)
    return replace(config, **top)


def training_seed(config: Config) -> int:
    """The seed of a trial's training: ``train.seed`` when set (a confirmation trial's), else ``seed``."""
    return config.seed if config.train.seed is None else config.train.seed
