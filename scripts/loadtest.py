#!/usr/bin/env python3
"""Bounded load test of `fer-predict serve` on loopback (python3 standard library only).

Starts the service (or targets one already running with --url), then for --duration seconds
runs --clients concurrent clients, each picking requests at random (seeded) from a mix of:

- crop:      a valid 48x48 face PNG, POST /predict?detect=false    (valid)
- scene:     a valid colour scene with faces (JPEG or PNG), POST /predict (valid)
- bomb:      a 16000x16000 all-zero gray PNG (~250 KB; 256 megapixels)  -> expect 413
- truncated: a valid JPEG or PNG cut short                             -> expect 415
- slow:      half a request head, then silence                         -> expect the
             service to close the connection after its header timeout

Each client connects from its own loopback address (127.0.0.10 + its number; the /health
poller from 127.0.0.2), as the clients of a shop would be distinct: the service caps
connections and queued requests per address.

A valid request is "served" (200), "shed" (503 with a Retry-After header; the client then
waits Retry-After seconds, as a polite client does) or an "other failure" (anything else,
including a connection error): there must be none. /health is polled every 0.25 s throughout
and must answer 200 every time. The service's peak memory is its VmHWM (and the largest VmRSS
sampled) from /proc/<pid>/status: it must stay under 1 GB.

Valid images come from crates/predict/tests/fixtures/load (written by
`cargo run --release -p fer-predict --example load_fixtures -- <folder>`).

Example:
  make train-cnn PIPELINE=smoke
  python3 scripts/loadtest.py --model artifacts/smoke/train_cnn/fer-small

Exit status 0 when every check passes, 1 otherwise.
"""

import argparse
import http.client
import json
import os
import random
import socket
import statistics
import struct
import subprocess
import sys
import threading
import time
import zlib

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VALID = ("crop", "scene")


def bomb_png(side=16000):
    """A side x side 8-bit gray PNG of zeros, compressed row by row (~250 KB for 16000)."""

    def chunk(kind, data):
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    z = zlib.compressobj(9)
    row = b"\0" * (side + 1)  # filter byte 0 + the row
    idat = b"".join(z.compress(row) for _ in range(side)) + z.flush()
    ihdr = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", idat)
        + chunk(b"IEND", b"")
    )


def load_fixtures(folder):
    crops, scenes = [], []
    for name in sorted(os.listdir(folder)):
        with open(os.path.join(folder, name), "rb") as f:
            data = f.read()
        if name.startswith("crop-"):
            crops.append(data)
        elif name.startswith("scene-"):
            scenes.append(data)
    if not crops or not scenes:
        sys.exit(f"{folder}: no crop-* or scene-* images (see --help)")
    return crops, scenes


def source(i):
    """The loopback address client `i` connects from (127.0.0.10 + i; the /health poller is
    127.0.0.2), so the service sees distinct clients as a shop's would be, and its
    per-address caps apply to each; against a service on another host, any address."""
    return (f"127.0.0.{10 + i}", 0)


def request(host, port, path, body, timeout, src=None):
    """POST; returns (status, retry_after header or None, body bytes)."""
    c = http.client.HTTPConnection(host, port, timeout=timeout, source_address=src)
    try:
        c.request(
            "POST",
            path,
            body=body,
            headers={"Content-Type": "application/octet-stream", "Connection": "close"},
        )
        r = c.getresponse()
        return r.status, r.getheader("Retry-After"), r.read()
    finally:
        c.close()


