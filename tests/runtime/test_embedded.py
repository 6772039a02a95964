"""The embedded NATS server's command and environment (`switchyard.runtime.embedded`)."""

from __future__ import annotations

from pathlib import Path

from switchyard.runtime.embedded import (
    NATS_GODEBUG,
    NatsServer,
    nats_command,
    nats_environment,
    nats_server_binary,
)


def test_godebug_added_when_unset() -> None:
    base = {"PATH": "/bin"}
    env = nats_environment(base)
    assert env == {"PATH": "/bin", "GODEBUG": NATS_GODEBUG}
    assert base == {"PATH": "/bin"}  # the caller's mapping is left as it was


def test_godebug_appended_to_other_settings() -> None:
    env = nats_environment({"GODEBUG": "madvdontneed=1"})
    assert env["GODEBUG"] == f"madvdontneed=1,{NATS_GODEBUG}"
    assert nats_environment({"GODEBUG": "  "})["GODEBUG"] == NATS_GODEBUG


def test_an_operators_schedtrace_is_kept() -> None:
    env = nats_environment({"GODEBUG": "gctrace=1,schedtrace=1000"})
    assert env["GODEBUG"] == "gctrace=1,schedtrace=1000"


def test_command_runs_jetstream_on_the_address(tmp_path: Path) -> None:
    assert nats_command(tmp_path, 4333, "127.0.0.2") == [
        nats_server_binary(),
        "-js",
        "-sd",
        str(tmp_path),
        "-a",
        "127.0.0.2",
        "-p",
        "4333",
    ]


def test_the_started_server_runs_with_the_setting(nats_server: NatsServer) -> None:
    environ = Path(f"/proc/{nats_server.proc.pid}/environ").read_bytes().split(b"\0")
    godebug = [item for item in environ if item.startswith(b"GODEBUG=")]
    assert len(godebug) == 1
    assert NATS_GODEBUG.encode() in godebug[0].split(b"=", 1)[1].split(b",")
