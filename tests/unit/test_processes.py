"""Pid files and ports of the local stack."""

from __future__ import annotations

import os
import socket
from pathlib import Path

from deploy.stack.processes import free_port, is_running, live_pid, port_is_free


def test_a_pid_file_naming_a_dead_process_is_removed(tmp_path: Path) -> None:
    pid_file = tmp_path / "x.pid"
    pid_file.write_text("999999\n")

    assert live_pid(pid_file, "anything") is None
    assert not pid_file.exists()


def test_a_reused_pid_of_another_program_is_not_taken_for_ours(tmp_path: Path) -> None:
    pid_file = tmp_path / "x.pid"
    pid_file.write_text(f"{os.getpid()}\n")

    assert live_pid(pid_file, "kafka.Kafka") is None
    assert is_running(os.getpid(), "python")


def test_a_free_port_is_free_until_someone_listens_on_it() -> None:
    port = free_port()
    assert port_is_free(port)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))
        sock.listen()
        assert not port_is_free(port)
