"""Benchmark the hotline's webhooks against a minimal Flask floor, on loopback, in one run.

Both apps run under the same gunicorn settings; the load is signed Twilio webhook requests (a
greeting, a language choice that stores a call row, a main menu choice and a topic) with the
headers Heroku's router adds, sent by client processes on 127.0.0.1. Reports requests/s and p99
latency of each, and their ratio: timings on a shared machine are noisy, so the ratio to a floor
measured in the same run is the figure to read. Not a test: run it by hand,
`python bench/webhooks.py`.
"""

from __future__ import annotations

import argparse
import http.client
import multiprocessing
import os
import secrets
import shlex
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlencode

import sqlalchemy as sa
from twilio.request_validator import RequestValidator

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "bench-" + secrets.token_hex(8)
HOST = "hotline.example.org"
# What Twilio posts with every voice webhook of an inbound call (besides CallSid and the step's
# own fields): all of it is parsed and signed, so the benchmark sends all of it.
TWILIO_FIELDS = {
    "AccountSid": "AC" + "0" * 32, "ApiVersion": "2010-04-01", "CallStatus": "in-progress",
    "Direction": "inbound", "From": "+13125550123", "Caller": "+13125550123",
    "FromCity": "CHICAGO", "FromState": "IL", "FromZip": "60601", "FromCountry": "US",
    "CallerCity": "CHICAGO", "CallerState": "IL", "CallerZip": "60601", "CallerCountry": "US",
    "To": "+18005550100", "Called": "+18005550100", "ToCity": "", "ToState": "", "ToZip": "",
    "ToCountry": "US", "CalledCity": "", "CalledState": "", "CalledZip": "",
    "CalledCountry": "US", "StirVerstat": "TN-Validation-Passed-A",
}
STEPS = [
    ("/voice", {}),
    ("/voice/language?fails=0", {"Digits": "2"}),
    ("/voice/es/menu/choice?fails=0", {"Digits": "1"}),
    ("/voice/es/topics/1", {}),
]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def serve(target: str, port: int, workers: int, env: dict[str, str],
          extra: list[str]) -> subprocess.Popen:
    command = [sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{port}",
               "--workers", str(workers), "--log-level", "warning", *extra, target]
    # Access logs (with --access-logfile -) are written and thrown away, as a log drain would.
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return process
        except OSError:
            time.sleep(0.1)
    process.kill()
    raise SystemExit(f"{target} did not start")


def client(port: int, count: int, queue) -> None:
    """Place `count` call steps as Twilio would: signed form posts, a new CallSid per call."""
    validator = RequestValidator(TOKEN)
    latencies = []
    errors = 0
    for i in range(count):
        path, extra = STEPS[i % len(STEPS)]
        if i % len(STEPS) == 0:
            sid = "CA" + secrets.token_hex(16)
        params = {"CallSid": sid, **TWILIO_FIELDS, **extra}
        # As Heroku's router delivers Twilio's request for https://HOST/...: TLS ended at the
        # router, which adds X-Forwarded-Proto, -Port and -For (the app's ProxyFix reads them).
        url = f"https://{HOST}{path}"
        headers = {"Host": HOST, "Content-Type": "application/x-www-form-urlencoded",
                   "X-Forwarded-Proto": "https", "X-Forwarded-Port": "443",
                   "X-Forwarded-For": "54.172.60.1", "Via": "1.1 vegur",
                   "X-Twilio-Signature": validator.compute_signature(url, params)}
        started = time.perf_counter()
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.request("POST", path, body=urlencode(params), headers=headers)
        reply = conn.getresponse()
        reply.read()
        conn.close()
        latencies.append(time.perf_counter() - started)
        errors += reply.status != 200
    queue.put((latencies, errors))


def server_cpu(process: subprocess.Popen) -> float:
    """CPU seconds used so far by a gunicorn master and its workers (Linux /proc)."""
    total = 0.0
    pids = [process.pid]
    children = Path(f"/proc/{process.pid}/task/{process.pid}/children")
    if children.exists():
        pids += [int(pid) for pid in children.read_text().split()]
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except FileNotFoundError:
            continue
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def language_steps(clients: int, requests: int) -> int:
    """How many language choices (one stored call each) a `load` of this size makes."""
    per_client = requests // clients
    return clients * sum(1 for i in range(per_client) if STEPS[i % len(STEPS)][0].startswith(
        "/voice/language"))


