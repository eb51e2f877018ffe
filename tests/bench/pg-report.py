#!/usr/bin/python3
"""pg-report.py: the Markdown report of run-pg-bench.

    pg-report.py META RESULTS

META holds key=value lines about the machine and the run; RESULTS one line
of key=value fields per record: kind=load (a measured pgbench run),
kind=fail (a run that failed; its file holds the reason) or kind=broken (a
row that failed its checks and was left out; its file holds the reason).
Prints the machine and the settings, a table of absolute numbers per
scenario, the ratios with their targets, and the failures.  Exits 0 also
when a target is missed, 1 on malformed input, 2 on wrong usage.
"""
import math
import sys

import benchlib

SCENARIOS = {
    "steady": "steady: persistent connections (pgbench -S)",
    "connect": "connect: a new connection per transaction (pgbench -S -C)",
}
ROWS = ["direct", "relay", "pgbouncer", "credgate"]
ROW_NAMES = {
    "direct": "postgres, direct",
    "relay": "HAProxy, TCP relay only",
    "pgbouncer": "pgbouncer (session pool)",
    "credgate": "credgate",
}
# (scenario, what is compared, the row credgate is divided by, the value,
# True when the ratio must be at least the bound, else at most, bound)
TARGETS = [
    ("steady", "TPS", "direct", "tps", True, 0.95),
    ("steady", "proxy CPU per transaction", "pgbouncer", "proxy_cpu", False, 1.0),
    ("connect", "TPS", "pgbouncer", "tps", True, 2.0),
    ("connect", "proxy CPU per connection", "pgbouncer", "proxy_cpu", False, 1.0),
]
# A run during which more of the machine's CPU time than this went to work
# other than the proxy, postgres and pgbench was made on a busy machine.
OTHER_WORK_WARN_PCT = 10

LOAD_INTS = ["round", "txns", "failed", "proxy_ticks", "pg_ticks", "client_ms",
             "hz", "rss_kib", "foreign_pct"]
LOAD_FLOATS = ["tps", "lat_ms", "conn_ms"]


def need(r, keys):
    for k in keys:
        if k not in r:
            raise benchlib.Malformed("no %s field" % k)


def known(r, key, values):
    if r[key] not in values:
        raise benchlib.Malformed("%s=%s is not one of %s" % (key, r[key], ", ".join(values)))


def number(r, key, kind):
    try:
        x = kind(r[key])
    except ValueError:
        raise benchlib.Malformed("%s=%s is not a number" % (key, r[key])) from None
    if not math.isfinite(x):
        raise benchlib.Malformed("%s=%s is not a finite number" % (key, r[key]))
    r[key] = x


def per_1000(ms, txns):
    """ms of CPU per 1000 transactions; NaN without a transaction."""
    return ms * 1000 / txns if txns > 0 else float("nan")


def load_record(r):
    need(r, ["scenario", "row", "tps_kind"] + LOAD_INTS + LOAD_FLOATS)
    known(r, "scenario", SCENARIOS)
    known(r, "row", ROWS)
    for k in LOAD_INTS:
        number(r, k, int)
    for k in LOAD_FLOATS:
        number(r, k, float)
    if r["hz"] <= 0:
        raise benchlib.Malformed("hz=%d is not a clock rate" % r["hz"])
    hz, n = r["hz"], r["txns"]
    # With -C every transaction is a connection of its own, so per 1000
    # transactions is also per 1000 connections.
    r["proxy_cpu"] = (per_1000(r["proxy_ticks"] * 1000 / hz, n)
                      if r["row"] != "direct" else float("nan"))
    r["pg_cpu"] = per_1000(r["pg_ticks"] * 1000 / hz, n)
    r["client_cpu"] = per_1000(r["client_ms"], n)
    return r


def fail_record(r):
    need(r, ["round", "scenario", "row", "what", "file"])
    known(r, "scenario", SCENARIOS)
    known(r, "row", ROWS)
    number(r, "round", int)
    return r


def broken_record(r):
    need(r, ["row", "file"])
    known(r, "row", ROWS)
    return r


def reason(path):
    """The text of a reason file, or a note saying why it cannot be read."""
    try:
        with open(path, errors="replace") as f:
            text = f.read().rstrip()
    except OSError as e:
        return "(the reason cannot be read: %s)" % e
    return text or "(no reason given)"


def fenced(text):
    """text as a Markdown code block, its fence longer than any run of
    backticks inside."""
    longest, run = 0, 0
    for ch in text:
        run = run + 1 if ch == "`" else 0
        longest = max(longest, run)
    fence = "`" * max(3, longest + 1)
    return "%s\n%s\n%s" % (fence, text, fence)


def cell(x, fmt):
    return "—" if math.isnan(x) else fmt % x


