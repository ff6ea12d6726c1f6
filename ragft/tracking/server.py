"""``local_server()``: one ``mlflow server`` on 127.0.0.1 in front of a SQLite store, so many parallel
writers (a sweep's DVC workers) go through one process instead of racing on the file."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from ragft.tracking.store import TrackingError

log = logging.getLogger(__name__)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def local_server(backend_uri: str, artifacts: str | os.PathLike, timeout: float = 180.0) -> Iterator[str]:
    """Run ``mlflow server`` on 127.0.0.1 (a free port) in front of ``backend_uri``; yield its URL.

    The server is always stopped on exit (its whole process group: uvicorn runs in a child). Create
    the store first (``ensure_experiment``): the server's own migrations then find it ready.
    """
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    cmd = [
        sys.executable, "-m", "mlflow", "server",
        "--backend-store-uri", backend_uri,
        "--artifacts-destination", str(Path(artifacts).resolve()),
        "--host", "127.0.0.1", "--port", str(port),
        "--workers", "1",  # one process owns the SQLite file; requests are served by its threads
    ]
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    env["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] = "false"  # no background job runner process
    with tempfile.NamedTemporaryFile(prefix="mlflow-server-", suffix=".log", delete=False) as log_file:
        proc = subprocess.Popen(cmd, stdout=log_file, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        log.info("mlflow server %s (pid %d) in front of %s", url, proc.pid, backend_uri)
        healthy = False
        try:
            _wait_for_health(url, proc, timeout, Path(log_file.name))
            healthy = True
            yield url
        finally:
            crashed = proc.poll() is not None
            _stop_process_group(proc)
            if healthy and not crashed:
                Path(log_file.name).unlink(missing_ok=True)
            else:
                log.warning("mlflow server %s failed; its log: %s", url, log_file.name)


def _wait_for_health(url: str, proc: subprocess.Popen, timeout: float, log_path: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = log_path.read_text(errors="replace")[-2000:]
            raise TrackingError(f"mlflow server exited with code {proc.returncode} before it was ready:\n{tail}")
        try:
            with urllib.request.urlopen(url + "/health", timeout=2) as resp:
                if resp.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.5)
    raise TrackingError(f"mlflow server {url} did not answer /health within {timeout:.0f} s (log: {log_path})")


def _stop_process_group(proc: subprocess.Popen, grace: float = 20.0) -> None:
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(5)
