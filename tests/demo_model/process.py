"""Run the demo model server as a real subprocess on a free port, for tests that talk HTTP to it."""

import os
import queue
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
# This suite's share of the machine's ports; other suites use other ranges.
PORT_RANGE = range(31800, 32200)


def free_port() -> int:
    """A port of PORT_RANGE that nothing listens on now."""
    ports = list(PORT_RANGE)
    start = random.randrange(len(ports))
    for port in ports[start:] + ports[:start]:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port in {PORT_RANGE}")


class DemoModelProcess:
    """``python -m demo_model`` in a child process; a context manager that waits until it serves.

    ``args`` are extra command-line flags, ``env`` extra environment variables; with ``port_from_env``
    the port is passed as ``PORT`` instead of ``--port``.
    """

    def __init__(self, *args, env=None, port_from_env=False, start_timeout=10.0):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        port_args = [] if port_from_env else ["--port", str(self.port)]
        self.command = [sys.executable, "-m", "demo_model", *port_args, *args]
        self.env = {**os.environ, **(env or {})}
        if port_from_env:
            self.env["PORT"] = str(self.port)
        self.start_timeout = start_timeout
        self.lines: list[str] = []
        self._lines = queue.Queue()
        self.process = None

    def __enter__(self):
        self.process = subprocess.Popen(
            self.command, cwd=REPO_ROOT, env=self.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        threading.Thread(target=self._read_output, daemon=True).start()
        self.wait_for_line(lambda line: line.startswith("serving "), timeout=self.start_timeout)
        return self

    def __exit__(self, *exc_info):
        self.stop()

    def _read_output(self):
        for line in self.process.stdout:
            self._lines.put(line.rstrip("\n"))
        self._lines.put(None)

    def output(self) -> list[str]:
        """Every output line so far (without waiting)."""
        while True:
            try:
                line = self._lines.get_nowait()
            except queue.Empty:
                return list(self.lines)
            if line is None:
                self._lines.put(None)  # keep the end mark for wait_for_line
                return list(self.lines)
            self.lines.append(line)

    def requests_logged(self, path) -> int:
        """How many requests to ``path`` the server has logged so far."""
        return sum(f" {path} HTTP/" in line for line in self.output())

    def wait_for_requests(self, path, count, *, timeout=5.0):
        """Wait until the server has logged ``count`` requests to ``path``; fails at the deadline."""
        seen = 0

        def counted(line):
            nonlocal seen
            seen += f" {path} HTTP/" in line
            return seen >= count

        self.wait_for_line(counted, timeout=timeout)

    def wait_for_line(self, predicate, *, timeout=5.0) -> str:
        """The first (new or already seen) output line matching ``predicate``; fails at the deadline."""
        for line in self.lines:
            if predicate(line):
                return line
        deadline = time.monotonic() + timeout
        while (remaining := deadline - time.monotonic()) > 0:
            try:
                line = self._lines.get(timeout=remaining)
            except queue.Empty:
                break
            if line is None:
                raise AssertionError(f"demo model exited; output: {self.lines}")
            self.lines.append(line)
            if predicate(line):
                return line
        raise AssertionError(f"no matching output line within {timeout}s; output: {self.lines}")

    def stop(self, timeout=5.0) -> int:
        """SIGTERM, wait for the exit; the return code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode
