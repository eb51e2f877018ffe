#!/usr/bin/python3
"""idle-conns.py: hold many idle keep-alive connections open to a proxy.

    idle-conns.py PORT COUNT AUTH HOLD_SECONDS

Opens COUNT connections to 127.0.0.1:PORT, at most 200 in flight at a time.
On each it sends one GET / with "Authorization: AUTH" and reads the whole
response, so that the connection has been through the proxy's full path
(token check, upstream, response) and is now idle between requests.  Then
it prints one line

    READY ok=N failed=N statuses=200:N,...

and keeps every connection open, sending nothing, for HOLD_SECONDS (or
until it is killed), and exits.  run-bench reads the proxy's RSS while the
connections are held.
"""
import asyncio
import collections
import resource
import sys


async def one(port, auth, sem, held, stats):
    async with sem:
        try:
            r, w = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 10)
        except Exception as e:
            stats["connect:" + type(e).__name__] += 1
            return
        try:
            w.write(("GET / HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nAuthorization: %s\r\n\r\n"
                     % (port, auth)).encode())
            head = await asyncio.wait_for(r.readuntil(b"\r\n\r\n"), 10)
            lines = head.decode("latin-1").split("\r\n")
            status = lines[0].split(" ")[1]
            length = 0
            for line in lines[1:]:
                k, _, v = line.partition(":")
                if k.strip().lower() == "content-length":
                    length = int(v.strip())
            if length:
                await asyncio.wait_for(r.readexactly(length), 10)
            stats[status] += 1
            held.append(w)
        except Exception as e:
            stats["error:" + type(e).__name__] += 1
            w.close()


async def main():
    port, count, auth, hold = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], float(sys.argv[4])
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < count + 64:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, count + 256), hard))
    sem = asyncio.Semaphore(200)
    held, stats = [], collections.Counter()
    await asyncio.gather(*(one(port, auth, sem, held, stats) for _ in range(count)))
    ok = stats.get("200", 0)
    print("READY ok=%d failed=%d statuses=%s" % (
        ok, count - ok, ",".join("%s:%d" % kv for kv in sorted(stats.items()))), flush=True)
    await asyncio.sleep(hold)
    for w in held:
        w.close()


if __name__ == "__main__":
    if len(sys.argv) != 5:
        sys.exit("usage: idle-conns.py PORT COUNT AUTH HOLD_SECONDS")
    asyncio.run(main())
