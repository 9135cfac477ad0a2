"""Load on the course's race API, over loopback only: latency and throughput of POST /api/race.

Starts ``descentlab serve`` in a child process on a free 127.0.0.1 port, then measures

1. one lesson widget's race (4 optimizers, 300 steps, one start): p50 of fresh races sent one at a
   time, of slider moves (one racer's setting changed: the other runs come from the run cache),
   and of the same race asked again (served from the answer cache);
2. 1, 50 and 200 concurrent clients, each sending distinct 4-optimizer 300-step races (random lr,
   random start, one of 4 landscapes) one after another: errors, p50/p95 latency, throughput, and
   throughput over the one-client rate.

Bounded: each phase sends a fixed number of requests and stops at --phase-seconds, whichever comes
first. Not a test. Usage: ``.venv/bin/python benchmarks/course_load.py [--markdown]``.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import aiohttp
import orjson

ROOT = Path(__file__).resolve().parents[1]
LANDSCAPES = {  # name: domain box to draw starts from (inside each landscape's own domain)
    "rosenbrock": ((-1.8, 1.8), (-0.8, 2.8)),
    "ravine": ((-2.8, 2.8), (-1.0, 1.0)),
    "himmelblau": ((-4.5, 4.5), (-4.5, 4.5)),
    "anisotropic_well": ((-1.8, 1.8), (-1.8, 1.8)),
}
#: Each racer's learning rate is drawn log-uniformly from this range.
LR_RANGES = {
    "sgd": (1e-4, 1e-2),
    "momentum": (1e-4, 5e-3),
    "adam": (1e-3, 1e-1),
    "rmsprop": (1e-4, 1e-2),
}
WIDGET = {
    "landscape": "ravine",
    "start": [-2.8, 1.0],
    "steps": 300,
    "optimizers": [
        {"key": "sgd", "hyperparameters": {"lr": 0.45}},
        {"key": "momentum", "hyperparameters": {"lr": 0.05, "momentum": 0.9}},
        {"key": "rmsprop", "hyperparameters": {"lr": 0.01}},
        {"key": "adam", "hyperparameters": {"lr": 0.1}},
    ],
}


JSON = {"Content-Type": "application/json"}
#: Races sent before the widget timings start.
WARM_UP = 10


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def random_race(generator: random.Random) -> dict:
    name = generator.choice(list(LANDSCAPES))
    start = [generator.uniform(low, high) for low, high in LANDSCAPES[name]]
    optimizers = []
    for key, (low, high) in LR_RANGES.items():
        lr = 10 ** generator.uniform(math.log10(low), math.log10(high))
        optimizers.append({"key": key, "hyperparameters": {"lr": round(lr, 8)}})
    return {"landscape": name, "start": start, "steps": 300, "optimizers": optimizers}


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(fraction * (len(ordered) - 1))))]


async def timed_post(client: aiohttp.ClientSession, body: dict) -> tuple[float, str | None]:
    """(seconds, None) for a complete answer, else (seconds, what went wrong)."""
    began = time.perf_counter()
    try:
        async with client.post("/api/race", data=orjson.dumps(body), headers=JSON) as answer:
            text = await answer.read()
        if answer.status != 200:
            problem = f"HTTP {answer.status}: {text[:120]!r}"
        elif len(orjson.loads(text)["runs"]) != len(body["optimizers"]):
            problem = "wrong number of runs"
        else:
            problem = None
    except (TimeoutError, aiohttp.ClientError, ValueError, KeyError) as error:
        problem = f"{type(error).__name__}: {error}"
    return time.perf_counter() - began, problem


def session(url: str, connections: int) -> aiohttp.ClientSession:
    """One keep-alive connection per client. aiohttp rather than httpx: at 200 concurrent
    requests httpx's client used more of the two shared cores than the server did (profiled
    with py-spy), so the load generator, not the server, set the latency."""
    return aiohttp.ClientSession(
        base_url=url,
        connector=aiohttp.TCPConnector(limit=connections),
        timeout=aiohttp.ClientTimeout(total=60),
    )


async def phase(url: str, clients: int, per_client: int, seconds: float, seed: int) -> dict:
    """``clients`` concurrent clients, each sending up to ``per_client`` distinct races in turn."""
    latencies: list[float] = []
    errors: list[str] = []
    deadline = time.perf_counter() + seconds
    async with session(url, clients + 5) as client:

        async def one_client(index: int) -> None:
            generator = random.Random(seed * 100_003 + index)
            for _ in range(per_client):
                if time.perf_counter() > deadline:
                    return
                latency, problem = await timed_post(client, random_race(generator))
                latencies.append(latency)
                if problem:
                    errors.append(problem)

        began = time.perf_counter()
        await asyncio.gather(*(one_client(i) for i in range(clients)))
        elapsed = time.perf_counter() - began
    return {
        "clients": clients,
        "requests": len(latencies),
        "errors": len(errors),
        "error_kinds": sorted(set(errors)),
        "p50": percentile(latencies, 0.5),
        "p95": percentile(latencies, 0.95),
        "throughput": len(latencies) / elapsed,
    }


async def widget(url: str, repeats: int) -> tuple[float, float, float]:
    """p50 of fresh widget races (start nudged so none is cached), of a slider move (one racer's
    setting changed, the other three cached), and of the same race asked again (cached)."""
    fresh, moved, cached = [], [], []
    async with session(url, 2) as client:
        # Not timed: the server races every lesson's widget at start-up in a background thread,
        # and its first races pay one-time costs (imports, allocations).
        for index in range(WARM_UP):
            await timed_post(client, {**WIDGET, "start": [2.8 - 1e-4 * index, -1.0]})
        for index in range(repeats):
            body = {**WIDGET, "start": [-2.8 + 1e-4 * (index + 1), 1.0]}
            fresh.append((await timed_post(client, body))[0])
        await timed_post(client, WIDGET)
        for index in range(repeats):
            racers = [dict(racer) for racer in WIDGET["optimizers"]]
            racers[1] = {
                "key": "momentum",
                "hyperparameters": {"lr": 0.05, "momentum": 0.5 + 0.02 * index},
            }
            moved.append((await timed_post(client, {**WIDGET, "optimizers": racers}))[0])
        for _ in range(repeats):
            cached.append((await timed_post(client, WIDGET))[0])
    return statistics.median(fresh), statistics.median(moved), statistics.median(cached)


def start_server(port: int, folder: Path) -> subprocess.Popen:
    environment = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    command = [
        sys.executable, "-m", "descentlab", "serve", "--port", str(port),
        "--db", str(folder / "load.sqlite3"), "--cache", str(folder / "cache"), "--no-clips",
        "--content", str(ROOT / "tests" / "course" / "fixtures" / "content"),
    ]  # fmt: skip
    server = subprocess.Popen(command, env=environment, cwd=ROOT)
    for _ in range(300):
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/landscapes", timeout=2):
                return server
        except OSError:  # refused while starting (URLError is an OSError)
            time.sleep(0.2)
    server.terminate()
    raise SystemExit("the server did not start")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--phase-seconds", type=float, default=60.0, help="cap per phase")
    parser.add_argument("--markdown", action="store_true", help="print a Markdown table")
    arguments = parser.parse_args()
    port = free_port()
    with tempfile.TemporaryDirectory() as folder:
        server = start_server(port, Path(folder))
        url = f"http://127.0.0.1:{port}"
        try:
            fresh, moved, cached = asyncio.run(widget(url, repeats=15))
            rows = [
                asyncio.run(phase(url, clients, per_client, arguments.phase_seconds, seed))
                for seed, (clients, per_client) in enumerate(((1, 30), (50, 4), (200, 3)))
            ]
        finally:
            server.terminate()
            server.wait(timeout=30)
    print(f"widget race (4 optimizers, 300 steps, 1 start): p50 fresh {fresh * 1000:.0f} ms, "
          f"p50 slider move {moved * 1000:.0f} ms, p50 cached {cached * 1000:.1f} ms")  # fmt: skip
    single = rows[0]["throughput"]
    header = ("clients", "requests", "errors", "p50 ms", "p95 ms", "races/s", "× one client")
    lines = [
        (
            r["clients"],
            r["requests"],
            r["errors"],
            f"{r['p50'] * 1000:.0f}",
            f"{r['p95'] * 1000:.0f}",
            f"{r['throughput']:.1f}",
            f"{r['throughput'] / single:.1f}×",
        )  # fmt: skip
        for r in rows
    ]
    for row in rows:
        for kind in row["error_kinds"]:
            print(f"error at {row['clients']} clients: {kind}")
    if arguments.markdown:
        print("| " + " | ".join(header) + " |")
        print("|" + "---|" * len(header))
        for line in lines:
            print("| " + " | ".join(str(v) for v in line) + " |")
    else:
        print("  ".join(f"{h:>12}" for h in header))
        for line in lines:
            print("  ".join(f"{v!s:>12}" for v in line))


if __name__ == "__main__":
    main()
