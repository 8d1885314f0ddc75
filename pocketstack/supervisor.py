"""Keeps a detached pocketstack running: restarts the server if it dies, stops on SIGTERM.

Started by ``pocketstack up -d``; after a crash the server is restarted with backoff and
finds everything in its data dir (state lives in the database).
"""

from __future__ import annotations

import argparse
import signal
import subprocess
import sys
import time


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
    while not stopping:
        started = time.monotonic()
        child = subprocess.Popen(cmd)
        code = child.wait()
        if stopping:
            break
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
