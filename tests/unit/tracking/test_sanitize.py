import json
import logging
import string

from hypothesis import given
from hypothesis import strategies as st

from redsm5_hpo.tracking.logs import json_log_file, setup_logging
from redsm5_hpo.tracking.mlflow_tracker import MLflowTracker, default_tracking_uri
from redsm5_hpo.tracking.sanitize import MASK, mask_secrets

ALNUM = string.ascii_letters + string.digits
words = st.text(alphabet=string.ascii_lowercase + " ", max_size=30)


@given(words, st.text(alphabet=ALNUM, min_size=30, max_size=40), words)
def test_hugging_face_tokens_are_masked(before, body, after) -> None:
    token = "hf_" + body
    assert token not in mask_secrets(f"{before} {token} {after}")


@given(st.text(alphabet=ALNUM + "._-", min_size=8, max_size=60))
def test_bearer_values_are_masked(value) -> None:
    assert mask_secrets(f"Authorization: Bearer {value}") == f"Authorization: Bearer {MASK}"


@given(st.text(alphabet=ALNUM, min_size=1, max_size=12), st.text(alphabet=ALNUM + "!$&*", min_size=1, max_size=20))
def test_url_passwords_are_masked(user, password) -> None:
    masked = mask_secrets(f"https://{user}:{password}@tracking.example.com/api")
    assert masked == f"https://{user}:{MASK}@tracking.example.com/api"


@given(st.text(alphabet=string.ascii_lowercase + ".", min_size=1, max_size=15).filter(lambda s: s.strip(".")))
def test_email_addresses_are_masked(local) -> None:
    assert "@" not in mask_secrets(f"contact {local.strip('.')}@example.org now")


@given(st.uuids(), st.binary(min_size=32, max_size=32))
def test_ids_and_hashes_stay_readable(uuid, digest) -> None:
    text = f"trial_{uuid.hex} sha256 {digest.hex()} epoch_0003 sqlite:////tmp/x/mlflow.db"
    assert mask_secrets(text) == text


def test_long_mixed_keys_are_masked() -> None:
    assert mask_secrets("api key sk-ABCDEFGHIJKLMNOPqrst1234 and Zx9" + "aB3" * 11) == f"api key {MASK} and {MASK}"


def test_logs_and_tracking_tags_are_masked(tmp_path) -> None:
    setup_logging()
    path = tmp_path / "events.jsonl"
    secret = "hf_" + "A1b2C3d4E5" * 3
    with json_log_file(path):
        logging.getLogger("redsm5_hpo.test").warning("login with %s failed", secret)
    assert secret not in path.read_text() and MASK in path.read_text()
    tracker = MLflowTracker(default_tracking_uri(tmp_path), "exp")
    run = tracker.start_run("r", {"note": f"token {secret}"})
    tracker.log_params(run, {"tracking": {"uri": "https://bob:hunter2@mlflow.example.com"}})
    data = tracker.client.get_run(run).data
    assert secret not in json.dumps(data.tags) and "hunter2" not in json.dumps(data.params)