def main(argv):
    if len(argv) != 2:
        print("usage: pg-report.py META RESULTS", file=sys.stderr)
        sys.exit(2)
    meta = benchlib.read_meta(argv[0])
    nrounds = meta.get("rounds", "0") or "0"
    if not nrounds.isdigit():
        raise benchlib.Malformed("%s: rounds=%s is not a whole number" % (argv[0], nrounds))
    nrounds = int(nrounds)
    runs, fails, broken = {}, [], {}
    for where, r in benchlib.read_records(argv[1]):
        try:
            kind = r.get("kind")
            if kind == "load":
                r = load_record(r)
                key = (r["scenario"], r["row"])
                if any(x["round"] == r["round"] for x in runs.get(key, [])):
                    raise benchlib.Malformed("a second run of round %d" % r["round"])
                runs.setdefault(key, []).append(r)
            elif kind == "fail":
                fails.append(fail_record(r))
            elif kind == "broken":
                broken[broken_record(r)["row"]] = r
            elif kind is None:
                raise benchlib.Malformed("no kind field")
            else:
                raise benchlib.Malformed("kind=%s is not load, fail or broken" % kind)
        except benchlib.Malformed as e:
            raise benchlib.Malformed("%s: %s" % (where, e)) from None

    scenarios = [sc for sc in SCENARIOS if sc in meta.get("scenarios", "").split()
                 or any(k[0] == sc for k in runs) or any(f["scenario"] == sc for f in fails)]
    rows = [row for row in ROWS if row in meta.get("rows", "").split() or row in broken
            or any(k[1] == row for k in runs) or any(f["row"] == row for f in fails)]
    # For each scenario and row, the run with the median TPS stands for all
    # rounds.
    loads = {}
    for key, rs in runs.items():
        med, low, high = benchlib.median_run(rs, "tps")
        loads[key] = dict(med, spread="%.0f–%.0f" % (low, high) if len(rs) > 1 else "—",
                          all_failed=sum(x["failed"] for x in rs))

    p = print
    p("# credgate PostgreSQL benchmark")
    p()
    p(benchlib.machine_line(meta))
    p("- %s (allocator: %s); %s; %s; %s" % (
        meta.get("credgate") or "credgate", meta.get("credgate_allocator") or "unknown",
        meta.get("pgbouncer") or "pgbouncer", meta.get("postgres") or "PostgreSQL",
        meta.get("pgbench") or "pgbench"))
    p("- load: pgbench -S (select-only), %s clients, %s threads, on a database of "
      "scale %s; each run %ss after %ss of warm-up"
      % (meta.get("clients", "?"), meta.get("threads", "?"), meta.get("scale", "?"),
         meta.get("duration", "?"), meta.get("warmup", "?")))
    p("- placement: the proxy pinned to CPU %s, pgbench to CPU %s, postgres to CPU(s) %s"
      % (meta.get("proxy_cpu", "?"), meta.get("client_cpu", "?"), meta.get("pg_cpus", "?")))
    p("- %d round%s of every run, odd rounds in the order of the rows, even rounds "
      "in reverse; each cell is the run with the median TPS (\"spread\" gives the "
      "lowest and highest TPS of all rounds)" % (nrounds, "" if nrounds == 1 else "s"))
    for sc in scenarios:
        kinds = sorted({r["tps_kind"].replace("_", " ") for (s, _), rs in runs.items()
                        if s == sc for r in rs} - {""})
        if kinds:
            p("- TPS in %s: as pgbench reports it, %s" % (sc, "; ".join(kinds)))
    p("- CPU, ms per 1000 transactions: utime+stime from /proc over the measured "
      "run, divided by the transactions pgbench completed, times 1000. "
      "\"proxy\": the proxy process (all threads); \"postgres\": the whole server "
      "(postmaster, backends and background processes); \"pgbench\": the client. "
      "In the connect scenario each transaction is a connection of its own, so "
      "the proxy's figure is also per 1000 connections.")
    p("- \"other work\": the share of the whole machine's CPU time during the run "
      "not charged to the proxy, postgres or pgbench (other processes, interrupts): "
      "above a few percent the machine was not quiet and the run is noisy.")
    busy = sorted((r for rs in runs.values() for r in rs
                   if r["foreign_pct"] > OTHER_WORK_WARN_PCT),
                  key=lambda r: (r["round"], list(SCENARIOS).index(r["scenario"]),
                                 ROWS.index(r["row"])))
    if busy:
        p()
        p("**Warning:** other work took more than %d%% of the machine during %d run(s) "
          "(%s): the machine was busy, and the numbers are noisy." % (
              OTHER_WORK_WARN_PCT, len(busy),
              ", ".join("round %d %s %s: %d%%" % (r["round"], r["scenario"], r["row"],
                                                   r["foreign_pct"]) for r in busy)))
    p()

    for sc in scenarios:
        connect = sc == "connect"
        p("## %s" % SCENARIOS[sc])
        p()
        p("| row | TPS | spread | latency avg, ms |%s proxy CPU, ms / 1000 %s | "
          "postgres CPU, ms / 1000 txn | pgbench CPU, ms / 1000 txn | proxy RSS after, MiB "
          "| other work | failed txns, all rounds | rounds measured |"
          % (" connection time avg, ms |" if connect else "",
             "connections" if connect else "txn"))
        p("|---|---:|---:|---:|%s---:|---:|---:|---:|---:|---:|---|"
          % ("---:|" if connect else ""))
        for row in rows:
            r = loads.get((sc, row))
            nfail = sum(1 for f in fails if f["scenario"] == sc and f["row"] == row)
            nrun = len(runs.get((sc, row), []))
            if row in broken:
                measured = "out of the run (see failures)"
            else:
                measured = "%d of %d%s" % (nrun, max(nrun + nfail, nrounds),
                                           " (see failures)" if nfail else "")
            if not r:
                p("| %s | — | — | — |%s — | — | — | — | — | — | %s |"
                  % (ROW_NAMES[row], " — |" if connect else "", measured))
                continue
            p("| %s | %.0f | %s | %.2f |%s %s | %s | %s | %s | %d%% | %d | %s |" % (
                ROW_NAMES[row], r["tps"], r["spread"], r["lat_ms"],
                " %.2f |" % r["conn_ms"] if connect else "",
                cell(r["proxy_cpu"], "%.1f"), cell(r["pg_cpu"], "%.1f"),
                cell(r["client_cpu"], "%.1f"),
                "—" if row == "direct" else "%.1f" % (r["rss_kib"] / 1024),
                r["foreign_pct"], r["all_failed"], measured))
        p()

    # Each ratio pairs the runs of one round, made seconds apart, so that a
    # machine whose speed drifts over the run weighs on both sides alike.
    p("## Ratios and targets")
    p()
    p("Each ratio is credgate's run divided by the other row's run of the same "
      "round; the table gives the median of these per-round ratios, and their "
      "range. The targets are judged on the median.")
    p()
    p("| scenario | ratio | median | range | rounds paired | target | result |")
    p("|---|---|---:|---:|---:|---|---|")
    for sc, what, other, key, at_least, bound in TARGETS:
        if sc not in scenarios:
            continue
        cg = {r["round"]: r for r in runs.get((sc, "credgate"), [])}
        ot = {r["round"]: r for r in runs.get((sc, other), [])}
        ratios = [cg[k][key] / ot[k][key] for k in sorted(cg) if k in ot
                  and not math.isnan(cg[k][key]) and ot[k][key] > 0]
        tried = len(set(cg) | set(ot) | {f["round"] for f in fails if f["scenario"] == sc
                                         and f["row"] in ("credgate", other)})
        target = "%s %.2f×" % ("≥" if at_least else "≤", bound)
        label = "credgate ÷ %s, %s" % (other, what)
        if not ratios:
            p("| %s | %s | — | — | 0 of %d | %s | not measured |"
              % (sc, label, max(tried, nrounds), target))
            continue
        m = benchlib.median(ratios)
        ok = m >= bound if at_least else m <= bound
        p("| %s | %s | %.2f× | %.2f–%.2f | %d of %d | %s | %s |" % (
            sc, label, m, min(ratios), max(ratios), len(ratios), max(tried, nrounds), target,
            benchlib.verdict(ok)))
    p()
    # What a hop costs at all on this machine: the relay that only copies
    # bytes, against a direct connection.  No target: it bounds the others.
    for sc in scenarios:
        tr = {r["round"]: r for r in runs.get((sc, "relay"), [])}
        dr = {r["round"]: r for r in runs.get((sc, "direct"), [])}
        ratios = [tr[k]["tps"] / dr[k]["tps"] for k in sorted(tr) if k in dr
                  and dr[k]["tps"] > 0]
        if ratios:
            p("- %s: the TCP relay reaches %.2f× (%.2f–%.2f) of the direct TPS: what "
              "one hop costs on this machine, before a proxy does anything." % (
                  sc, benchlib.median(ratios), min(ratios), max(ratios)))
    p()

    p("## Failures")
    p()
    if not broken and not fails:
        p("None: every row passed its checks, and every run completed.")
        return
    for row in rows:
        if row in broken:
            p("**%s: out of the run** (it failed its checks before any load run):" % ROW_NAMES[row])
            p()
            p(fenced(reason(broken[row]["file"])))
            p()
    for f in sorted(fails, key=lambda f: (f["round"], list(SCENARIOS).index(f["scenario"]),
                                          ROWS.index(f["row"]))):
        p("**round %d, %s, %s: %s failed**" % (f["round"], f["scenario"], ROW_NAMES[f["row"]],
                                              f["what"]))
        p()
        p(fenced(reason(f["file"])))
        p()


if __name__ == "__main__":
    benchlib.run(main)
