"""What can be checked of the container without a Docker daemon: the image installs exactly what
`make setup` installs, the build context holds what the Dockerfile copies and nothing else, and the
compose file mounts what the operator docs promise."""

from __future__ import annotations

import fnmatch
import re
import subprocess
from pathlib import Path

import yaml

from tests.conftest import REPO


def dockerfile_runs() -> list[str]:
    text = (REPO / "Dockerfile").read_text().replace("\\\n", " ")
    return [" ".join(line.split()[1:]) for line in text.splitlines() if line.startswith("RUN ")]


def test_image_installs_the_same_torch_pin_lock_and_package_as_make_setup() -> None:
    makefile = (REPO / "Makefile").read_text()
    torch_version = re.search(r"^TORCH_VERSION := (\S+)", makefile, re.M).group(1)
    cuda = re.search(r"^TORCH_CUDA \?= (\S+)", makefile, re.M).group(1)
    dockerfile = (REPO / "Dockerfile").read_text()
    assert f"ARG TORCH_VERSION={torch_version}" in dockerfile and f"ARG TORCH_CUDA={cuda}" in dockerfile
    setup = re.search(r"^\$\(STAMP\):.*?\n((?:\t.*\n)+)", makefile, re.M).group(1)
    runs = dockerfile_runs()
    for step in (
        "scripts/install_torch.py $(TORCH_VERSION) --cuda $(TORCH_CUDA)",
        "pip install --quiet -r requirements.lock",
        "pip install --quiet --no-deps -e .",
    ):
        assert step in setup
    (torch_run,) = [r for r in runs if "torch==" in r]
    assert '"torch==${TORCH_VERSION}+$build"' in torch_run  # the build's local version: no silent fallback
    assert "torch.version.cuda" in torch_run  # and the CUDA image checks it got one
    assert any(r.endswith("pip install -r requirements.lock") for r in runs)
    assert any(r.endswith("pip install --no-deps -e .") for r in runs)
    order = [next(i for i, r in enumerate(runs) if key in r) for key in ("torch==", "requirements.lock", "--no-deps")]
    assert order == sorted(order), "torch first, then the lock, then the package, as in make setup"


def build_context() -> set[str]:
    """Tracked files that .dockerignore lets into the build context (its `*` then `!path` rules)."""
    rules = [
        r.strip() for r in (REPO / ".dockerignore").read_text().splitlines() if r.strip() and not r.startswith("#")
    ]
    tracked = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True).stdout.split()
    included = set()
    for path in tracked:
        keep = True
        for rule in rules:
            negate = rule.startswith("!")
            pattern = rule.lstrip("!").rstrip("/")
            hit = (
                fnmatch.fnmatch(path, pattern)
                or path.startswith(pattern + "/")
                or fnmatch.fnmatch(path, pattern.replace("**/", "*"))
            )
            if hit:
                keep = negate
        if keep:
            included.add(path)
    return included


def test_build_context_holds_what_the_dockerfile_copies_and_no_more() -> None:
    context = build_context()
    copies = re.findall(r"^COPY (.+) \S+$", (REPO / "Dockerfile").read_text(), re.M)
    for source in " ".join(copies).split():
        assert any(p == source or p.startswith(source.rstrip("/") + "/") for p in context), source
    assert not any(p.startswith(("tests/", "bench/", ".ci/", "experiments/")) for p in context)
    assert "src/redsm5_hpo/cli/main.py" in context and "configs/config.yaml" in context


def test_compose_mounts_data_read_only_and_outputs_read_write_with_gpu_access() -> None:
    compose = yaml.safe_load((REPO / "compose.yaml").read_text())
    services = compose["services"]
    for name in ("train", "train-gpu"):
        volumes = services[name]["volumes"]
        assert any(v.endswith(":/data:ro") for v in volumes)
        assert any(v.endswith(":/experiments") for v in volumes)
        assert any(v.endswith(":/cache/huggingface") for v in volumes)
    devices = services["train-gpu"]["deploy"]["resources"]["reservations"]["devices"]
    assert devices[0]["driver"] == "nvidia" and "gpu" in devices[0]["capabilities"]
    assert services["train-gpu"]["shm_size"] == "8gb"  # DataLoader workers share batches through /dev/shm
    assert "deploy" not in services["train"]  # the CPU service starts on a host without GPUs
    assert services["mlflow"]["ports"] == ["127.0.0.1:5000:5000"]
    assert Path(REPO / "Dockerfile").read_text().count("EXPOSE 5000") == 1


