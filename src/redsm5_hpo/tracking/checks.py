"""The tracking package's configuration checks (collected by ``config.validation``)."""

from __future__ import annotations

from redsm5_hpo.config.schema import Config
from redsm5_hpo.tracking.auth import insecure_remote
from redsm5_hpo.tracking.sanitize import mask_secrets


def check_config(config: Config) -> list[str]:
    """Metrics do not cross the network unencrypted unless the user says so."""
    tr = config.tracking
    if tr.uri and insecure_remote(tr.uri) and not tr.allow_insecure_http:
        return [
            f"tracking.uri: {mask_secrets(tr.uri)} sends metrics unencrypted over the network; use https:// "
            "(tracking.ca_bundle for a private CA) or set tracking.allow_insecure_http=true"
        ]
    return []
