"""The README's "bursts on a hostile network" table, from runs of `bench/matrix.sh hostile`.

    python -m bench.hostile BASELINE SLOW HANG     (tags under bench/runs/)

Per webhook, the server time (gunicorn's %(D)s) p50/p99/max in ms of the baseline burst and of
the same burst with slow connections held open, and their ratio (the machine is shared and loaded,
so the ratio against a baseline measured minutes apart says more than the milliseconds); then for
every run the callers cut off, the load average before it, the web and worker memory, and for the
hang the seconds from the API answering again until every alert, copy and text was done.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

RUNS = Path(__file__).resolve().parent / "runs"


def load(tag: str) -> dict:
    return json.loads((RUNS / tag / "result.json").read_text())


def ms(p: dict) -> str:
    return "/".join(f"{p.get(k, 0):.0f}" for k in ("p50", "p99", "max")) if p else "-"


def ratio(a: dict, b: dict, key: str) -> str:
    return f"{b[key] / a[key]:.1f}×" if a.get(key) and b.get(key) else "-"


def peak(run: dict, role: str) -> str:
    item = run.get("peak", {}).get(role)
    return f"{item['rss_mb']:.0f}" if item else "-"


def main() -> None:
    base_tag, slow_tag, hang_tag = sys.argv[1:4]
    base, slow, hang = load(base_tag), load(slow_tag), load(hang_tag)
    print(
        f"Slow connections: {slow['slow']['count']} held open (one byte every "
        f"{slow['slow']['interval_s']:g} s; {slow['slow_open_before']} open at the web "
        f"processes before the burst, {slow['slow']['open_at_end']} at its end, "
        f"{slow['slow']['closed_by_server']} closed by the server and opened again; during the "
        f"burst min/median {slow['slow'].get('open_during_min_median')} open).\n"
    )
    print(
        "| webhook | server ms p50/p99/max, baseline | with slow connections "
        "| ratio p99 | ratio max |"
    )
    print("|---|---|---|---|---|")
    for path, b in base["webhooks"].items():
        s = slow["webhooks"].get(path, {}).get("server", {})
        print(
            f"| {path} | {ms(b['server'])} | {ms(s)} | {ratio(b['server'], s, 'p99')} "
            f"| {ratio(b['server'], s, 'max')} |"
        )
    print(
        f"| all webhooks | {ms(base['server_all'])} | {ms(slow['server_all'])} "
        f"| {ratio(base['server_all'], slow['server_all'], 'p99')} "
        f"| {ratio(base['server_all'], slow['server_all'], 'max')} |"
    )
    print(
        "\n| run | callers cut off | no reference | load avg before (1/5/15 min) "
        "| web RSS MB peak | worker RSS MB peak | all work done after the API answered |"
    )
    print("|---|---|---|---|---|---|---|")
    for tag, run in ((base_tag, base), (slow_tag, slow), (hang_tag, hang)):
        rec = run.get("recovery")
        done = "-"
        if rec:
            done = (
                f"{rec['done_after_answer_s']:.0f} s ({'all' if rec['all_done'] else 'NOT all'} "
                f"{sum(rec['jobs'].values())} jobs; /healthz/worker {rec['healthz_worker']})"
            )
        load_avg = "/".join(f"{x:.1f}" for x in run["loadavg_before"])
        c = run["callers"]
        print(
            f"| {tag} | {c['cut_off']} | {c['no_reference']} | {load_avg} | {peak(run, 'web')} "
            f"| {peak(run, 'worker')} | {done} |"
        )
    if hang.get("recovery"):
        print(
            f"\nHang: {json.dumps(hang['faults'])}; jobs: {json.dumps(hang['recovery']['jobs'])}; "
            f"Twilio API: {json.dumps(hang['twilio_events'])}"
        )


if __name__ == "__main__":
    main()