def slow_sender(host, port, limit, src=None):
    """Half a request head, then silence: seconds until the service closes the connection."""
    s = socket.create_connection((host, port), timeout=limit, source_address=src)
    t0 = time.monotonic()
    try:
        s.sendall(b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Ty")
        while s.recv(4096):
            pass
        return time.monotonic() - t0
    except socket.timeout:
        return None  # still open after `limit` seconds
    except OSError:
        return time.monotonic() - t0  # reset: closed too
    finally:
        s.close()


class Stats:
    def __init__(self):
        self.lock = threading.Lock()
        self.latency = []  # seconds, served valid requests
        self.counts = {}  # (kind, outcome) -> n
        self.failures = []  # examples of unexpected outcomes
        self.slow_closed = []  # seconds until a slow sender was closed
        self.slow_open = 0
        self.health_ok = 0
        self.health_bad = []
        self.rss_max_kb = 0

    def add(self, kind, outcome, detail=None):
        with self.lock:
            self.counts[(kind, outcome)] = self.counts.get((kind, outcome), 0) + 1
            if detail is not None and len(self.failures) < 20:
                self.failures.append((kind, outcome, detail))


def client(i, args, host, port, fixtures, stats, deadline):
    rng = random.Random(1000 + i)
    src = source(i) if host.startswith("127.") else None
    crops, scenes, bomb, truncated = fixtures
    kinds = ["crop", "scene", "bomb", "truncated", "slow"]
    weights = [40, 30, 10, 12, 8]
    while time.monotonic() < deadline:
        kind = rng.choices(kinds, weights)[0]
        if kind == "slow":
            took = slow_sender(host, port, args.header_timeout + 10, src)
            with stats.lock:
                if took is None:
                    stats.slow_open += 1
                else:
                    stats.slow_closed.append(took)
            continue
        if kind == "crop":
            path, body = "/predict?detect=false", rng.choice(crops)
        elif kind == "scene":
            path, body = "/predict", rng.choice(scenes)
        elif kind == "bomb":
            path, body = "/predict", bomb
        else:
            path, body = "/predict", rng.choice(truncated)
        t0 = time.monotonic()
        try:
            status, retry_after, data = request(host, port, path, body, args.timeout + 20, src)
        except OSError as e:
            stats.add(kind, "error", repr(e))
            continue
        dt = time.monotonic() - t0
        if status == 503 and retry_after is not None:
            stats.add(kind, "shed")
            time.sleep(min(float(retry_after), 5.0))
            continue
        if kind in VALID:
            if status == 200:
                ok = b'"faces"' in data
                with stats.lock:
                    stats.latency.append(dt)
                stats.add(kind, "served" if ok else "bad-200", None if ok else data[:200])
            else:
                stats.add(kind, f"http {status}", data[:200])
        else:
            expect = 413 if kind == "bomb" else 415
            if status == expect:
                stats.add(kind, f"refused {status}")
            else:
                stats.add(kind, f"http {status}", data[:200])


def poll_health(host, port, stats, stop):
    while not stop.is_set():
        try:
            src = ("127.0.0.2", 0) if host.startswith("127.") else None
            c = http.client.HTTPConnection(host, port, timeout=5, source_address=src)
            c.request("GET", "/health")
            r = c.getresponse()
            body = r.read()
            c.close()
            if r.status == 200 and json.loads(body).get("status") == "ok":
                stats.health_ok += 1
            else:
                stats.health_bad.append((r.status, body[:200]))
        except (OSError, ValueError) as e:
            stats.health_bad.append(("error", repr(e)))
        stop.wait(0.25)


def proc_status_kb(pid, key):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def sample_rss(pid, stats, stop):
    while not stop.is_set():
        kb = proc_status_kb(pid, "VmRSS")
        if kb is not None:
            stats.rss_max_kb = max(stats.rss_max_kb, kb)
        stop.wait(0.1)


def pct(xs, p):
    if not xs:
        return float("nan")
    xs = sorted(xs)
    k = min(len(xs) - 1, max(0, int(round(p / 100 * (len(xs) - 1)))))
    return xs[k]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", default=os.path.join(ROOT, "target/release/fer-predict"))
    ap.add_argument("--model", default=os.path.join(ROOT, "artifacts/smoke/train_cnn/fer-small"))
    ap.add_argument("--url", help="target a running service (host:port) instead of starting one")
    ap.add_argument("--pid", type=int, help="with --url: the service's pid, for its memory")
    ap.add_argument("--port", type=int, default=18080)
    ap.add_argument("--duration", type=float, default=60.0)
    ap.add_argument("--clients", type=int, default=32)
    ap.add_argument("--timeout", type=float, default=10.0, help="the service's --timeout")
    ap.add_argument("--header-timeout", type=float, default=5.0, help="the service's --header-timeout")
    ap.add_argument("--fixtures", default=os.path.join(ROOT, "crates/predict/tests/fixtures/load"))
    ap.add_argument("--max-rss-mb", type=float, default=1024.0)
    ap.add_argument("serve_args", nargs="*", help="more flags for `fer-predict serve` (after --)")
    args = ap.parse_args()

    crops, scenes = load_fixtures(args.fixtures)
    truncated = [s[: len(s) // 2] for s in scenes] + [c[: len(c) * 2 // 3] for c in crops]
    t0 = time.monotonic()
    bomb = bomb_png()
    print(f"bomb: 16000x16000 PNG, {len(bomb)} bytes (built in {time.monotonic() - t0:.1f} s)")

    proc = None
    if args.url:
        host, port = args.url.rsplit(":", 1)
        port = int(port)
        pid = args.pid
    else:
        host, port = "127.0.0.1", args.port
        cmd = [
            args.bin, "serve", "--model", args.model, "--addr", f"{host}:{port}",
            "--timeout", str(args.timeout), "--header-timeout", str(args.header_timeout),
        ] + args.serve_args
        print("service:", " ".join(cmd))
        log = open(os.path.join(ROOT, "target", "loadtest-serve.log"), "wb")
        proc = subprocess.Popen(cmd, stdout=log, stderr=log)
        pid = proc.pid
        for _ in range(600):
            try:
                c = http.client.HTTPConnection(host, port, timeout=1)
                c.request("GET", "/health")
                if c.getresponse().status == 200:
                    break
            except OSError:
                pass
            if proc.poll() is not None:
                sys.exit(f"the service exited ({proc.returncode}); see target/loadtest-serve.log")
            time.sleep(0.1)
        else:
            sys.exit("the service did not answer /health within 60 s")

    stats = Stats()
    stop = threading.Event()
    aux = [threading.Thread(target=poll_health, args=(host, port, stats, stop), daemon=True)]
    if pid:
        aux.append(threading.Thread(target=sample_rss, args=(pid, stats, stop), daemon=True))
    for t in aux:
        t.start()
    deadline = time.monotonic() + args.duration
    fixtures = (crops, scenes, bomb, truncated)
    workers = [
        threading.Thread(target=client, args=(i, args, host, port, fixtures, stats, deadline))
        for i in range(args.clients)
    ]
    started = time.monotonic()
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    elapsed = time.monotonic() - started
    stop.set()
    for t in aux:
        t.join()
    hwm_kb = proc_status_kb(pid, "VmHWM") if pid else None
    alive = proc.poll() is None if proc else True
    if proc:
        proc.terminate()
        proc.wait(10)

    # ---- report ------------------------------------------------------------------------
    def n(kind, outcome=None):
        return sum(v for (k, o), v in stats.counts.items() if k == kind and (outcome is None or o == outcome))

    print(f"\n{args.clients} clients, {elapsed:.1f} s, on {host}:{port}\n")
    print(f"{'request':<10} {'sent':>6}  outcomes")
    for kind in ["crop", "scene", "bomb", "truncated"]:
        outs = ", ".join(f"{o} {v}" for (k, o), v in sorted(stats.counts.items()) if k == kind)
        print(f"{kind:<10} {n(kind):>6}  {outs}")
    sc = stats.slow_closed
    print(
        f"{'slow':<10} {len(sc) + stats.slow_open:>6}  closed by the service {len(sc)}"
        + (f" (after {min(sc):.1f}-{max(sc):.1f} s)" if sc else "")
        + f", still open {stats.slow_open}"
    )
    valid = sum(n(k) for k in VALID)
    served = sum(n(k, "served") for k in VALID)
    shed = sum(n(k, "shed") for k in VALID)
    other = valid - served - shed
    lat = stats.latency
    peak_mb = max(hwm_kb or 0, stats.rss_max_kb) / 1024
    print()
    rows = [
        ("valid requests", f"{valid}"),
        ("  served (200)", f"{served} ({100 * served / max(valid, 1):.1f}%)"),
        ("  shed (503 + Retry-After)", f"{shed} ({100 * shed / max(valid, 1):.1f}%)"),
        ("  other failures", f"{other}"),
        ("served latency p50", f"{1000 * pct(lat, 50):.1f} ms"),
        ("served latency p99", f"{1000 * pct(lat, 99):.1f} ms"),
        ("served latency max", f"{1000 * max(lat) if lat else float('nan'):.1f} ms"),
        ("throughput (served)", f"{served / elapsed:.1f} req/s"),
        ("/health polls ok / failed", f"{stats.health_ok} / {len(stats.health_bad)}"),
        ("service peak memory", f"{peak_mb:.0f} MB (VmHWM {(hwm_kb or 0) / 1024:.0f} MB, "
                                f"max VmRSS sampled {stats.rss_max_kb / 1024:.0f} MB)"),
        ("service alive at the end", "yes" if alive else "NO"),
    ]
    w = max(len(r[0]) for r in rows)
    print("| " + "metric".ljust(w) + " | value |")
    print("|-" + "-" * w + "-|-------|")
    for k, v in rows:
        print(f"| {k.ljust(w)} | {v} |")
    if stats.failures:
        print("\nunexpected outcomes (first 20):")
        for f in stats.failures:
            print("  ", f)
    if stats.health_bad:
        print("\n/health failures (first 5):", stats.health_bad[:5])

    checks = {
        "no other failures of valid requests": other == 0,
        "every bomb refused or shed": n("bomb") == n("bomb", "refused 413") + n("bomb", "shed"),
        "every truncated file refused or shed": n("truncated")
        == n("truncated", "refused 415") + n("truncated", "shed"),
        "slow senders closed": stats.slow_open == 0,
        "/health never failed": not stats.health_bad and stats.health_ok > 0,
        f"peak memory under {args.max_rss_mb:.0f} MB": 0 < peak_mb < args.max_rss_mb or not pid,
        "service alive": alive,
        "some valid requests served": served > 0,
    }
    print()
    for k, ok in checks.items():
        print(("PASS " if ok else "FAIL ") + k)
    sys.exit(0 if all(checks.values()) else 1)


if __name__ == "__main__":
    main()
