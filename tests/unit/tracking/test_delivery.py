"""Each kind of journal record reaches a real MLflow store through the one dispatch table."""

import pytest

from redsm5_hpo.tracking.delivery import DELIVER, Connection, Delivery, RunIdMap
from redsm5_hpo.tracking.journal import Kind
from redsm5_hpo.tracking.mlflow_tracker import MLflowTracker, default_tracking_uri
from redsm5_hpo.tracking.records import LOCAL_PREFIX, Rejected


def test_every_kind_but_run_creation_has_its_delivery() -> None:
    assert set(DELIVER) == set(Kind) - {Kind.CREATE_RUN}


def test_a_journaled_run_of_every_kind_arrives_in_mlflow(tmp_path) -> None:
    tracker = MLflowTracker(default_tracking_uri(tmp_path), "exp", artifact_root=tmp_path / "artifacts")
    delivery = Delivery(Connection(lambda: tracker, None), RunIdMap(tmp_path / "run_ids.json"))
    local = f"{LOCAL_PREFIX}1"
    (tmp_path / "a.json").write_text("{}")
    lines = [  # as a journal holds them: plain strings, read back from JSON
        {"kind": "create_run", "run_id": local, "name": "r", "tags": {"study_id": "s1"}, "parent": None},
        {"kind": "params", "run_id": local, "params": {"train.lr": "0.1"}},
        {"kind": "metrics", "run_id": local, "step": 1, "timestamp": 1, "values": {"val_loss": 0.5, "f1": 0.2}},
        {"kind": "metric", "run_id": local, "metric": "val_loss", "step": 2, "value": 0.4, "timestamp": 2},
        {"kind": "tags", "run_id": local, "tags": {"lifecycle": "running"}},
        {"kind": "artifact", "run_id": local, "path": str(tmp_path / "a.json")},
        {
            "kind": "dataset",
            "run_id": local,
            "dataset": {
                "name": "d",
                "digest": "abc",
                "source": "sample",
                "revision": "r1",
                "source_type": "local",
                "splits": {},
                "context": "training",
            },
        },
        {"kind": "status", "run_id": local, "status": "FINISHED"},
    ]
    for line in lines:
        delivery.deliver([line])
    run = delivery.run_ids.resolve(local)
    assert not run.startswith(LOCAL_PREFIX)
    found = tracker.client.get_run(run)
    assert found.data.params["train.lr"] == "0.1" and found.data.tags["lifecycle"] == "running"
    assert [(m.step, m.value) for m in tracker.client.get_metric_history(run, "val_loss")] == [(1, 0.5), (2, 0.4)]
    assert [a.path for a in tracker.client.list_artifacts(run)] == ["a.json"]
    assert [d.dataset.name for d in found.inputs.dataset_inputs] == ["d"]
    assert found.info.status == "FINISHED"
    with pytest.raises(Rejected, match="unknown record kind 'nonsense'"):
        delivery.deliver([{"kind": "nonsense", "run_id": run}])
