"""Startup time: `python app.py` until the first HTTP 200 on `/`, vs `python -c "import gradio"`.

    python bench/startup.py [--runs 5]

Each run starts a fresh process (cwd = the project root): the app with `--port P --no-detect --home TMP`
(a new empty temporary home per run unless --same-home), polled with GET / every `--poll` seconds until it
answers 200; its process group is then stopped (SIGTERM, then SIGKILL after 10 s). The baseline is the wall
time of a `python -c "import gradio"` subprocess, the floor any Gradio app pays. Runs are interleaved
(the order alternates) after one unmeasured warm-up of each; medians are compared.
Target: app / import-gradio <= 1.5x.

With --importtime, the app is started once more with `python -X importtime` and the slowest imports are
listed (self and cumulative microseconds), to show where startup time goes.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TARGET = 1.5


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def clean_env(home: Path) -> dict:
    env = dict(os.environ, GRADIO_ANALYTICS_ENABLED="False", PLAYGROUND_HOME=str(home),
               TIKTOKEN_CACHE_DIR=str(home / "tiktoken"))
    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL"):  # no background calls to a real provider
        env.pop(name, None)
    return env


def http_status(port: int, timeout: float = 2.0) -> int | None:
    """Status of GET / (a bare HTTP/1.0 request: no client library to import or warm up), None if not up."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
            s.sendall(b"GET / HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
            first = s.recv(64)
            # Read the body out so the server finishes cleanly.
            while s.recv(65536):
                pass
    except OSError:
        return None
    m = re.match(rb"HTTP/1\.[01] (\d{3})", first)
    return int(m.group(1)) if m else None


def stop_group(proc: subprocess.Popen) -> None:
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(timeout=10)


def time_app(home: Path, poll: float, timeout: float, extra_args: list[str] | None = None) -> tuple[float, str]:
    port = free_port()
    log_path = home.parent / f"app-{port}.log"
    with open(log_path, "wb") as log:
        start = time.monotonic()
        proc = subprocess.Popen(
            [sys.executable, *(extra_args or []), "app.py", "--port", str(port), "--no-detect", "--home", str(home)],
            cwd=ROOT, env=clean_env(home), stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True)
        try:
            while True:
                status = http_status(port)
                if status == 200:
                    elapsed = time.monotonic() - start
                    break
                if proc.poll() is not None:
                    raise RuntimeError(f"the app exited with {proc.returncode} before answering:\n"
                                       f"{log_path.read_text(errors='replace')[-3000:]}")
                if time.monotonic() - start > timeout:
                    raise RuntimeError(f"no HTTP 200 on / within {timeout:g} s (last status {status})")
                time.sleep(poll)
        finally:
            stop_group(proc)
    return elapsed, str(log_path)


def time_import_gradio(home: Path) -> float:
    start = time.monotonic()
    subprocess.run([sys.executable, "-c", "import gradio"], cwd=ROOT, env=clean_env(home), check=True,
                   stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.monotonic() - start


def importtime_report(base: Path, poll: float, timeout: float, top: int = 15) -> None:
    home = base / "importtime-home"
    _, log_path = time_app(home, poll, timeout, ["-X", "importtime"])
    rows = []
    for line in Path(log_path).read_text(errors="replace").splitlines():
        m = re.match(r"import time:\s+(\d+)\s+\|\s+(\d+)\s+\|(\s*)(\S+)", line)
        if m:
            rows.append((int(m.group(1)), int(m.group(2)), len(m.group(3)), m.group(4)))
    if not rows:
        print("  (no -X importtime output)")
        return
    print()
    print("Slowest imports of the app (python -X importtime app.py; top-level imports, cumulative ms):")
    top_level = sorted((r for r in rows if r[2] <= 1), key=lambda r: -r[1])[:top]
    for _self_us, cum_us, _, name in top_level:
        print(f"  {cum_us / 1000:8.1f}  {name}")
    ours = sorted((r for r in rows if r[3].split(".")[0] in ("playground", "app")), key=lambda r: -r[1])[:top]
    if ours:
        print("  the project's own modules (cumulative ms, self ms):")
        for self_us, cum_us, _, name in ours:
            print(f"  {cum_us / 1000:8.1f} {self_us / 1000:8.1f}  {name}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5, help="measured runs of each (default 5)")
    parser.add_argument("--poll", type=float, default=0.01, help="seconds between GET / attempts (default 0.01)")
    parser.add_argument("--timeout", type=float, default=60.0, help="give up on a run after this many seconds")
    parser.add_argument("--same-home", action="store_true",
                        help="reuse one home (database already created) instead of a fresh one per run")
    parser.add_argument("--importtime", choices=("auto", "always", "never"), default="auto",
                        help="list the slowest imports: when the target is missed (auto), always, never")
    args = parser.parse_args(argv)

    started = time.monotonic()
    app_times: list[float] = []
    import_times: list[float] = []
    with tempfile.TemporaryDirectory(prefix="playground-startup-") as tmp:
        base = Path(tmp)
        counter = iter(range(10 ** 6))

        def home() -> Path:
            return base / ("home" if args.same_home else f"home-{next(counter)}")

        # Warm-up (page cache, .pyc files), not measured.
        time_import_gradio(home())
        time_app(home(), args.poll, args.timeout)
        for i in range(args.runs):
            order = ("app", "import") if i % 2 == 0 else ("import", "app")
            for what in order:
                if what == "app":
                    app_times.append(time_app(home(), args.poll, args.timeout)[0])
                else:
                    import_times.append(time_import_gradio(home()))
            print(f"  run {i + 1}/{args.runs}: app {app_times[-1]:.2f} s   import gradio {import_times[-1]:.2f} s",
                  flush=True)

        app_med = statistics.median(app_times)
        imp_med = statistics.median(import_times)
        ratio = app_med / imp_med
        ok = ratio <= TARGET
        print()
        print(f"Startup: {args.runs} runs each, interleaved; {'one reused home' if args.same_home else 'a fresh home per run'}; "
              f"GET / polled every {args.poll * 1000:g} ms")
        print()
        head = f"{'':<44} {'median (s)':>10} {'min (s)':>8} {'max (s)':>8}"
        print(head)
        print("-" * len(head))
        print(f"{'python app.py -> first HTTP 200 on /':<44} {app_med:>10.2f} {min(app_times):>8.2f} {max(app_times):>8.2f}")
        baseline = 'python -c "import gradio" (baseline)'
        print(f"{baseline:<44} {imp_med:>10.2f} {min(import_times):>8.2f} {max(import_times):>8.2f}")
        print()
        print(f"app / import gradio   {ratio:.2f}x   target <= {TARGET:.1f}x   {'PASS' if ok else 'MISS'}"
              f"   (app overhead beyond import gradio: {app_med - imp_med:+.2f} s)")

        if args.importtime == "always" or (args.importtime == "auto" and not ok):
            importtime_report(base, args.poll, args.timeout)
    print()
    print(f"done in {time.monotonic() - started:.0f} s")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
