"""Latency and throughput of the running app through its public API, as a client sees them.

1. Round trip of one extraction with a photo over N sequential calls, through both endpoints:
   "/extract" (the documented JSON API) and "/extract_ui" (what the Extract button runs: the same
   extraction plus highlighted text, table, ARM chart and TEM heatmaps sent back as images).
2. C concurrent clients for S seconds on "/extract_ui": requests served, errors, p50/p95 under the queue.

    python benchmarks/bench_app.py --checkpoint models/default           # starts the app itself
    python benchmarks/bench_app.py --url http://127.0.0.1:7860/          # or measures a running one

Prints a markdown table, and the load averages (other jobs share the cores) before and after.

The clients skip TLS certificate loading for plain-http URLs (`ssl_verify=False`, nothing to verify):
gradio_client downloads each output file with a new httpx client, and loading the CA bundle for it
cost ~40-50 ms per file on two busy cores, about 300 ms per /extract_ui call (six heatmap images)
that a browser, reusing one connection, never pays. `--verify-ssl` measures that way anyway.
"""
from __future__ import annotations

import argparse
import logging
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

from gradio_client import Client, handle_file

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.app_server import launch_app, stop_app  # noqa: E402

log = logging.getLogger("bench_app")

TITLE = "U.S. Polo Assn. Men Checks Navy Blue Shirt"
PHOTO = ROOT / "assets" / "examples" / "17187.jpg"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def one_call(client: Client, endpoint: str) -> float:
    start = time.perf_counter()
    result = client.predict(TITLE, handle_file(str(PHOTO)), 0.5, api_name=endpoint)
    elapsed = time.perf_counter() - start
    if endpoint == "/extract" and "attribute_scores" not in result:
        raise RuntimeError(f"unexpected answer: {result}")
    if endpoint == "/extract_ui" and (not result[2] or not result[3]):  # chart and heatmap gallery
        raise RuntimeError("the page outputs came back without chart or heatmaps")
    return elapsed


def make_client(url: str, verify_ssl: bool) -> Client:
    return Client(url, verbose=False, ssl_verify=verify_ssl or not url.startswith("http://"))


def sequential(url: str, calls: int, endpoint: str, verify_ssl: bool = False) -> list[float]:
    client = make_client(url, verify_ssl)
    one_call(client, endpoint)  # warm-up: first call pays for lazy initialisation
    return [one_call(client, endpoint) for _ in range(calls)]


def concurrent(url: str, clients: int, seconds: float, verify_ssl: bool = False) -> tuple[list[float], int]:
    latencies: list[float] = []
    errors = 0
    lock = threading.Lock()
    deadline = time.monotonic() + seconds

    def worker() -> None:
        nonlocal errors
        client = make_client(url, verify_ssl)
        while time.monotonic() < deadline:
            try:
                elapsed = one_call(client, "/extract_ui")
                with lock:
                    latencies.append(elapsed)
            except Exception as err:  # counted, not fatal: the point is how many fail under load
                log.warning("request failed: %s", err)
                with lock:
                    errors += 1

    threads = [threading.Thread(target=worker) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return latencies, errors


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("--url", help="a running app")
    target.add_argument("--checkpoint", type=Path, help="start the app on this checkpoint")
    parser.add_argument("--calls", type=int, default=50)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--verify-ssl", action="store_true",
                        help="load CA certificates for every client and file download even on plain http")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    for noisy in ("httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(logging.WARNING)

    load_before = os.getloadavg()
    process = None
    url = args.url
    if url is None:
        log_file = Path(tempfile.mkdtemp(prefix="bench-app-")) / "app.log"
        url, process = launch_app(args.checkpoint, log_file)
        log.info("app at %s, log %s", url, log_file)
    try:
        api = sequential(url, args.calls, "/extract", args.verify_ssl)
        page = sequential(url, args.calls, "/extract_ui", args.verify_ssl)
        loaded, errors = concurrent(url, args.clients, args.seconds, args.verify_ssl)
    finally:
        if process is not None:
            stop_app(process)

    ms = 1000.0
    lines = [
        "| measurement | requests | errors | p50 (ms) | p95 (ms) | throughput (req/s) |",
        "|---|---|---|---|---|---|",
        *(f"| 1 client, {args.calls} sequential {name} (text + photo) | {len(times)} | 0 | "
          f"{statistics.median(times) * ms:.0f} | {percentile(times, 95) * ms:.0f} | {len(times) / sum(times):.1f} |"
          for name, times in (("/extract (JSON)", api), ("/extract_ui (chart + heatmaps)", page))),
        f"| {args.clients} concurrent clients on /extract_ui, {args.seconds:.0f} s | {len(loaded)} | {errors} | "
        f"{(statistics.median(loaded) if loaded else float('nan')) * ms:.0f} | "
        f"{percentile(loaded, 95) * ms:.0f} | {len(loaded) / args.seconds:.1f} |",
    ]
    lines.append("\nload average (1, 5, 15 min): before {:.2f} {:.2f} {:.2f}, after {:.2f} {:.2f} {:.2f}; {} CPUs".format(
        *load_before, *os.getloadavg(), os.cpu_count()))
    sys.stdout.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
