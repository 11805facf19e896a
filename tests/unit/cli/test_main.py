"""The command line's own behaviour: its version, a closed pipe, hints that work in any directory."""

import os
import sys

import pytest

from redsm5_hpo import __version__
from redsm5_hpo.cli.main import EXIT_BROKEN_PIPE, main
from redsm5_hpo.config.loading import EXPERIMENTS_DIR_ENV, load_config
from redsm5_hpo.layout import StudyDir
from tests.conftest import CONFIG_DIR


def test_version(capsys) -> None:
    with pytest.raises(SystemExit) as stopped:
        main(["--version"])
    assert stopped.value.code == 0
    assert capsys.readouterr().out.strip() == f"redsm5-hpo {__version__}"


def test_a_closed_pipe_ends_quietly(tmp_path, monkeypatch, capfd) -> None:
    """`redsm5-hpo cleanup | head -0`: the reader is gone before the first line; exit 141, no traceback."""
    read, write = os.pipe()
    os.close(read)
    stream = os.fdopen(write, "w", buffering=1)
    monkeypatch.setattr(sys, "stdout", stream)
    try:
        code = main(["cleanup", f"experiments_dir={tmp_path}", "--config-dir", str(CONFIG_DIR)])
    finally:
        monkeypatch.undo()
        stream.close()
    assert code == EXIT_BROKEN_PIPE
    assert "Traceback" not in capfd.readouterr().err


def test_the_experiments_dir_comes_from_the_environment_unless_given(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv(EXPERIMENTS_DIR_ENV, str(tmp_path / "from-env"))
    assert load_config([], CONFIG_DIR).experiments_dir == str(tmp_path / "from-env")
    given = load_config([f"experiments_dir={tmp_path / 'given'}"], CONFIG_DIR)
    assert given.experiments_dir == str(tmp_path / "given")


def test_a_hint_names_the_study_and_where_it_is(tmp_path) -> None:
    study = StudyDir(tmp_path / "exp" / "study_abc")
    assert study.command("resume") == f"redsm5-hpo resume --study study_abc experiments_dir={tmp_path / 'exp'}"


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("hpo.n_trial=2", "hpo.n_trial: unknown key; did you mean hpo.n_trials?"),
        ("+hpo.n_trial=2", "hpo.n_trial: unknown key; did you mean hpo.n_trials?"),  # Hydra's own advice, followed
        ("trian.epochs=2", "trian.epochs: unknown key; did you mean train.epochs?"),
        ("train.lr=1e-4", "train.lr: unknown key; did you mean train.lr_head?"),
        ("xyz=1", "xyz: unknown key (every key: docs/configuration-reference.md)"),
    ],
)
def test_a_typo_gets_the_closest_key_once_and_never_hydras_advice(override, expected, capsys) -> None:
    assert main(["tune", override, "--config-dir", str(CONFIG_DIR), "--dry-run"]) == 2
    out, err = capsys.readouterr()
    assert expected in err and err.count("unknown key") == 1
    assert "To append to your config" not in out + err
    assert "unknown key" not in out  # the error is printed once, on stderr


@pytest.mark.parametrize(
    "override",
    ["hpo.search_space.train.lr_head.low=1e-5", "+remote.options.endpoint_url=http://minio:9000", "model=tiny"],
)
def test_keys_under_free_mappings_and_config_groups_are_not_typos(override) -> None:
    load_config([override], CONFIG_DIR)


def test_ui_on_a_busy_port_says_so_at_once_and_starts_nothing(tmp_path) -> None:
    """A real process against a bound socket: one line naming the port and the option, exit 2, in seconds
    (no wait for MLflow to give up, no server started, no log written)."""
    import socket
    import subprocess

    from redsm5_hpo.ports import free_port

    (tmp_path / "study_x").mkdir()  # a study exists: the dashboard's port counts too
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        ports = [f"--dashboard-port={port}", f"--mlflow-port={free_port()}"]
        ended = subprocess.run(
            [sys.executable, "-m", "redsm5_hpo", "ui", *ports, f"experiments_dir={tmp_path}"],
            capture_output=True,
            text=True,
            timeout=10,
        )
    assert ended.returncode == 2 and ended.stdout == ""
    (line,) = ended.stderr.splitlines()
    assert line.startswith(f"error: port {port} on 127.0.0.1 is in use") and "adding `--dashboard-port " in line
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["study_x"]


def test_each_shared_option_is_declared_once_and_parsed_alike_by_every_command_that_lists_it() -> None:
    from redsm5_hpo.cli.main import COMMANDS, DEVICE, STUDY, build_parser

    parser = build_parser()
    required = {
        "rollback": ["--trial", "t", "--epoch", "1"],
        "predict": ["posts.csv", "--output", "o.csv"],
        "export": ["--output", "out"],
        "worker": ["--study-dir", "d"],
    }
    with_study = [name for name, command in COMMANDS.items() if STUDY in command.options]
    with_device = [name for name, command in COMMANDS.items() if DEVICE in command.options]
    assert set(with_study) == {
        "resume",
        "rollback",
        "evaluate",
        "report",
        "verify",
        "predict",
        "export",
        "status",
        "ui",
    }
    assert set(with_device) == {"resume", "evaluate", "predict", "worker"}
    for name in with_study:
        args, extra = parser.parse_known_args([name, *required.get(name, []), "--study", "abc", "seed=3"])
        assert (args.study, [*args.overrides, *extra]) == ("abc", ["seed=3"])
    for name in with_device:
        assert parser.parse_args([name, *required.get(name, []), "--device", "cpu"]).device == "cpu"
    helps = {
        action.help
        for sub in parser._subparsers._group_actions[0].choices.values()  # type: ignore[union-attr]
        for action in sub._actions
        if "--study" in action.option_strings
    }
    assert helps == {STUDY.settings["help"]}


def test_only_the_worker_reads_a_saved_configuration_and_only_model_commands_set_cuda_up() -> None:
    from redsm5_hpo.cli.main import COMMANDS

    assert [name for name, c in COMMANDS.items() if not c.reads_configs] == ["worker"]
    assert {name for name, c in COMMANDS.items() if c.stoppable} == {"tune", "train", "resume", "worker"}
    assert {name for name, c in COMMANDS.items() if c.runs_model} == {
        "tune",
        "train",
        "resume",
        "evaluate",
        "predict",
        "export",
        "worker",
    }