def test_the_kubernetes_manifest_runs_one_study_on_shared_storage_with_the_url_from_a_secret() -> None:
    from redsm5_hpo.config import load_config
    from tests.conftest import CONFIG_DIR

    documents = list(yaml.safe_load_all((REPO / "deploy" / "kubernetes" / "study.yaml").read_text()))
    (claim,) = [d for d in documents if d["kind"] == "PersistentVolumeClaim"]
    jobs = {d["metadata"]["name"]: d for d in documents if d["kind"] == "Job"}
    assert claim["spec"]["accessModes"] == ["ReadWriteMany"] and set(jobs) == {"redsm5-hpo-study", "redsm5-hpo-workers"}
    names = set()
    for job in jobs.values():
        pod = job["spec"]["template"]["spec"]
        (container,) = pod["containers"]
        assert container["image"].endswith("/redsm5-hpo:cuda") and container["args"][0] == "tune"
        env = {e["name"]: e for e in container["env"]}
        assert env["OPTUNA_STORAGE"]["valueFrom"]["secretKeyRef"] == {"name": "redsm5-hpo-db", "key": "storage-url"}
        assert "hpo.storage=$(OPTUNA_STORAGE)" in container["args"]  # no password in the manifest
        (mount,) = container["volumeMounts"]
        (volume,) = pod["volumes"]
        assert volume["persistentVolumeClaim"]["claimName"] == claim["metadata"]["name"] == "redsm5-experiments"
        assert mount == {"name": volume["name"], "mountPath": "/experiments"}
        assert "experiments_dir=/experiments" in container["args"]
        assert pod["terminationGracePeriodSeconds"] >= 60  # room to stop at the next batch on SIGTERM
        # the arguments are a valid configuration once Kubernetes has substituted the variables
        args = [a.replace("$(OPTUNA_STORAGE)", "postgresql://u:p@db/redsm5") for a in container["args"][1:]]
        args = [a.replace("$(MLFLOW_TRACKING_URI)", env["MLFLOW_TRACKING_URI"]["value"]) for a in args]
        config = load_config(args, CONFIG_DIR)
        assert config.hpo.storage.startswith("postgresql://")
        names.add(config.hpo.study_name)
    (name,) = names  # every pod works on the same study
    (wait,) = jobs["redsm5-hpo-workers"]["spec"]["template"]["spec"]["initContainers"]
    assert f"/experiments/{name}/study.json" in " ".join(wait["command"])  # workers join once it exists
    assert jobs["redsm5-hpo-workers"]["spec"]["parallelism"] >= 2


def test_the_bucket_manifest_needs_no_shared_volume_and_keeps_credentials_in_secrets() -> None:
    from redsm5_hpo.config import load_config
    from tests.conftest import CONFIG_DIR

    text = (REPO / "deploy" / "kubernetes" / "study-bucket.yaml").read_text()
    documents = list(yaml.safe_load_all(text))
    assert {d["kind"] for d in documents} == {"Job"}  # no PersistentVolumeClaim
    assert "AWS_SECRET_ACCESS_KEY=" not in text.replace("--from-literal=AWS_SECRET_ACCESS_KEY=...", "")
    jobs = {d["metadata"]["name"]: d for d in documents}
    assert set(jobs) == {"redsm5-hpo-study", "redsm5-hpo-workers"}
    configs = []
    for job in jobs.values():
        pod = job["spec"]["template"]["spec"]
        (container,) = pod["containers"]
        (volume,) = pod["volumes"]
        assert "emptyDir" in volume and container["volumeMounts"] == [{"name": volume["name"], "mountPath": "/scratch"}]
        assert container["envFrom"] == [{"secretRef": {"name": "redsm5-hpo-bucket"}}]
        assert pod["terminationGracePeriodSeconds"] >= 60 + 30  # the flush (remote.flush_timeout_s) and a batch
        env = {e["name"]: e for e in container["env"]}
        args = [a.replace("$(OPTUNA_STORAGE)", "postgresql://u:p@db/redsm5") for a in container["args"][1:]]
        args = [a.replace("$(MLFLOW_TRACKING_URI)", env["MLFLOW_TRACKING_URI"]["value"]) for a in args]
        configs.append(load_config(args, CONFIG_DIR))
    assert {(c.hpo.study_name, c.remote.uri, c.experiments_dir) for c in configs} == {
        ("study_k8s", "s3://redsm5-studies/k8s", "/scratch/experiments")
    }
    assert all(c.remote.options == {} for c in configs)  # credentials only from the secret's environment
    (wait,) = jobs["redsm5-hpo-workers"]["spec"]["template"]["spec"]["initContainers"]
    waiting = " ".join(wait["command"])
    assert "redsm5-hpo status --study study_k8s" in waiting and "remote.uri=s3://redsm5-studies/k8s" in waiting
