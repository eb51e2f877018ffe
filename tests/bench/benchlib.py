"""benchlib.py: what the reports of run-bench and run-pg-bench share.

Both scripts hand their report two files: META, key=value lines about the
machine and the run, and RESULTS, one record per line, each a run of
space-separated key=value fields.  This module reads them and picks the
median run; the report of each benchmark knows its own fields.
"""
import sys


class Malformed(Exception):
    """Input that the benchmark script would not have written."""


def fields(line):
    """The key=value fields of one record line, as a dict of strings."""
    out = {}
    for field in line.split():
        k, eq, v = field.partition("=")
        if not k or not eq:
            raise Malformed("%r is not key=value" % field)
        if k in out:
            raise Malformed("%s is given twice" % k)
        out[k] = v
    return out


def read_meta(path):
    """META as a dict; a value may hold spaces and be empty."""
    meta = {}
    with open(path) as f:
        for n, line in enumerate(f, 1):
            line = line.rstrip("\n")
            if not line:
                continue
            k, eq, v = line.partition("=")
            if not k or not eq:
                raise Malformed("%s:%d: not key=value: %r" % (path, n, line))
            meta[k] = v
    return meta


def read_records(path):
    """Yields (where, record) for each line of RESULTS that is not blank;
    where is "path:line", for messages about the record."""
    with open(path) as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            where = "%s:%d" % (path, n)
            try:
                yield where, fields(line)
            except Malformed as e:
                raise Malformed("%s: %s" % (where, e)) from None


def median(xs):
    """The middle value; of an even count the lower middle one, so that it
    is always a value that was measured.  NaN when there is none."""
    xs = sorted(xs)
    return xs[(len(xs) - 1) // 2] if xs else float("nan")


def median_run(runs, key):
    """The run whose `key` is the median among runs (it stands for all
    rounds with its own numbers, not a mix of runs), and the lowest and
    highest `key`."""
    rs = sorted(runs, key=lambda r: r[key])
    return rs[(len(rs) - 1) // 2], rs[0][key], rs[-1][key]


def verdict(ok):
    return "PASS" if ok else "MISS"


def machine_line(meta):
    return ("- machine: %s CPUs, %s, %s; load average at start %s, at end %s"
            % (meta.get("machine_nproc", "?"), meta.get("machine_cpu") or "unknown CPU",
               meta.get("machine_kernel", "?"), meta.get("machine_loadavg_start", "?"),
               meta.get("machine_loadavg_end", "?")))


def run(main):
    """Runs main(argv); input it cannot read or that is malformed ends the
    program with one line on stderr and status 1."""
    prog = sys.argv[0].rsplit("/", 1)[-1]
    try:
        main(sys.argv[1:])
    except Malformed as e:
        print("%s: malformed input: %s" % (prog, e), file=sys.stderr)
        sys.exit(1)
    except OSError as e:
        print("%s: %s" % (prog, e), file=sys.stderr)
        sys.exit(1)
