# redsm5-hpo: every target bootstraps the environment (.venv) itself when it is missing.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
TORCH_VERSION := 2.13.0
TORCH_CUDA ?= cu128
STAMP := $(VENV)/.setup-stamp
WORDNET := /usr/share/wordnet
ARGS ?=

.PHONY: setup train tune resume rollback evaluate report verify sync predict export status ui test test-fast docs lint format lock sample-data cleanup bench zoo gpu-check gpu-smoke clean build shell train-container

# On a machine with an NVIDIA driver, an environment set up before it (or by hand) with torch's CPU build
# gets the CUDA build: checked at every `make setup` (a no-op without nvidia-smi).
setup: $(STAMP)
	@$(BIN)/python scripts/install_torch.py $(TORCH_VERSION) --cuda $(TORCH_CUDA) --gpu-only

# WordNet files for synonym augmentation and chromium for the browser test, from the OS packages (as root;
# otherwise a note says how);
# torch first, pinned, in the build this machine needs (scripts/install_torch.py: the CUDA build where an NVIDIA
# driver lists a GPU, else what pip picks for the platform);
# then the exact lock; then the package itself (editable, no dependency resolution).
$(STAMP): pyproject.toml requirements.lock
	@test -f $(WORDNET)/index.noun || { [ "$$(id -u)" = 0 ] && { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wordnet-base >/dev/null; }; } \
		|| echo "note: WordNet is not in $(WORDNET); synonym/insert augmentation needs Debian's wordnet-base (apt-get install wordnet-base, as root)"
	@command -v chromium >/dev/null || { [ "$$(id -u)" = 0 ] && { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }; } \
		|| echo "note: no chromium; the real-browser test of redsm5-hpo ui is skipped (apt-get install chromium, as root)"
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python scripts/install_torch.py $(TORCH_VERSION) --cuda $(TORCH_CUDA)
	$(BIN)/python -m pip install --quiet -r requirements.lock
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $(STAMP)

# The main job: an HPO study on the bundled sample with the bundled encoder, ending with the report.
train: $(STAMP)
	$(BIN)/redsm5-hpo tune $(ARGS)

tune: train

# Continue the newest interrupted study (ARGS="--study <id>" for another one).
resume: $(STAMP)
	$(BIN)/redsm5-hpo resume $(ARGS)

# After the study: test evaluation from disk, predictions on new posts, a Hugging Face export, what a
# study is doing now (e.g. make predict ARGS="posts.csv --output predictions.csv").
evaluate: $(STAMP)
	$(BIN)/redsm5-hpo evaluate $(ARGS)

predict: $(STAMP)
	$(BIN)/redsm5-hpo predict $(ARGS)

export: $(STAMP)
	$(BIN)/redsm5-hpo export $(ARGS)

status: $(STAMP)
	$(BIN)/redsm5-hpo status $(ARGS)

# The report printed again (summary and plots refreshed); MLflow checked for every metric once; the tracking
# journal sent; a trial moved back to an earlier checkpoint (ARGS="--trial <id> --epoch N").
report: $(STAMP)
	$(BIN)/redsm5-hpo report $(ARGS)

verify: $(STAMP)
	$(BIN)/redsm5-hpo verify $(ARGS)

sync: $(STAMP)
	$(BIN)/redsm5-hpo sync $(ARGS)

rollback: $(STAMP)
	$(BIN)/redsm5-hpo rollback $(ARGS)

# MLflow's UI and optuna-dashboard over the experiments (http://127.0.0.1:5000 and :8080); Ctrl-C stops both.
ui: $(STAMP)
	$(BIN)/redsm5-hpo ui $(ARGS)

# List orphaned checkpoints and logs under experiments/; EXECUTE=true deletes them.
EXECUTE ?= false
cleanup: $(STAMP)
	$(BIN)/redsm5-hpo cleanup $(if $(filter true,$(EXECUTE)),--execute,) $(ARGS)

# Benchmarks (measured side by side in one run); results in bench/results.json and bench/results.md.
bench: $(STAMP)
	HF_HUB_OFFLINE=1 $(BIN)/python bench/run.py $(ARGS)

