# redsm5-hpo image, built from the same pins as `make setup`:
#   torch==$TORCH_VERSION first (the index picks CPU or CUDA), then requirements.lock, then the package.
# Build: `make build` (CPU) or `make build VARIANT=cuda` (CUDA 12.8 wheels, needs the NVIDIA runtime to run).
ARG PYTHON_VERSION=3.11
FROM python:${PYTHON_VERSION}-slim-bookworm

ARG VARIANT=cpu
ARG TORCH_VERSION=2.13.0
ARG TORCH_CUDA=cu128

# TOKENIZERS_PARALLELISM is the tokenizers library's switch, not a secret
# hadolint ignore=DL3064
ENV PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HF_HOME=/cache/huggingface \
    TOKENIZERS_PARALLELISM=false

# WordNet database files for synonym augmentation (never downloaded at run time)
# hadolint ignore=DL3008
RUN apt-get update && apt-get install -y --no-install-recommends wordnet-base \
    && rm -rf /var/lib/apt/lists/*

RUN useradd --create-home --uid 1000 redsm5
WORKDIR /app

# 1. torch, pinned with its build's local version (torch==2.13.0+cu128 / +cpu): if that build is missing
#    from PyTorch's index the build fails here, instead of pip taking another one; the CUDA image then
#    checks that torch reports a CUDA version (the layer stays cached while only the code changes)
RUN if [ "$VARIANT" = "cuda" ]; then build="$TORCH_CUDA"; else build=cpu; fi \
    && python -m pip install --index-url "https://download.pytorch.org/whl/$build" \
       --extra-index-url https://pypi.org/simple "torch==${TORCH_VERSION}+$build" \
    && python -c "import sys, torch; sys.exit(0 if '$VARIANT' != 'cuda' or torch.version.cuda else 'torch has no CUDA')"

# 2. every other dependency at the exact version in the lock
COPY requirements.lock ./
RUN python -m pip install -r requirements.lock

# 3. the package itself, without resolving anything again
COPY pyproject.toml README.md ./
COPY src ./src
COPY configs ./configs
RUN python -m pip install --no-deps -e .

USER 1000
# /data: the release CSVs (read-only); /experiments: outputs; /cache/huggingface: the hub cache
VOLUME ["/experiments", "/cache/huggingface"]
EXPOSE 5000
ENTRYPOINT ["redsm5-hpo"]
CMD ["tune", "experiments_dir=/experiments"]
