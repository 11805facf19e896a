"""A busy port is found before `ui` starts anything, with the option and a free port to use instead."""

import socket

from redsm5_hpo.ports import HOST, busy_ports_problem, free_port, port_is_free


def test_a_bound_port_is_busy_and_named_with_a_free_alternative() -> None:
    with socket.socket() as taken:
        taken.bind((HOST, 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert not port_is_free(port)
        problem = busy_ports_problem({"--mlflow-port": port, "--dashboard-port": free_port()})
        assert problem is not None and problem.startswith(f"port {port} on {HOST} is in use")
        suggested = int(problem.split("--mlflow-port ")[1].rstrip("`"))
        assert "--dashboard-port" not in problem and port_is_free(suggested) and suggested != port
    assert port_is_free(port)  # released
    assert busy_ports_problem({"--mlflow-port": port}) is None
