"""A real `posttrain serve` subprocess on a free loopback port, for the serve tests."""

import os
import subprocess
import sys
import time
from contextlib import contextmanager

import httpx

from tests.integration.test_openai_faults import free_port


@contextmanager
def serve_process(model_dir, log_path, *extra: str):
    """Yields the base URL (http://127.0.0.1:PORT/v1) once /v1/models answers; the server's stderr
    goes to log_path (a pipe nobody reads could fill and stall the server)."""
    port = free_port()
    with open(log_path, "w") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "posttrain", "serve", str(model_dir), "--port", str(port), *extra],
            env={**os.environ, "HF_HUB_OFFLINE": "1"},
            stdout=subprocess.DEVNULL,
            stderr=log,
        )
    url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 300  # a start that hangs fails the test instead of the run
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise AssertionError(f"posttrain serve exited: {open(log_path).read()[-2000:]}")
            try:
                if httpx.get(url + "/models", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.2)
        else:
            raise AssertionError(f"posttrain serve did not answer: {open(log_path).read()[-2000:]}")
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)