def load(port: int, clients: int, requests: int, server=None) -> dict[str, float]:
    queue = multiprocessing.Queue()
    cpu_before = server_cpu(server) if server else 0.0
    per_client = requests // clients
    procs = [multiprocessing.Process(target=client, args=(port, per_client, queue))
             for _ in range(clients)]
    started = time.perf_counter()
    for proc in procs:
        proc.start()
    results = [queue.get() for _ in procs]
    elapsed = time.perf_counter() - started
    for proc in procs:
        proc.join()
    latencies = sorted(lat for lats, _ in results for lat in lats)
    cpu = server_cpu(server) - cpu_before if server else 0.0
    return {
        "server_cpu_us": cpu / len(latencies) * 1e6,
        "rps": len(latencies) / elapsed,
        "p50_ms": statistics.median(latencies) * 1000,
        "p99_ms": latencies[int(len(latencies) * 0.99) - 1] * 1000,
        "errors": sum(errors for _, errors in results),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=4000)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=5, help="alternate floor/hotline rounds")
    parser.add_argument("--gunicorn-args", default="",
                        help="more gunicorn options for both apps, e.g. the Procfile's "
                             "'--access-logfile -'")
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="ivr-bench-"))
    env = {**os.environ, "SECRET_KEY": "bench", "TWILIO_AUTH_TOKEN": TOKEN,
           "FIRM_PHONE_NUMBER": "+13125550100", "OFFICE_HOURS": "always",
           "FORWARDED_PROXIES": "1", "PUBLIC_URL": f"https://{HOST}",  # as on Heroku
           "DATABASE_URL": os.environ.get("BENCH_DATABASE_URL", f"sqlite:///{tmp}/bench.db")}
    subprocess.run([str(Path(sys.executable).with_name("ivr")), "db", "upgrade"], cwd=ROOT, env=env,
                   check=True, capture_output=True)
    servers = {
        name: serve(target, free_port(), args.workers, env, shlex.split(args.gunicorn_args))
        for name, target in (("floor", "bench.floor:app"), ("hotline", "ivr:create_app()"))
    }
    ports = {name: int(proc.args[4].split(":")[1]) for name, proc in servers.items()}
    try:
        for name in servers:  # warm up
            load(ports[name], args.clients, 200)
        results: dict[str, list[dict[str, float]]] = {name: [] for name in servers}
        for _ in range(args.rounds):
            for name in servers:
                results[name].append(
                    load(ports[name], args.clients, args.requests, servers[name])
                )
    finally:
        for proc in servers.values():
            proc.terminate()  # SIGTERM: the hotline writes its queued call counts at exit
            proc.wait()
    # The hotline did the work it does for callers: every language choice is a stored call.
    expected = language_steps(args.clients, 200) + args.rounds * language_steps(args.clients,
                                                                                 args.requests)
    engine = sa.create_engine(env["DATABASE_URL"].replace("postgres://", "postgresql://", 1))
    with engine.connect() as conn:
        counted = conn.execute(sa.text("SELECT count(*) FROM calls")).scalar_one()
    engine.dispose()
    best = {name: max(runs, key=lambda r: r["rps"]) for name, runs in results.items()}
    settings = f"workers={args.workers} {args.gunicorn_args}".rstrip()
    print(f"gunicorn {settings}, {args.clients} client processes, "
          f"{args.requests} signed requests per round, {args.rounds} rounds (best shown)")
    for name, result in best.items():
        print(f"  {name:8} {result['rps']:8.0f} req/s   p50 {result['p50_ms']:6.1f} ms   "
              f"p99 {result['p99_ms']:6.1f} ms   server CPU {result['server_cpu_us']:5.0f} us/req"
              f"   errors {result['errors']}")
    ratio = best["hotline"]["rps"] / best["floor"]["rps"]
    p99 = best["hotline"]["p99_ms"] / best["floor"]["p99_ms"]
    cpu = best["hotline"]["server_cpu_us"] / best["floor"]["server_cpu_us"]
    print(f"  hotline/floor throughput ratio: {ratio:.2f} (target >= 0.80); p99 ratio {p99:.2f}; "
          f"server CPU per request ratio {cpu:.2f}")
    # Each hotline round against the floor round just before it: a neighbour's load on a shared
    # machine slows both alike, so the median of these is the steadier figure.
    paired = sorted(h["rps"] / f["rps"] for f, h in zip(results["floor"], results["hotline"],
                                                         strict=True))
    print(f"  round by round: {', '.join(f'{r:.2f}' for r in paired)} "
          f"(median {statistics.median(paired):.2f})")
    print(f"  calls stored by the hotline: {counted} of {expected} language choices")


if __name__ == "__main__":
    main()
