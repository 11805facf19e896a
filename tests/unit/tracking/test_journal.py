"""The outage journal on real files: fsynced appends, acknowledgements, adoption after a real SIGKILL."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from redsm5_hpo.tracking.journal import Journal, pending_in


def metric(step: int, ts: int = 1000) -> dict:
    return {"kind": "metric", "run_id": "r", "metric": "loss", "step": step, "value": 0.5, "timestamp": ts + step}


def test_confirmed_lines_are_acknowledged_and_a_clean_close_leaves_nothing(tmp_path) -> None:
    journal = Journal(tmp_path)
    items = journal.append([metric(1), metric(2), metric(3)])
    assert journal.pending_count == 3 and journal.pending_bytes > 0
    journal.confirm(items[:2])
    assert journal.pending_count == 1
    assert journal.active.ack_path.read_text() == "2"
    journal.confirm(items[2:])
    assert journal.close() == 0
    assert list(tmp_path.iterdir()) == []


def test_unconfirmed_lines_survive_close_and_are_adopted_by_the_next_process(tmp_path) -> None:
    first = Journal(tmp_path)
    items = first.append([metric(s) for s in range(1, 6)])
    first.confirm(items[:2])
    assert first.close() == 3
    assert pending_in(tmp_path) == 3
    second = Journal(tmp_path)
    adopted = second.adopt_orphans()
    assert [p.entry["step"] for p in adopted] == [3, 4, 5]
    second.confirm(adopted)
    assert pending_in(tmp_path) == 0
    assert [p.name for p in tmp_path.glob("*.jsonl")] == [second.active.path.name]


def test_a_live_segment_is_not_adopted(tmp_path) -> None:
    owner = Journal(tmp_path)
    owner.append([metric(1)])
    other = Journal(tmp_path)
    assert other.adopt_orphans() == []
    owner.close()
    other.close()


def test_a_sigkilled_writer_leaves_its_lines_for_adoption(tmp_path) -> None:
    script = textwrap.dedent(
        f"""
        import os, signal
        from redsm5_hpo.tracking.journal import Journal
        j = Journal({str(tmp_path)!r})
        items = j.append([{{"kind": "metric", "run_id": "r", "metric": "m", "step": s, "value": 1.0,
                          "timestamp": s}} for s in range(10)])
        j.confirm(items[:4])
        os.kill(os.getpid(), signal.SIGKILL)
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=60)
    assert done.returncode == -9
    journal = Journal(tmp_path)
    assert [p.entry["step"] for p in journal.adopt_orphans()] == [4, 5, 6, 7, 8, 9]
    journal.close()


def test_a_line_cut_off_mid_write_is_skipped_not_fatal(tmp_path) -> None:
    first = Journal(tmp_path)
    first.append([metric(1), metric(2)])
    path = first.active.path
    first.close()
    with open(path, "a") as f:
        f.write('{"kind": "metric", "run_id": "r", "met')
    journal = Journal(tmp_path)
    assert [p.entry["step"] for p in journal.adopt_orphans()] == [1, 2]
    journal.close()


def test_a_fully_confirmed_segment_rotates(tmp_path) -> None:
    journal = Journal(tmp_path)
    items = journal.append([metric(s) for s in range(50)])
    old = journal.active.path
    journal.rotate_if_confirmed(min_bytes=100)
    assert journal.active.path == old  # not confirmed yet: never rotated away
    journal.confirm(items)
    journal.rotate_if_confirmed(min_bytes=100)
    assert journal.active.path != old and not old.exists()
    journal.close()
