"""`make run`: everything comes up, the SDK streams from the local model, Ctrl-C stops it all."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import openai
import psutil

from switchyard.runtime.embedded import free_port


def wait_for_line(log: Path, proc: subprocess.Popen[bytes], text: str, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        content = log.read_text(errors="replace") if log.exists() else ""
        if text in content:
            return content
        assert proc.poll() is None, f"devstack exited early:\n{content[-3000:]}"
        time.sleep(0.2)
    raise AssertionError(f"{text!r} not printed within {timeout}s:\n{content[-3000:]}")


def test_devstack_up_stream_and_stop(tmp_path: Path) -> None:
    data = tmp_path / "data"
    http_port = free_port()
    env = {
        **os.environ,
        "SWITCHYARD_DATA_DIR": str(data),
        "SWITCHYARD_NATS_PORT": str(free_port()),
        "SWITCHYARD_GATEWAY_PORT": str(http_port),
    }
    log = tmp_path / "devstack.out"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "switchyard.runtime.devstack"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        printed = wait_for_line(log, proc, "Press Ctrl-C to stop.", timeout=120)
        key = (data / "dev-api-key").read_text().strip()
        assert key in printed
        assert f"http://127.0.0.1:{http_port}" in printed
        children = psutil.Process(proc.pid).children(recursive=True)
        names = " ".join(" ".join(c.cmdline()) for c in children)
        for part in (
            "nats-server",
            "switchyard.inference",
            "switchyard.gateway",
            "switchyard.retrieval",
            "switchyard.tools",
        ):
            assert part in names

        sdk = openai.OpenAI(base_url=f"http://127.0.0.1:{http_port}/v1", api_key=key, max_retries=0)
        stream = sdk.chat.completions.create(
            model="smollm2-135m-instruct",
            messages=[{"role": "user", "content": "Name a color."}],
            max_tokens=8,
            stream=True,
        )
        text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
        assert text.strip()
    finally:
        proc.send_signal(signal.SIGINT)  # what Ctrl-C sends
        code = proc.wait(60)
    output = log.read_text()
    assert "switchyard: stopped" in output, output[-3000:]
    assert code == 0, output[-3000:]
    for child in children:
        assert not child.is_running() or child.status() == psutil.STATUS_ZOMBIE, child.cmdline()
    assert not (data / "pg" / "postmaster.pid").exists()  # PostgreSQL shut down too
    assert (data / "pg").is_dir()  # the data stays for the next `make run`