# The first run on a GPU machine (minutes on one GPU): versions, a bf16 attention-pooling trial, determinism, a
# snapshot from the GPU, CRF timing, gpu-check --quick, 2 workers on 2 GPUs; writes bench/gpu_smoke.{json,md}.
gpu-smoke: $(STAMP)
	HF_HUB_OFFLINE=1 $(BIN)/python bench/gpu_smoke.py $(ARGS)

# The GPU path on a CUDA machine: a tiny study on the GPU, MiniLM epochs in fp32/bf16/fp16 with throughput and
# peak memory, checkpoints moved GPU -> CPU and back; writes bench/gpu_check.{json,md} (ARGS="--device cpu" tests it).
gpu-check: $(STAMP)
	HF_HUB_OFFLINE=1 $(BIN)/python bench/gpu_check.py $(ARGS)

# Model-zoo results: one training per head family on the sample with the bundled encoder (~30 min).
zoo: $(STAMP)
	HF_HUB_OFFLINE=1 $(BIN)/python bench/zoo.py $(ARGS)

# The suite runs on every core (TEST_JOBS=1 for one process), each test process with one torch thread so the
# processes do not fight over the cores.
TEST_JOBS ?= auto
test: $(STAMP)
	HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 $(BIN)/python -m pytest \
		-n $(TEST_JOBS) --dist worksteal --cov=redsm5_hpo --cov-report=term-missing:skip-covered --cov-fail-under=80 --durations=15 $(ARGS)

# The unit tests alone (no study, no server): the inner loop, a few minutes.
test-fast: $(STAMP)
	HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 $(BIN)/python -m pytest -q tests/unit $(ARGS)

# docs/configuration-reference.md from the schema's field docstrings (a unit test fails when it is stale).
docs: $(STAMP)
	$(BIN)/python scripts/make_docs.py

lint: $(STAMP)
	$(BIN)/lint-imports
	$(BIN)/ruff check src tests scripts bench
	$(BIN)/ruff format --check src tests scripts bench
	$(BIN)/mypy
	$(BIN)/hadolint Dockerfile

format: $(STAMP)
	$(BIN)/ruff check --fix src tests scripts bench
	$(BIN)/ruff format src tests scripts bench

# Re-resolve every dependency from pyproject.toml's ranges in a scratch venv and pin it exactly.
# torch is left out on purpose: `make setup` installs it first at TORCH_VERSION for the platform.
lock:
	rm -rf .lock-venv && $(PYTHON) -m venv .lock-venv
	.lock-venv/bin/python -m pip install --quiet "torch==$(TORCH_VERSION)"
	.lock-venv/bin/python -m pip install --quiet -e ".[dev]"
	{ echo "# Exact pins for every dependency except torch (installed first by 'make setup')."; \
	  echo "# Regenerate with 'make lock'."; \
	  { .lock-venv/bin/python -m pip freeze --exclude-editable | grep -v -E '^(torch|nvidia-|triton|cuda-)'; \
	    .lock-venv/bin/python -m pip freeze | grep -E '^nvidia-ml-py=='; } | sort -f; } > requirements.lock
	rm -rf .lock-venv

# Regenerate the bundled sample and the tiny vocab (deterministic; commit the result).
sample-data:
	$(PYTHON) scripts/make_sample_data.py

clean:
	rm -rf $(VENV) .lock-venv .pytest_cache .mypy_cache .ruff_cache .coverage

# Container (Dockerfile + compose.yaml): the same torch pin and lock as `make setup`.
# VARIANT=cpu (default) or cuda; the CUDA image needs the NVIDIA container runtime to use the GPU.
VARIANT ?= cpu
build:
	docker build --build-arg VARIANT=$(VARIANT) --build-arg TORCH_VERSION=$(TORCH_VERSION) -t redsm5-hpo:$(VARIANT) .

shell:
	VARIANT=$(VARIANT) docker compose run --rm --entrypoint bash train$(if $(filter cuda,$(VARIANT)),-gpu,)

train-container:
	VARIANT=$(VARIANT) docker compose run --rm train$(if $(filter cuda,$(VARIANT)),-gpu,) $(ARGS)

