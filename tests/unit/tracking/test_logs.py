"""Rotating JSON-lines logs: size and daily rotation without losing an event; stdout levels."""

from __future__ import annotations

import datetime as dt
import json
import logging
import os

from redsm5_hpo.config.schema import MB, LogsConfig
from redsm5_hpo.errors import first_line, traceback_text
from redsm5_hpo.tracking.logs import TRACEBACK, RotatingJsonLinesHandler, json_log_file, setup_logging


def read_events(directory, name="events.jsonl") -> list[dict]:
    files = sorted(directory.glob(name + "*"), key=lambda p: -int(p.suffix[1:]) if p.suffix[1:].isdigit() else 0)
    return [json.loads(line) for f in files for line in f.read_text().splitlines()]


def test_size_rotation_loses_no_event(tmp_path) -> None:
    path = tmp_path / "events.jsonl"
    settings = LogsConfig(max_mb=400 / MB, backup_count=200, daily=False)
    with json_log_file(path, settings):
        for i in range(300):
            logging.getLogger("redsm5_hpo.test").info("event %d", i)
    assert len(list(tmp_path.glob("events.jsonl.*"))) > 20
    assert [e["message"] for e in read_events(tmp_path)] == [f"event {i}" for i in range(300)]
    assert all(f.stat().st_size <= 400 for f in tmp_path.glob("events.jsonl*"))


def test_rotation_keeps_backup_count_files(tmp_path) -> None:
    path = tmp_path / "events.jsonl"
    with json_log_file(path, LogsConfig(max_mb=300 / MB, backup_count=14, daily=False)):
        for i in range(500):
            logging.getLogger("redsm5_hpo.test").info("event %d", i)
    assert len(list(tmp_path.glob("events.jsonl*"))) == 15
    messages = [e["message"] for e in read_events(tmp_path)]
    assert messages == [f"event {i}" for i in range(500 - len(messages), 500)]  # the newest, contiguous


def test_daily_rotation_when_the_date_changes(tmp_path) -> None:
    day = [dt.date(2026, 11, 30)]
    handler = RotatingJsonLinesHandler(tmp_path / "events.jsonl", 10**9, 14, daily=True, today=lambda: day[0])
    logger = logging.getLogger("redsm5_hpo.test.daily")
    logger.addHandler(handler)
    try:
        logger.warning("before midnight")
        day[0] = dt.date(2026, 12, 1)
        logger.warning("after midnight")
    finally:
        logger.removeHandler(handler)
        handler.close()
    assert (tmp_path / "events.jsonl.1").read_text().strip().endswith("before midnight")
    assert "after midnight" in (tmp_path / "events.jsonl").read_text()


def test_a_log_left_from_an_earlier_day_rotates_at_the_first_record(tmp_path) -> None:
    path = tmp_path / "events.jsonl"
    path.write_text('{"message": "yesterday"}\n')
    yesterday = dt.datetime(2026, 11, 29, 12, tzinfo=dt.UTC).timestamp()
    os.utime(path, (yesterday, yesterday))
    handler = RotatingJsonLinesHandler(path, 10**9, 14, daily=True, today=lambda: dt.date(2026, 11, 30))
    logger = logging.getLogger("redsm5_hpo.test.daily")
    logger.addHandler(handler)
    try:
        logger.warning("today")
    finally:
        logger.removeHandler(handler)
        handler.close()
    assert "yesterday" in (tmp_path / "events.jsonl.1").read_text()
    assert "yesterday" not in path.read_text() and "today" in path.read_text()


def test_critical_is_on_stdout_whatever_the_level(capsys) -> None:
    setup_logging("ERROR")
    try:
        logging.getLogger("redsm5_hpo.test").warning("quiet warning")
        logging.getLogger("redsm5_hpo.test").critical("loud failure")
    finally:
        setup_logging("INFO")
    out = capsys.readouterr().out
    assert "loud failure" in out and "quiet warning" not in out


def test_a_failure_s_traceback_goes_to_the_json_file_masked_and_not_to_stdout(tmp_path, capsys) -> None:
    setup_logging("INFO")
    token = "hf_" + "a1B2c3D4e5" * 3
    with json_log_file(tmp_path / "events.jsonl"):
        try:
            try:
                raise KeyError("inner")
            except KeyError as inner:
                raise ValueError(f"cannot load with {token}\nsecond line") from inner
        except ValueError as e:
            logging.getLogger("redsm5_hpo.test").error(
                "failed: %s", first_line(e), extra={TRACEBACK: traceback_text(e)}
            )
    (event,) = read_events(tmp_path)
    assert event["message"] == "failed: cannot load with ***"
    trace = event["traceback"]
    assert trace.startswith("Traceback (most recent call last)") and "KeyError: 'inner'" in trace
    assert "ValueError: cannot load with ***" in trace and token not in trace
    out = capsys.readouterr().out
    assert "failed: cannot load" in out and "Traceback" not in out


def test_first_line_of_an_error() -> None:
    assert first_line(ValueError("one\ntwo")) == "one"
    assert first_line(RuntimeError()) == "RuntimeError"
