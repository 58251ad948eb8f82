"""What a run found: the database checked against what every caller gave and heard, each
request's client time joined with gunicorn's access-log line (`%(D)s`, server time), the fake
Twilio API's events, the processes' logs; then the per-webhook table and the one summary line
the README's table is made of (`SUMMARY_HEADER`; keep its columns, the README quotes them).

Reading the figures: server time is gunicorn's %(D)s. With sync workers it excludes the wait in
the accept queue; with gthread workers it includes the wait for a thread and for the GIL, so the
two are not comparable. Client time is what Twilio would see (queue + app + this client's CPU).
"""

from __future__ import annotations

import json
import math
from collections import Counter, defaultdict
from typing import TYPE_CHECKING

from bench.callers import normalise

if TYPE_CHECKING:
    from bench.burst import Run


def check_database(run: Run) -> dict:
    import sqlalchemy as sa

    url = run.database_url.replace("postgresql://", "postgresql+psycopg://", 1)
    engine = sa.create_engine(url)
    out: dict = {}
    try:
        with engine.connect() as conn:
            rows = (
                conn.execute(
                    sa.text(
                        "SELECT call_sid, reference, caller_number, callback_number, a_number,"
                        " step, recording_sid, recording_duration, audio_type"
                        " FROM callback_requests"
                    )
                )
                .mappings()
                .all()
            )
            calls = Counter(conn.execute(sa.text("SELECT call_sid FROM calls")).scalars())
            tables = sa.inspect(conn).get_table_names()
            if "jobs" in tables:
                columns = [c["name"] for c in sa.inspect(conn).get_columns("jobs")]
                out["jobs_columns"] = columns
                for column in ("state", "status"):
                    if column in columns:
                        out["jobs"] = dict(
                            conn.execute(
                                sa.text(f"SELECT {column}, count(*) FROM jobs GROUP BY {column}")
                            ).all()
                        )
                        break
                for column in ("kind", "name", "task"):
                    if column in columns:
                        out["jobs_by_kind"] = {
                            f"{k}": n
                            for k, n in conn.execute(
                                sa.text(f"SELECT {column}, count(*) FROM jobs GROUP BY {column}")
                            ).all()
                        }
                        break
    finally:
        engine.dispose()
    by_sid = defaultdict(list)
    for row in rows:
        by_sid[row["call_sid"]].append(row)
    sids = {c.sid for c in run.callers}
    exact = lost = duplicated = mismatched = recorded = copied = 0
    problems = Counter()
    for caller in run.callers:
        found = by_sid.get(caller.sid, [])
        gave_recording = "recorded" in caller.sent or caller.status_cb is not None
        recorded += gave_recording
        if len(found) > 1:
            duplicated += len(found) - 1
        if not found:
            if gave_recording:
                lost += 1
                problems["no row"] += 1
            continue
        row = found[0]
        copied += row["audio_type"] is not None
        missing = []
        if row["recording_sid"] != caller.recording_sid:
            missing.append("recording")
        if "number" in caller.sent and row["callback_number"] != caller.from_number:
            missing.append("callback number")
        if "a-number" in caller.sent and not (row["a_number"] or "").endswith(caller.a_number):
            missing.append("A-number")
        if missing:
            lost += 1
            problems["row without " + " and ".join(missing)] += 1
        heard = caller.heard.get("reference") or ""
        if heard and heard != row["reference"]:
            mismatched += 1
        complete = (
            row["step"] == "complete"
            and heard == row["reference"]
            and row["caller_number"] == caller.from_number
            and row["callback_number"] == caller.from_number
            and (row["a_number"] or "").endswith(caller.a_number)
            and row["recording_sid"] == caller.recording_sid
            and row["recording_duration"] == 12
        )
        exact += complete and len(found) == 1
    strangers = sum(len(v) for sid, v in by_sid.items() if sid not in sids)
    references = Counter(row["reference"] for row in rows)
    chose = [c for c in run.callers if "language" in c.sent]
    out.update(
        {
            "rows": len(rows),
            "exact": exact,
            "recorded": recorded,
            "lost": lost,
            "duplicated": duplicated + strangers,
            "reference_mismatch": mismatched,
            "problems": dict(problems),
            "duplicate_references": sum(n - 1 for n in references.values() if n > 1),
            "copied": copied,
            "calls_counted": sum(1 for c in chose if calls.get(c.sid)),
            "calls_chose_language": len(chose),
            "calls_duplicated": sum(n - 1 for sid, n in calls.items() if sid in sids and n > 1),
        }
    )
    return out


