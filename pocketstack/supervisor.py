"""Keeps a detached pocketstack running: restarts the server if it dies, stops on SIGTERM.

Started by ``pocketstack up -d``; after a crash the server is restarted with backoff and
finds everything in its data dir (state lives in the database).
"""

from __future__ import annotations

import argparse
import json
import signal
import subprocess
import sys
import time
from pathlib import Path


def _server_pid(data_dir: str) -> int | None:
    try:
        with open(Path(data_dir) / "runtime.json") as fh:
            return json.load(fh).get("pid")
    except (OSError, ValueError):
        return None


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("data_dir")
    parser.add_argument("--port")
    parser.add_argument("--host")
    args = parser.parse_args()
    cmd = [sys.executable, "-m", "pocketstack", "up", "--supervised", "--data-dir", args.data_dir]
    if args.port:
        cmd += ["--port", args.port]
    if args.host:
        cmd += ["--host", args.host]
    stopping = False
    child: subprocess.Popen | None = None

    def stop(signum, frame):  # noqa: ANN001, ARG001
        nonlocal stopping
        stopping = True
        if child is not None and child.poll() is None:
            child.terminate()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    backoff = 0.5
    ever_started = False
    while not stopping:
        started = time.monotonic()
        child = subprocess.Popen(cmd)
        code = child.wait()
        if stopping:
            break
        # The server records its pid once migrations and bootstrap are done. A first start
        # that never got that far is a configuration problem (bad database URL, port taken):
        # retrying forever would only hide it, so give up and let `up -d` report it.
        got_ready = _server_pid(args.data_dir) == child.pid
        ever_started = ever_started or got_ready
        if not ever_started:
            print(f"pocketstack supervisor: server failed to start (exit {code}); giving up",
                  flush=True)
            sys.exit(code or 1)
        print(f"pocketstack supervisor: server exited with {code}; restarting", flush=True)
        backoff = 0.5 if time.monotonic() - started > 30 else min(backoff * 2, 30)
        time.sleep(backoff)
    if child is not None:
        try:
            child.wait(timeout=20)
        except subprocess.TimeoutExpired:
            child.kill()


if __name__ == "__main__":
    main()
