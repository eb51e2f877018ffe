#!/usr/bin/python3
"""report.py: the Markdown report of run-bench.

    report.py META RESULTS

META holds key=value lines about the machine and the run; RESULTS one line
of key=value fields per measurement (kind=load or kind=idle).  Prints the
machine, a table of absolute numbers, the ratios with the issue's targets,
and the memory table.
"""
import sys

import benchlib

SCENARIOS = {
    "ka-one": "keep-alive, one repeated token",
    "ka-conn": "keep-alive, a distinct token per connection",
    "ka-req": "keep-alive, a distinct token per request",
    "close": "Connection: close, a distinct token per connection",
}
ROWS = ["direct", "nginx-proxy", "haproxy", "credgate"]
ROW_NAMES = {
    "direct": "upstream nginx, direct",
    "nginx-proxy": "nginx proxy (no token check)",
    "haproxy": "HAProxy jwt_verify",
    "credgate": "credgate",
}
# (scenario, minimum credgate/HAProxy req/s); None: no req/s target
RPS_TARGET = {"ka-one": 1.5, "ka-conn": 1.0, "ka-req": None, "close": 1.0}
CPU_TARGET = {"ka-one": 1.3}
KIB_PER_CONN_TARGET = 8.0


def main(argv):
    if len(argv) != 2:
        print("usage: report.py META RESULTS", file=sys.stderr)
        sys.exit(2)
    meta = benchlib.read_meta(argv[0])
    runs, idles = {}, {}
    for _, r in benchlib.read_records(argv[1]):
        if r.get("kind") == "load":
            dur = int(r["duration_us"]) / 1e6
            n = int(r["requests"])
            hz = int(r["hz"])
            errs = sum(int(r[k]) for k in r if k.startswith("err_"))
            r["rps"] = n / dur if dur else 0.0
            r["cpu_us"] = int(r["proxy_ticks"]) * 1e6 / hz / n if n else float("nan")
            r["up_cpu_us"] = int(r["up_ticks"]) * 1e6 / hz / n if n else float("nan")
            r["errors"] = errs
            r["n"] = n
            runs.setdefault((r["scenario"], r["row"]), []).append(r)
        elif r.get("kind") == "idle":
            idles[r["row"]] = r
    # For each scenario and row, the run with the median req/s stands for
    # all rounds (its own latency, CPU and RSS, not a mix of runs).
    loads = {}
    for key, rs in runs.items():
        med, low, high = benchlib.median_run(rs, "rps")
        med = dict(med)
        med["spread"] = "%.0f–%.0f" % (low, high) if len(rs) > 1 else "—"
        med["all_errors"] = sum(x["errors"] for x in rs)
        loads[key] = med

    p = print
    p("# credgate benchmark")
    p()
    p(benchlib.machine_line(meta))
    p("- %s (allocator: %s; workers setting: %s; token cache size: %s); %s; %s; %s" % (
        meta["credgate"] or "credgate", meta.get("credgate_allocator") or "unknown",
        "workers = 1" if meta["credgate_workers_setting"] == "1" else "not accepted, omitted",
        meta["credgate_token_cache"], meta["haproxy"], meta["nginx"], meta["wrk"]))
    p("- placement: proxy and upstream nginx pinned to CPU %s, wrk to CPU %s; "
      "each run %ss after %ss of warm-up; %s distinct RS256 (2048-bit) tokens"
      % (meta["server_cpu"], meta["client_cpu"], meta["duration"], meta["warmup"],
         meta["tokens"]))
    p("- %s rounds of every run; each cell is the run with the median req/s "
      "(\"spread\" gives the lowest and highest req/s of all rounds)" % meta["rounds"])
    if meta.get("ka_conn") == "threads":
        p("- keep-alive, a distinct token per connection: one wrk thread per "
          "connection, each sending its own token")
    else:
        p("- keep-alive, a distinct token per connection: one wrk thread rotates "
          "exactly %s tokens over its %s connections (the same number of distinct "
          "tokens and the same reuse of each; a token may come back on another "
          "connection) — see README" % (meta["conns"], meta["conns"]))
    p("- CPU µs/req: utime+stime of the proxy process (all threads) from /proc, "
      "over the measured run, divided by the requests wrk completed; "
      "\"upstream\" is the same for the upstream nginx. In the direct row the "
      "upstream is the server measured.")
    p("- \"other work on CPU %s\": the share of that CPU's time during the run "
      "not charged to the proxy or the upstream (other processes, interrupts): "
      "above a few percent the machine was not quiet and the run is noisy."
      % meta["server_cpu"])
    p()

    p("## Absolute numbers")
    p()
    p("| scenario | row | conns | req/s | spread | p50 ms | p99 ms | proxy CPU µs/req | "
      "upstream CPU µs/req | proxy RSS after, MiB | other work on CPU %s | errors |"
      % meta["server_cpu"])
    p("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for sc in SCENARIOS:
        for row in ROWS:
            r = loads.get((sc, row))
            if not r:
                continue
            cpu = r["up_cpu_us"] if row == "direct" else r["cpu_us"]
            err = str(r["all_errors"])
            if r["errors"] > 0.001 * max(r["n"], 1):
                err += " (invalid)"
            note = ""
            if int(r.get("wraps", "0")) > 0 and sc != "ka-conn":
                note = " *"
            p("| %s | %s | %s%s | %.0f | %s | %.2f | %.2f | %.1f | %s | %.1f | %s%% | %s |" % (
                SCENARIOS[sc], ROW_NAMES[row],
                r["conns"], " (1 per thread)" if r["threads"] != "1" else "",
                r["rps"], r["spread"], int(r["p50_us"]) / 1000, int(r["p99_us"]) / 1000,
                cpu, "—" if row == "direct" else "%.1f" % r["up_cpu_us"],
                int(r["rss_kib"]) / 1024, r.get("foreign_pct", "?"), err + note))
    wrapped = [int(r.get("wraps", "0")) for (sc, _), r in loads.items() if sc != "ka-conn"]
    if any(wrapped):
        p()
        p("\\* the run sent more requests than the %s minted tokens, so the "
          "token list was walked again (%d extra pass(es) at most); a token comes back only "
          "after all the others, so a token cache smaller than the list still "
          "misses on every request." % (meta["tokens"], max(wrapped)))
        cache = meta.get("credgate_token_cache", "none")
        if cache.isdigit() and int(cache) >= int(meta["tokens"]):
            p("**Warning:** credgate's token cache (%s entries) can hold the whole "
              "list: raise BENCH_TOKENS above it, or these runs measure cache hits."
              % cache)
    p()

    p("## Ratios and targets")
    p()
    p("| scenario | credgate ÷ HAProxy req/s | target | credgate ÷ nginx-proxy CPU/req "
      "| target | credgate ÷ HAProxy CPU/req | p99 credgate / HAProxy, ms | target |")
    p("|---|---:|---|---:|---|---:|---|---|")

    verdict = benchlib.verdict

    for sc in SCENARIOS:
        cg, hp, ng = (loads.get((sc, x)) for x in ("credgate", "haproxy", "nginx-proxy"))
        if not cg:
            continue
        cells = [SCENARIOS[sc]]
        if hp:
            ratio = cg["rps"] / hp["rps"]
            cells.append("%.2f×" % ratio)
            t = RPS_TARGET.get(sc)
            cells.append("≥ %.1f× %s" % (t, verdict(ratio >= t)) if t else
                         "— (extra scenario)")
        else:
            cells += ["—", "—"]
        if ng:
            cr = cg["cpu_us"] / ng["cpu_us"]
            cells.append("%.2f×" % cr)
            t = CPU_TARGET.get(sc)
            cells.append("≤ %.1f× %s" % (t, verdict(cr <= t)) if t else "—")
        else:
            cells += ["—", "—"]
        if hp:
            cells.append("%.2f×" % (cg["cpu_us"] / hp["cpu_us"]))
            c99, h99 = int(cg["p99_us"]) / 1000, int(hp["p99_us"]) / 1000
            cells.append("%.2f / %.2f" % (c99, h99))
            cells.append("≤ HAProxy %s" % verdict(c99 <= h99))
        else:
            cells += ["—", "—", "—"]
        p("| " + " | ".join(cells) + " |")
    p()

    # The same ratios round by round.  A round runs the rows of a scenario
    # one after the other, so each round's ratio compares runs made a few
    # seconds apart; the medians above may pair runs made minutes apart,
    # which on a shared machine can differ more than the proxies do.
    p("## Round by round")
    p()
    p("Each round's ratio compares the runs of that round, made seconds apart. "
      "The targets above are judged on the median runs; these paired ratios show "
      "how much of a difference is the machine.")
    p()
    p("| scenario | credgate ÷ HAProxy req/s, by round | median "
      "| credgate ÷ nginx-proxy CPU/req, by round | median "
      "| p99 credgate ÷ HAProxy, by round | rounds with p99 ≤ HAProxy |")
    p("|---|---|---:|---|---:|---|---:|")

    def by_round(sc, row):
        return {r["round"]: r for r in runs.get((sc, row), [])}

    med = benchlib.median

    for sc in SCENARIOS:
        cg, hp, ng = (by_round(sc, x) for x in ("credgate", "haproxy", "nginx-proxy"))
        if not cg:
            continue
        rounds = sorted(cg, key=int)
        rps = [cg[k]["rps"] / hp[k]["rps"] for k in rounds if k in hp and hp[k]["rps"]]
        cpu = [cg[k]["cpu_us"] / ng[k]["cpu_us"] for k in rounds if k in ng and ng[k]["n"]]
        p99 = [int(cg[k]["p99_us"]) / int(hp[k]["p99_us"]) for k in rounds
               if k in hp and int(hp[k]["p99_us"])]
        p("| %s | %s | %s | %s | %s | %s | %s |" % (
            SCENARIOS[sc],
            " ".join("%.2f" % x for x in rps) or "—",
            "%.2f×" % med(rps) if rps else "—",
            " ".join("%.2f" % x for x in cpu) or "—",
            "%.2f×" % med(cpu) if cpu else "—",
            " ".join("%.2f" % x for x in p99) or "—",
            "%d of %d" % (sum(1 for x in p99 if x <= 1.0), len(p99)) if p99 else "—"))
    p()

    p("## Memory: idle keep-alive client connections")
    p()
    if meta.get("idle_note"):
        p("Note: " + meta["idle_note"] + ".")
        p()
    p("| proxy | connections held | RSS before, KiB | RSS after, KiB | KiB per connection "
      "| target | fds before → after |")
    p("|---|---:|---:|---:|---:|---|---|")
    for row in ("credgate", "haproxy", "nginx-proxy"):
        r = idles.get(row)
        if not r:
            continue
        ok = int(r["ok"])
        per = (int(r["rss_after_kib"]) - int(r["rss_before_kib"])) / ok if ok else float("nan")
        target = ("≤ %.0f KiB %s" % (KIB_PER_CONN_TARGET, verdict(per <= KIB_PER_CONN_TARGET))
                  if row == "credgate" else "—")
        held = r["ok"] + ("" if int(r["failed"]) == 0 else
                          " (%s failed: %s)" % (r["failed"], r["statuses"]))
        p("| %s | %s | %s | %s | %.2f | %s | %s → %s |" % (
            ROW_NAMES[row], held, r["rss_before_kib"], r["rss_after_kib"], per,
            target, r["fds_before"], r["fds_after"]))


if __name__ == "__main__":
    benchlib.run(main)