def access_log(run: Run) -> dict[str, dict]:
    server = {}
    for line in (run.dir / "web.log").read_text(errors="replace").splitlines():
        parts = line.split()
        if len(parts) >= 6 and parts[0] == "BENCH" and parts[1] != "-":
            server[parts[1]] = {
                "path": normalise(parts[2]),
                "status": parts[3],
                "us": int(parts[4]),
                "pid": parts[5],
            }
    return server


def twilio_events(run: Run) -> dict:
    path = run.dir / "twilio_events.jsonl"
    events = [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []
    kinds = Counter()
    sms = Counter()
    for event in events:
        if event["method"] == "GET" and "/Recordings/" in event["path"]:
            kinds["recording GET"] += 1
        elif event["method"] == "DELETE":
            kinds["recording DELETE"] += 1
        elif event["method"] == "POST" and event["path"].endswith("/Messages.json"):
            kinds["SMS"] += 1
            sms[event.get("form", "")] += 1
        else:
            kinds[event["method"]] += 1
    kinds["SMS sent twice"] = sum(n - 1 for n in sms.values() if n > 1)
    return dict(kinds)


def logs(run: Run) -> dict:
    fallback = run.dir / "fallback.jsonl"
    out = {
        "fallback_lines_left": len(fallback.read_text().splitlines()) if fallback.exists() else 0
    }
    for name in ("web", "worker"):
        path = run.dir / f"{name}.log"
        if not path.exists():
            continue
        lines = [
            ln
            for ln in path.read_text(errors="replace").splitlines()
            if not ln.startswith("BENCH ")
        ]
        out[name] = {
            "lines": len(lines),
            "tracebacks": sum(ln.startswith("Traceback") for ln in lines),
            "fallback_kept": sum("IVR-JOURNAL" in ln for ln in lines),
            "errors": sum(" ERROR" in ln or ln.startswith("ERROR") for ln in lines),
            "worker_timeouts": sum("WORKER TIMEOUT" in ln for ln in lines),
        }
    return out


def analyse(run: Run) -> None:
    server = access_log(run)
    requests = run.burst.requests
    groups: dict[str, dict[str, list]] = defaultdict(
        lambda: {"client": [], "server": [], "bad": []}
    )
    for req in requests:
        group = groups[req["path"]]
        group["client"].append(req["ms"])
        group["bad"].append(req["outcome"] != "ok")
        seen = server.get(req["bid"])
        if seen:
            group["server"].append(seen["us"] / 1000)
    webhooks = {}
    for path, group in groups.items():
        webhooks[path] = {
            "n": len(group["client"]),
            "non_ok": sum(group["bad"]),
            "client": pcts(group["client"]),
            "server": pcts(group["server"]),
            "server_n": len(group["server"]),
        }
    callers = run.callers
    outcomes = Counter(c.outcome for c in callers)
    cut_off = sum(1 for c in callers if c.outcome == "cut-off")
    run.result.update(
        {
            "requests": len(requests),
            "non_ok": sum(1 for r in requests if r["outcome"] != "ok"),
            "no_server_line": sum(1 for r in requests if r["bid"] not in server),
            "webhooks": webhooks,
            "client_all": pcts([r["ms"] for r in requests]),
            "server_all": pcts(
                [server[r["bid"]]["us"] / 1000 for r in requests if r["bid"] in server]
            ),
            "callers": {
                "n": len(callers),
                "outcomes": dict(outcomes),
                "cut_off": cut_off,
                "reached_reference": sum(1 for c in callers if c.heard.get("reference")),
                "no_reference": sum(1 for c in callers if not c.heard.get("reference")),
                "heard_save_failed": sum(1 for c in callers if c.heard.get("save_failed")),
                "heard_error": sum(1 for c in callers if c.heard.get("error")),
                "last_step_without_reference": dict(
                    Counter(c.last_step for c in callers if not c.heard.get("reference"))
                ),
                "status_callbacks": dict(
                    Counter((c.status_cb or {}).get("outcome", "none") for c in callers)
                ),
            },
        }
    )
    with (run.dir / "calls.jsonl").open("w") as out:
        for caller in callers:
            out.write(
                json.dumps(
                    {
                        "i": caller.i,
                        "sid": caller.sid,
                        "from": caller.from_number,
                        "a_number": caller.a_number,
                        "recording_sid": caller.recording_sid,
                        "outcome": caller.outcome,
                        "heard": caller.heard,
                        "status_cb": caller.status_cb,
                        "requests": [r for r in requests if r["call"] == caller.i],
                    }
                )
                + "\n"
            )


# Reporting -------------------------------------------------------------------------------
def report(run: Run) -> None:
    r = run.result
    print(f"\n## {run.tag}  (commit {r['commit']}, {r['started']})")
    print(f"Procfile: {json.dumps(r['procfile'])}")
    print(
        f"release {r.get('release_s')} s, first 200 after {r.get('first_200_s')} s, "
        f"burst {r.get('wall_s')} s, {r.get('requests')} requests, "
        f"non-OK {r.get('non_ok')}; faults: {json.dumps(r.get('faults'))}"
    )
    print("\n| webhook | n | non-OK | server p50/p99/max ms | client p50/p99/max ms |")
    print("|---|---|---|---|---|")
    order = {
        p: min(req["t"] for req in run.burst.requests if req["path"] == p) for p in r["webhooks"]
    }
    for path in sorted(r["webhooks"], key=order.get):
        w = r["webhooks"][path]
        print(f"| {path} | {w['n']} | {w['non_ok']} | {fmt(w['server'])} | {fmt(w['client'])} |")
    c = r["callers"]
    print(f"\ncallers: {json.dumps(c)}")
    print(f"database: {json.dumps(r.get('database'))}")
    print(f"twilio API: {json.dumps(r.get('twilio_events'))}")
    print(f"logs: {json.dumps(r.get('logs'))}")
    print("\n| process | idle before (RSS MB / threads) | peak | idle after |")
    print("|---|---|---|---|")
    for role in ("master", "web", "worker"):
        print(
            f"| {role} | {mem(r['idle_before'].get(role))} | "
            f"{mem([r['peak'][role]] if role in r['peak'] else [])} | "
            f"{mem(r['idle_after'].get(role))} |"
        )
    print("\n" + SUMMARY_HEADER)
    print(summary_line(run))


def summary_line(run: Run) -> str:
    r = run.result
    c, d = r["callers"], r.get("database") or {}
    worst = max(
        r["webhooks"].items(),
        key=lambda kv: kv[1]["server"].get("max", 0),
        default=("-", {"server": {}}),
    )
    faults = r.get("faults") or []
    fault = run.args.fault or "-"
    if faults and not faults[0].get("fired"):
        fault += " (not fired)"
    peak = r.get("peak", {})
    return (
        "| "
        + " | ".join(
            [
                run.tag,
                f"{run.args.db} w{run.args.workers} n{run.args.calls}",
                run.args.twilio
                + (f" {r['twilio']['delay_s']:g}s" if run.args.twilio in ("ok", "slow") else ""),
                fault,
                f"{r['wall_s']:.1f}",
                str(r["non_ok"]),
                str(c["cut_off"]),
                str(c["no_reference"]),
                f"{d.get('exact', '?')}/{run.args.calls}",
                str(d.get("lost", "?")),
                str(d.get("duplicated", "?")),
                f"{d.get('calls_counted', '?')}/{d.get('calls_chose_language', '?')}",
                str(d.get("copied", "?")),
                f"{fmt(r['server_all'], 'p99', 'max')} ({worst[0]})",
                fmt(r["client_all"], "p99", "max"),
                f"{mem(r['idle_before'].get('web'), 'rss_mb')} → "
                f"{mem(r['idle_after'].get('web'), 'rss_mb')} "
                f"(peak {peak.get('web', {}).get('rss_mb', '?')})",
                f"{peak.get('web', {}).get('threads', '?')}/"
                f"{peak.get('worker', {}).get('threads', '-')}",
                f"{mem(r['idle_after'].get('worker'), 'rss_mb') or '-'}",
            ]
        )
        + " |"
    )


SUMMARY_HEADER = (
    "| run | setup | Twilio API | fault | burst s | non-OK | cut off | no reference | DB exact/N "
    "| lost | dup | calls counted | copied | server p99/max ms (worst webhook) "
    "| client p99/max ms | web RSS MB idle → after | peak threads web/worker | worker RSS MB |\n"
    "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
)


def pcts(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    ordered = sorted(values)

    def rank(q: float) -> float:
        return round(ordered[max(0, math.ceil(q * len(ordered)) - 1)], 1)

    return {"p50": rank(0.5), "p99": rank(0.99), "max": round(ordered[-1], 1)}


def fmt(p: dict, *keys: str) -> str:
    keys = keys or ("p50", "p99", "max")
    return (
        "/".join(f"{p[k]:.0f}" if p.get(k, 0) >= 10 else f"{p.get(k, 0):.1f}" for k in keys)
        if p
        else "-"
    )


def mem(items: list[dict] | None, key: str | None = None) -> str:
    if not items:
        return ""
    if key:
        return "/".join(f"{item[key]:.0f}" for item in items)
    return ", ".join(f"{item['rss_mb']:.0f}/{item['threads']}" for item in items)
