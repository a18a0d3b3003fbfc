#!/usr/bin/env python3
"""Hostile clients against `fer-predict serve` (issue 27; python3 standard library only).

Each case starts a fresh service with its default flags (only --addr 127.0.0.1:<free port> and
--model given), runs one attack, and stops the service. Attackers connect from 127.0.0.2 (more
127.0.0.x where a case needs several), so the service's per-client connection cap is what is
tested; during every attack case a valid client (127.0.0.3) sends one request a second (a face
PNG to POST /predict?detect=false, and every other second a scene JPEG with faces to POST
/predict) and a poller (127.0.0.4) GETs /health every 0.25 s. The service's memory is its VmRSS
sampled every 50 ms from /proc/<pid>/status, and its VmHWM.

Every case passes only when: the service does not die; its peak RSS is under 1000 MB; /health
answered 200 every time; every valid request was served (200) or shed with 503, at most 10% of
them shed; and the case's own check holds:

  wide_png        2,000,000 x 20 8-bit gray PNG (~40 KB)               -> 4xx (413 expected)
  wide_jpeg       65,500 x 610 JPEG                                   -> 4xx (413 expected)
  tall_png        20,000 x 2,000 gray PNG (~40 KB)                     -> any answer in time
  parallel_40mp   10 parallel 6,324 x 6,324 JPEGs                     -> 200/413/503; 10 s
                  after the last answer the RSS is back within 100 MB of the idle RSS
  valid_40mp      a 7,300 x 5,470 photo with three large faces        -> 200, faces_detected >= 1
  icc_bomb        64 x 64 PNG with a 300 MiB iCCP profile (~300 KB)   -> 200 or 4xx
  slow_body       18 connections sending a 100,000-byte body at 1 byte/s (reconnecting), 15 s
  pipeline_no_read  264 connections pipelining /health and small /predict requests, never
                  reading the answers (SO_RCVBUF 4 KB), 12 s
  half_headers    264 connections sending half a request head, reopened every 5 s, 15 s
  many_faces      a 4,800 x 3,600 scene with 40 faces -> 200 in time, at most 16 faces listed,
                  faces_detected reported
  rotated_16bit   6,400 x 5,600 16-bit RGBA PNG with eXIf orientation 6 -> 200 or 413
  sigterm         SIGTERM 0.2 s after a 40 MP photo's body is sent -> that request is answered
                  200 and the service exits 0 (no valid client or poller in this case)
  token           FER_PREDICT_TOKEN set: /predict without or with a wrong bearer token -> 401,
                  with it -> 200; /metrics without -> 401; /health 200 without the model path
                  or panic text; /metrics (with the token) has fer_refusals_total
  origin          Origin: http://evil.example -> 403; Content-Type
                  application/x-www-form-urlencoded -> 415; the service's own Origin -> 200;
                  /health shows no model path; /metrics has fer_refusals_total lines

The JPEG fixtures (and the valid client's images) are written by
`cargo run --release -p fer-predict --example hostile_fixtures -- <folder>`, run only when
they are missing from --fixtures (default target/hostile-fixtures); the PNGs are written by
this script into the same folder.

Example:
  make demo && cargo build --release -p fer-predict
  python3 scripts/hostile.py                     # every case (about 5 minutes on 2 cores)
  python3 scripts/hostile.py --case token --case origin --json /tmp/hostile.json
  python3 scripts/hostile.py --list

Exit status 0 when every case run passes, 1 otherwise, 2 when it cannot start.
"""

import argparse
import collections
import json
import os
import secrets
import selectors
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import traceback
import zlib

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TARGET = os.path.join(ROOT, os.environ.get("CARGO_TARGET_DIR", "target"))
HOST = "127.0.0.1"
ATTACKER = "127.0.0.2"
VALID_SRC = "127.0.0.3"
POLLER_SRC = "127.0.0.4"
MAX_RSS_MB = 1000.0
MAX_SHED = 0.10
IDLE_BACK_MB = 100.0
REFUSALS = "fer_refusals_total"  # the counter of refusals by reason, in /metrics
# The service's default --timeout is 10 s: an attack's answer must come within this.
ANSWER_S = 20.0
# Files the Rust example writes.
EXAMPLE_FILES = ("crop.png", "scene.jpg", "wide.jpg", "noisy-40mp.jpg", "photo-40mp.jpg",
                 "many-faces.jpg")


# ---- PNG fixtures --------------------------------------------------------------------------


def png_chunk(kind, data):
    body = kind + data
    return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))


def png(width, height, rows, bit_depth=8, color_type=0, before_idat=()):
    """A PNG from an iterable of filtered rows (filter byte + row), compressed row by row."""
    z = zlib.compressobj(9)
    idat = b"".join(z.compress(r) for r in rows) + z.flush()
    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, color_type, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr)
            + b"".join(png_chunk(k, d) for k, d in before_idat)
            + png_chunk(b"IDAT", idat) + png_chunk(b"IEND", b""))


def zero_png(width, height):
    """width x height 8-bit gray zeros."""
    row = b"\0" * (width + 1)
    return png(width, height, (row for _ in range(height)))


def icc_bomb_png(side=64, profile_mib=300):
    """side x side 8-bit gray with an iCCP chunk whose profile inflates to profile_mib MiB."""
    z = zlib.compressobj(9)
    block = b"\0" * (1 << 20)
    profile = b"".join(z.compress(block) for _ in range(profile_mib)) + z.flush()
    iccp = b"bomb\0" + b"\0" + profile  # name, NUL, compression method 0, zlib stream
    row = b"\0" + bytes(range(side))
    return png(side, side, (row for _ in range(side)), before_idat=[(b"iCCP", iccp)])


def rotated_16bit_png(width=6400, height=5600):
    """width x height 16-bit RGBA (a horizontal gradient: the first row, then rows filtered
    `Up` with nothing changed) with an eXIf chunk saying orientation 6 (rotate 90)."""
    first = bytearray(b"\0")  # filter None
    for x in range(width):
        v = (x * 65535 // max(width - 1, 1))
        first += struct.pack(">HHHH", v, 65535 - v, (v * 7) & 0xFFFF, 65535)
    up = b"\x02" + b"\0" * (width * 8)  # filter Up, no change
    exif = (b"MM\x00\x2a" + struct.pack(">I", 8) + struct.pack(">H", 1)
            + struct.pack(">HHIHH", 0x0112, 3, 1, 6, 0) + struct.pack(">I", 0))
    rows = (bytes(first) if y == 0 else up for y in range(height))
    return png(width, height, rows, bit_depth=16, color_type=6, before_idat=[(b"eXIf", exif)])


PNG_FIXTURES = {
    "wide-2000000x20.png": lambda: zero_png(2_000_000, 20),
    "tall-20000x2000.png": lambda: zero_png(20_000, 2_000),
    "icc-bomb-300mib.png": icc_bomb_png,
    "rotated-16bit-6400x5600.png": rotated_16bit_png,
}


def fixtures(folder):
    missing = [f for f in EXAMPLE_FILES if not os.path.exists(os.path.join(folder, f))]
    if missing:
        cmd = ["cargo", "run", "--release", "-p", "fer-predict", "--example", "hostile_fixtures",
               "--", folder]
        print(f"fixtures: {', '.join(missing)} missing; running {' '.join(cmd)}", flush=True)
        try:
            subprocess.run(cmd, cwd=ROOT, check=True)
        except (OSError, subprocess.CalledProcessError) as e:
            sys.exit(f"cannot write the JPEG fixtures ({e}); run the command above by hand")
    os.makedirs(folder, exist_ok=True)
    for name, make in PNG_FIXTURES.items():
        p = os.path.join(folder, name)
        if not os.path.exists(p):
            t0 = time.monotonic()
            data = make()
            with open(p + ".tmp", "wb") as f:
                f.write(data)
            os.replace(p + ".tmp", p)
            print(f"fixtures: {name}, {len(data)} bytes ({time.monotonic() - t0:.1f} s)",
                  flush=True)
    fx = {}
    for name in list(EXAMPLE_FILES) + list(PNG_FIXTURES):
        with open(os.path.join(folder, name), "rb") as f:
            fx[name] = f.read()
    return fx


# ---- raw HTTP ------------------------------------------------------------------------------


class Resp:
    """An answer: `status` is the HTTP code (int) or what happened instead (a str: refused,
    connect-timeout, timeout, reset, closed)."""

    def __init__(self, status, headers=None, body=b"", seconds=0.0):
        self.status, self.headers, self.body, self.seconds = status, headers or {}, body, seconds

    def json(self):
        try:
            return json.loads(self.body)
        except ValueError:
            return None


def connect(port, src, timeout, rcvbuf=None):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        if rcvbuf:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        s.bind((src, 0))
        s.settimeout(timeout)
        s.connect((HOST, port))
    except BaseException:
        s.close()
        raise
    return s


def parse_head(buf):
    head, _, rest = buf.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    status = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else "garbled"
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    return status, headers, rest


def read_response(s, deadline):
    buf = b""
    while b"\r\n\r\n" not in buf:
        s.settimeout(max(0.01, deadline - time.monotonic()))
        chunk = s.recv(65536)
        if not chunk:
            return Resp("closed" if not buf else "garbled")
        buf += chunk
    status, headers, body = parse_head(buf)
    n = int(headers.get("content-length", "-1") or -1)
    while n < 0 or len(body) < n:
        s.settimeout(max(0.01, deadline - time.monotonic()))
        chunk = s.recv(65536)
        if not chunk:
            break
        body += chunk
    return Resp(status, headers, body)


def exchange(port, method, path, body=b"", headers=None, src=ATTACKER, timeout=ANSWER_S,
             on_sent=None):
    """One request on its own connection (Connection: close). A send cut short (the service
    answering early and closing) still reads the answer."""
    h = {"Host": f"{HOST}:{port}", "Connection": "close"}
    if method == "POST" or body:
        h["Content-Length"] = str(len(body))
    h.update(headers or {})
    head = f"{method} {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in h.items())
    t0 = time.monotonic()
    deadline = t0 + timeout
    try:
        s = connect(port, src, min(timeout, 5.0))
    except TimeoutError:
        return Resp("connect-timeout", seconds=time.monotonic() - t0)
    except ConnectionRefusedError:
        return Resp("refused", seconds=time.monotonic() - t0)
    except OSError as e:
        return Resp(f"connect-error {e.errno}", seconds=time.monotonic() - t0)
    try:
        try:
            s.settimeout(max(0.01, deadline - time.monotonic()))
            s.sendall(head.encode("latin-1") + b"\r\n" + body)
            if on_sent:
                on_sent()
        except TimeoutError:
            return Resp("send-timeout", seconds=time.monotonic() - t0)
        except OSError:
            pass  # cut short: the answer may be there
        try:
            r = read_response(s, deadline)
        except TimeoutError:
            r = Resp("timeout")
        except ConnectionResetError:
            r = Resp("reset")
        except OSError as e:
            r = Resp(f"error {e.errno}")
        r.seconds = time.monotonic() - t0
        return r
    finally:
        s.close()


# ---- the service ---------------------------------------------------------------------------


def free_port():
    s = socket.socket()
    s.bind((HOST, 0))
    port = s.getsockname()[1]
    s.close()
    return port


def proc_kb(pid, key):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        return None
    return None


class Service:
    def __init__(self, args, name, env_extra=None):
        self.port = free_port()
        self.cmd = [args.bin, "serve", "--addr", f"{HOST}:{self.port}", "--model", args.model]
        env = dict(os.environ)
        for k in ("FER_PREDICT_TOKEN", "FER_PREDICT_ADDR", "FER_PREDICT_MODEL"):
            env.pop(k, None)
        env.update(env_extra or {})
        self.log_path = os.path.join(TARGET, f"hostile-{name}.log")
        self.log = open(self.log_path, "wb")  # noqa: SIM115 (open while the service runs)
        self.proc = subprocess.Popen(self.cmd, stdout=self.log, stderr=subprocess.STDOUT, env=env)
        self.pid = self.proc.pid
        self.rss_max_kb = 0
        self.samples = []  # (monotonic, kB)
        self._stop = threading.Event()
        self._sampler = threading.Thread(target=self._sample, daemon=True)
        self._sampler.start()

    def _sample(self):
        while not self._stop.is_set():
            kb = proc_kb(self.pid, "VmRSS")
            if kb is not None:
                self.rss_max_kb = max(self.rss_max_kb, kb)
                self.samples.append((time.monotonic(), kb))
            elif self.proc.poll() is not None:
                return
            self._stop.wait(0.05)

    def wait_ready(self, limit=60.0):
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return f"the service exited ({self.proc.returncode}) at start; see {self.log_path}"
            r = exchange(self.port, "GET", "/health", src=POLLER_SRC, timeout=2)
            if r.status == 200:
                return None
            time.sleep(0.1)
        return f"the service did not answer /health 200 within {limit:.0f} s"

    def rss_mb(self):
        kb = proc_kb(self.pid, "VmRSS")
        return kb / 1024 if kb is not None else None

    def peak_mb(self):
        hwm = proc_kb(self.pid, "VmHWM") or 0
        return max(hwm, self.rss_max_kb) / 1024

    def alive(self):
        return self.proc.poll() is None

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._stop.set()
        self._sampler.join()
        self.log.close()


# ---- background clients ----------------------------------------------------------------------


class ValidClient:
    """One request a second from VALID_SRC: the face crop (detect=false) and the scene JPEG in
    turn; each on its own thread, so a slow answer does not slow the rate."""

    def __init__(self, port, fx, token=None):
        self.port, self.fx, self.token = port, fx, token
        self.lock = threading.Lock()
        self.counts = collections.Counter()  # served, shed, failed
        self.failures = []
        self.threads = []
        self.stop = threading.Event()
        self.ticker = threading.Thread(target=self._tick, daemon=True)

    def start(self):
        self.ticker.start()

    def _one(self, k):
        crop = k % 2 == 0
        h = {"Content-Type": "image/png" if crop else "image/jpeg"}
        if self.token:
            h["Authorization"] = f"Bearer {self.token}"
        body = self.fx["crop.png"] if crop else self.fx["scene.jpg"]
        path = "/predict?detect=false" if crop else "/predict"
        r = exchange(self.port, "POST", path, body, h, src=VALID_SRC, timeout=30)
        j = r.json() if r.status == 200 else None
        with self.lock:
            if r.status == 200 and isinstance(j, dict) and "faces" in j:
                self.counts["served"] += 1
            elif r.status == 503:
                self.counts["shed"] += 1
            else:
                self.counts["failed"] += 1
                if len(self.failures) < 10:
                    self.failures.append(f"{path}: {r.status} {r.body[:120]!r}")

    def _tick(self):
        k = 0
        t0 = time.monotonic()
        while not self.stop.is_set():
            t = threading.Thread(target=self._one, args=(k,), daemon=True)
            t.start()
            self.threads.append(t)
            k += 1
            self.stop.wait(max(0.0, t0 + k - time.monotonic()))

    def finish(self):
        self.stop.set()
        self.ticker.join()
        for t in self.threads:
            t.join(35)
        with self.lock:
            return dict(self.counts), list(self.failures)


class HealthPoller:
    def __init__(self, port):
        self.port = port
        self.codes = collections.Counter()
        self.bad = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def start(self):
        self.thread.start()

    def _run(self):
        while not self.stop.is_set():
            t0 = time.monotonic()
            r = exchange(self.port, "GET", "/health", src=POLLER_SRC, timeout=5)
            self.codes[r.status] += 1
            if r.status != 200 and len(self.bad) < 5:
                self.bad.append(f"{r.status} after {r.seconds:.1f} s {r.body[:100]!r}")
            self.stop.wait(max(0.0, 0.25 - (time.monotonic() - t0)))

    def finish(self):
        self.stop.set()
        self.thread.join(10)
        return dict(self.codes), list(self.bad)


# ---- cases -----------------------------------------------------------------------------------


class Ctx:
    """What a case sees: the service, the fixtures, and where its findings go."""

    def __init__(self, svc, fx, args, token=None):
        self.svc, self.port, self.fx, self.args, self.token = svc, svc.port, fx, args, token
        self.hist = collections.Counter()  # the attack's answers
        self.reasons = []  # why it fails
        self.notes = []
        self.idle_rss_mb = None
        self.extra = {}

    def fail(self, msg):
        self.reasons.append(msg)

    def note(self, msg):
        self.notes.append(msg)

    def post(self, name, ctype, path="/predict", headers=None, timeout=ANSWER_S, **kw):
        h = {"Content-Type": ctype}
        h.update(headers or {})
        r = exchange(self.port, "POST", path, self.fx[name], h, timeout=timeout, **kw)
        self.hist[r.status] += 1
        return r


def is_4xx(s):
    return isinstance(s, int) and 400 <= s < 500


def desc(r):
    """The answer in a few words, for a failure's reason."""
    j = r.json()
    msg = j.get("error") if isinstance(j, dict) else None
    return f"{r.status}" + (f" ({msg[:80]})" if msg else "") + f" after {r.seconds:.1f} s"


def refused_4xx(ctx, name, ctype, want=413):
    r = ctx.post(name, ctype)
    if not is_4xx(r.status):
        ctx.fail(f"expected 4xx ({want}), got {desc(r)}")
    elif r.status != want:
        ctx.note(f"answered {r.status}, not {want}")
    else:
        ctx.note(f"{r.status} in {r.seconds:.2f} s")


def case_wide_png(ctx):
    """2,000,000 x 20 gray PNG -> 4xx (413)"""
    refused_4xx(ctx, "wide-2000000x20.png", "image/png")


def case_wide_jpeg(ctx):
    """65,500 x 610 JPEG -> 4xx (413)"""
    refused_4xx(ctx, "wide.jpg", "image/jpeg")


def case_tall_png(ctx):
    """20,000 x 2,000 gray PNG -> any answer within the timeout"""
    r = ctx.post("tall-20000x2000.png", "image/png")
    if not isinstance(r.status, int):
        ctx.fail(f"no answer within {ANSWER_S:.0f} s: {desc(r)}")
    else:
        ctx.note(f"answered {desc(r)}")


def case_parallel_40mp(ctx):
    """10 parallel 6,324 x 6,324 JPEGs -> 200/413/503; RSS back near idle 10 s later"""
    results = []

    def one():
        results.append(ctx.post("noisy-40mp.jpg", "image/jpeg", timeout=60))

    ts = [threading.Thread(target=one) for _ in range(10)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    last = time.monotonic()
    bad = [desc(r) for r in results if r.status not in (200, 413, 503)]
    if bad:
        ctx.fail(f"answers other than 200/413/503: {', '.join(bad[:3])}")
    slowest = max(r.seconds for r in results)
    time.sleep(max(0.0, last + 10 - time.monotonic()))
    rss = ctx.svc.rss_mb()
    ctx.extra["rss_after_10s_mb"] = rss
    ctx.note(f"slowest answer {slowest:.1f} s; RSS idle {ctx.idle_rss_mb:.0f} MB, "
             f"10 s after the last answer {rss if rss is None else round(rss)} MB")
    if rss is None:
        ctx.fail("no RSS 10 s after the last answer (service gone)")
    elif rss > ctx.idle_rss_mb + IDLE_BACK_MB:
        ctx.fail(f"RSS {rss:.0f} MB 10 s after the last answer, over idle "
                 f"{ctx.idle_rss_mb:.0f} + {IDLE_BACK_MB:.0f} MB")


def faces_answer(ctx, name, want_faces):
    r = ctx.post(name, "image/jpeg")
    j = r.json() if r.status == 200 else None
    if r.status != 200 or not isinstance(j, dict):
        ctx.fail(f"expected 200, got {desc(r)}")
        return None
    ctx.note(f"200 in {r.seconds:.1f} s, faces_detected {j.get('faces_detected')}, "
             f"{len(j.get('faces') or [])} listed")
    if not isinstance(j.get("faces_detected"), int):
        ctx.fail("no faces_detected in the answer")
    elif j["faces_detected"] < want_faces:
        ctx.fail(f"faces_detected {j['faces_detected']} < {want_faces}")
    return j


def case_valid_40mp(ctx):
    """7,300 x 5,470 photo with three large faces -> 200, faces_detected >= 1"""
    faces_answer(ctx, "photo-40mp.jpg", 1)


def case_icc_bomb(ctx):
    """64 x 64 PNG with a 300 MiB iCCP profile -> 200 or 4xx"""
    r = ctx.post("icc-bomb-300mib.png", "image/png")
    if r.status != 200 and not is_4xx(r.status):
        ctx.fail(f"expected 200 or 4xx, got {desc(r)}")
    else:
        ctx.note(f"answered {desc(r)}")


def case_slow_body(ctx, conns=18, seconds=15.0, length=100_000):
    """18 connections sending a 100,000-byte body at 1 byte/s, reconnecting when cut, 15 s"""
    deadline = time.monotonic() + seconds
    lock = threading.Lock()
    head = (f"POST /predict HTTP/1.1\r\nHost: {HOST}:{ctx.port}\r\nContent-Type: image/png\r\n"
            f"Content-Length: {length}\r\n\r\n").encode()
    cut_after = []

    def record(k):
        with lock:
            ctx.hist[k] += 1

    def worker():
        while time.monotonic() < deadline:
            t0 = time.monotonic()
            try:
                s = connect(ctx.port, ATTACKER, 2)
            except OSError:
                record("connect-error")
                time.sleep(0.5)
                continue
            try:
                s.sendall(head)
                outcome = None
                while time.monotonic() < deadline:
                    s.settimeout(1.0)
                    try:
                        data = s.recv(4096)
                        if not data:
                            outcome = "closed"
                        else:
                            outcome = parse_head(data)[0] if b"\r\n" in data else "garbled"
                        break
                    except TimeoutError:
                        pass
                    s.sendall(b"\0")
                if outcome is None:
                    outcome = "open at the end"
                else:
                    with lock:
                        cut_after.append(time.monotonic() - t0)
                record(outcome)
            except ConnectionResetError:
                record("reset")
            except OSError:
                record("closed")
            finally:
                s.close()

    ts = [threading.Thread(target=worker) for _ in range(conns)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    if cut_after:
        ctx.note(f"connections answered or cut after {min(cut_after):.1f}-{max(cut_after):.1f} s")


class Flood:
    """Many non-blocking connections from `srcs`: each sends `payload` over and over (or once),
    never reading; `harvest` reads what a connection got and tells its first answer."""

    def __init__(self, ctx, n, payload, srcs=(ATTACKER,), rcvbuf=4096, repeat=True):
        self.ctx, self.n, self.payload, self.srcs, self.rcvbuf = ctx, n, payload, srcs, rcvbuf
        self.repeat = repeat
        self.sel = selectors.DefaultSelector()
        self.socks = {}  # i -> [sock, offset]
        self.reopen_at = {}  # i -> time
        self.opened = 0

    def open(self, i):
        try:
            s = connect(self.ctx.port, self.srcs[i % len(self.srcs)], 1.0, rcvbuf=self.rcvbuf)
        except TimeoutError:
            self.ctx.hist["connect-timeout"] += 1
            self.reopen_at[i] = time.monotonic() + 0.5
            return
        except OSError:
            self.ctx.hist["connect-error"] += 1
            self.reopen_at[i] = time.monotonic() + 0.5
            return
        s.setblocking(False)
        self.opened += 1
        self.socks[i] = [s, 0]
        self.sel.register(s, selectors.EVENT_WRITE, i)

    def harvest(self, s):
        """The first answer a connection got (or closed/reset/no answer), read without waiting."""
        data = b""
        try:
            while len(data) < 65536:
                chunk = s.recv(65536)
                if not chunk:
                    return parse_head(data)[0] if data.startswith(b"HTTP/") else "closed"
                data += chunk
        except BlockingIOError:
            pass
        except ConnectionResetError:
            return parse_head(data)[0] if data.startswith(b"HTTP/") else "reset"
        except OSError:
            return "closed"
        return parse_head(data)[0] if data.startswith(b"HTTP/") else "open, no answer"

    def close(self, i, reopen_delay=None):
        s, _ = self.socks.pop(i)
        self.sel.unregister(s)
        self.ctx.hist[self.harvest(s)] += 1
        s.close()
        if reopen_delay is not None:
            self.reopen_at[i] = time.monotonic() + reopen_delay

    def run(self, seconds):
        for i in range(self.n):
            if i not in self.socks:
                self.open(i)
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            for key, events in self.sel.select(timeout=0.05):
                i = key.data
                ent = self.socks[i]
                s, off = ent
                if events & selectors.EVENT_READ:
                    # all sent, and the service answered or closed: reopen it
                    self.close(i, reopen_delay=0.5)
                    continue
                try:
                    if off >= len(self.payload):
                        if not self.repeat:
                            self.sel.modify(s, selectors.EVENT_READ, i)
                            continue
                        off = 0
                    ent[1] = off + s.send(self.payload[off:off + 65536])
                except BlockingIOError:
                    pass
                except OSError:
                    self.close(i, reopen_delay=0.5)
            now = time.monotonic()
            for i, t in list(self.reopen_at.items()):
                if t <= now:
                    del self.reopen_at[i]
                    self.open(i)
            time.sleep(0.005)  # leave the cores to the service

    def close_all(self):
        for i in list(self.socks):
            self.close(i)
        self.reopen_at.clear()
        self.sel.close()


def case_pipeline_no_read(ctx, conns=264, seconds=12.0):
    """264 connections pipelining /health and small /predict requests, never reading, 12 s"""
    health = f"GET /health HTTP/1.1\r\nHost: {HOST}:{ctx.port}\r\n\r\n".encode() * 2000
    crop = ctx.fx["crop.png"]
    one = (f"POST /predict?detect=false HTTP/1.1\r\nHost: {HOST}:{ctx.port}\r\n"
           f"Content-Type: image/png\r\nContent-Length: {len(crop)}\r\n\r\n").encode() + crop
    flood_h = Flood(ctx, conns // 2, health)
    flood_p = Flood(ctx, conns - conns // 2, one * 100)
    # One loop would be fairer; two floods in turn, each in its own thread, are simpler.
    ts = [threading.Thread(target=f.run, args=(seconds,)) for f in (flood_h, flood_p)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    ctx.note(f"{flood_h.opened + flood_p.opened} connections opened")
    flood_h.close_all()
    flood_p.close_all()


def case_half_headers(ctx, conns=264, seconds=15.0, every=5.0):
    """264 connections sending half a request head, reopened every 5 s, 15 s"""
    head = f"POST /predict HTTP/1.1\r\nHost: {HOST}:{ctx.port}\r\nContent-Ty".encode()
    opened = 0
    for _ in range(round(seconds / every)):
        f = Flood(ctx, conns, head, repeat=False)
        f.run(every)
        opened += f.opened
        f.close_all()
    ctx.note(f"{opened} connections opened")


def case_many_faces(ctx):
    """4,800 x 3,600 scene with 40 faces -> 200 in time, <= 16 faces listed"""
    j = faces_answer(ctx, "many-faces.jpg", 1)
    if j is None:
        return
    listed = len(j.get("faces") or [])
    cap = 16
    if listed > cap:
        ctx.fail(f"{listed} faces listed, over max_faces {cap}")
    if isinstance(j.get("faces_detected"), int) and j["faces_detected"] <= cap:
        ctx.note(f"only {j['faces_detected']} of 40 found: the max-faces cap was not reached")


def case_rotated_16bit(ctx):
    """6,400 x 5,600 16-bit RGBA PNG with EXIF orientation 6 -> 200 or 413"""
    r = ctx.post("rotated-16bit-6400x5600.png", "image/png")
    if r.status not in (200, 413):
        ctx.fail(f"expected 200 or 413, got {desc(r)}")
        return
    j = r.json() or {}
    ctx.note(f"answered {desc(r)}" + (f", {j.get('width')} x {j.get('height')} (rotated: "
                                      f"{(j.get('width'), j.get('height')) == (5600, 6400)})"
                                      if r.status == 200 else ""))


def case_sigterm(ctx):
    """SIGTERM 0.2 s after a 40 MP photo's body is sent -> answered 200, exit code 0"""
    sent = threading.Event()
    out = []
    t = threading.Thread(target=lambda: out.append(
        (ctx.post("photo-40mp.jpg", "image/jpeg", timeout=60, on_sent=sent.set),
         time.monotonic())))
    t.start()
    if not sent.wait(30):
        ctx.fail("the body was not sent within 30 s")
    time.sleep(0.2)
    t_sig = time.monotonic()
    ctx.svc.proc.send_signal(signal.SIGTERM)
    # A new connection after the signal: the service should no longer accept it.
    time.sleep(0.3)
    late = exchange(ctx.port, "GET", "/health", src=POLLER_SRC, timeout=3)
    t.join()
    r, t_answer = out[0] if out else (Resp("no answer"), time.monotonic())
    if t_answer < t_sig:
        ctx.note("the request was answered before the signal: SIGTERM did not meet work in flight")
    try:
        code = ctx.svc.proc.wait(30)
        exit_s = time.monotonic() - t_sig
    except subprocess.TimeoutExpired:
        code, exit_s = None, None
    ctx.extra["exit_code"] = code
    ctx.note(f"in-flight request: {desc(r)}; /health 0.3 s after the signal: {late.status}; "
             + (f"exit {code} {exit_s:.1f} s after the signal" if code is not None
                else "still running 30 s after the signal"))
    if r.status != 200:
        ctx.fail(f"in-flight request answered {desc(r)}, not 200")
    if code != 0:
        ctx.fail("the service did not exit 0 within 30 s of SIGTERM"
                 + (f" (exit {code})" if code is not None else ""))


def model_strings(args):
    """The model folder as given, absolute, resolved, and relative to the repository."""
    m = args.model.rstrip("/")
    out = {m, os.path.abspath(m), os.path.realpath(m)}
    rel = os.path.relpath(os.path.abspath(m), ROOT)
    if not rel.startswith(".."):
        out.add(rel)
    return out


def leaks(v, needles):
    """String values of a JSON value containing one of `needles`."""
    if isinstance(v, str):
        return [v] if any(n and n in v for n in needles) else []
    if isinstance(v, dict):
        return [x for w in v.values() for x in leaks(w, needles)]
    if isinstance(v, list):
        return [x for w in v for x in leaks(w, needles)]
    return []


def check_health_private(ctx, headers=None):
    r = exchange(ctx.port, "GET", "/health", headers=headers, src=POLLER_SRC, timeout=5)
    ctx.hist[r.status] += 1
    j = r.json()
    if r.status != 200 or not isinstance(j, dict):
        ctx.fail(f"/health: {desc(r)}")
        return
    if "model" in j:
        ctx.fail(f"/health shows \"model\": {str(j['model'])[:60]!r}")
    found = leaks({k: v for k, v in j.items() if k != "model"}, model_strings(ctx.args))
    if found:
        ctx.fail(f"/health shows the model path: {found[0][:60]!r}")
    if j.get("last_panic"):
        ctx.fail("/health shows last_panic text")


def check_refusals(ctx, headers, reasons):
    r = exchange(ctx.port, "GET", "/metrics", headers=headers, src=POLLER_SRC, timeout=5)
    ctx.hist[r.status] += 1
    if r.status != 200:
        ctx.fail(f"/metrics: {desc(r)}")
        return
    text = r.body.decode("utf-8", "replace")
    lines = [ln for ln in text.splitlines() if ln.startswith(REFUSALS + "{")]
    if not lines:
        near = sorted({ln.split("{")[0] for ln in text.splitlines()
                       if "refus" in ln and not ln.startswith("#")})
        ctx.fail(f"/metrics has no {REFUSALS} lines"
                 + (f" (it has {', '.join(near)})" if near else ""))
        return
    for why in reasons:
        if not any(f'reason="{why}"' in ln for ln in lines):
            ctx.fail(f'/metrics has no {REFUSALS}{{reason="{why}"}}')


def expect(ctx, what, r, want):
    if r.status != want:
        ctx.fail(f"{what}: expected {want}, got {desc(r)}")


def case_token(ctx):
    """FER_PREDICT_TOKEN set: 401 without or with a wrong token, 200 with it; /health private"""
    tok = {"Authorization": f"Bearer {ctx.token}"}
    expect(ctx, "/predict without a token", ctx.post("crop.png", "image/png",
                                                     "/predict?detect=false"), 401)
    expect(ctx, "/predict with a wrong token",
           ctx.post("crop.png", "image/png", "/predict?detect=false",
                    {"Authorization": "Bearer " + secrets.token_hex(16)}), 401)
    expect(ctx, "/predict with the token",
           ctx.post("crop.png", "image/png", "/predict?detect=false", tok), 200)
    r = exchange(ctx.port, "GET", "/metrics", src=POLLER_SRC, timeout=5)
    ctx.hist[r.status] += 1
    expect(ctx, "/metrics without a token", r, 401)
    check_health_private(ctx)
    check_refusals(ctx, tok, ["token"])


def case_origin(ctx):
    """Origin evil -> 403, form Content-Type -> 415, own Origin -> 200; /health private"""
    expect(ctx, "Origin: http://evil.example",
           ctx.post("crop.png", "image/png", "/predict?detect=false",
                    {"Origin": "http://evil.example"}), 403)
    expect(ctx, "Content-Type: application/x-www-form-urlencoded",
           ctx.post("crop.png", "application/x-www-form-urlencoded", "/predict?detect=false"),
           415)
    expect(ctx, f"Origin: http://{HOST}:{ctx.port}",
           ctx.post("crop.png", "image/png", "/predict?detect=false",
                    {"Origin": f"http://{HOST}:{ctx.port}"}), 200)
    check_health_private(ctx)
    check_refusals(ctx, None, ["origin", "content_type"])


CASES = [
    ("wide_png", case_wide_png),
    ("wide_jpeg", case_wide_jpeg),
    ("tall_png", case_tall_png),
    ("parallel_40mp", case_parallel_40mp),
    ("valid_40mp", case_valid_40mp),
    ("icc_bomb", case_icc_bomb),
    ("slow_body", case_slow_body),
    ("pipeline_no_read", case_pipeline_no_read),
    ("half_headers", case_half_headers),
    ("many_faces", case_many_faces),
    ("rotated_16bit", case_rotated_16bit),
    ("sigterm", case_sigterm),
    ("token", case_token),
    ("origin", case_origin),
]


def refusal_counts(port, token):
    h = {"Authorization": f"Bearer {token}"} if token else None
    r = exchange(port, "GET", "/metrics", headers=h, src=POLLER_SRC, timeout=5)
    out = {}
    if r.status != 200:
        return out
    for line in r.body.decode("utf-8", "replace").splitlines():
        if line.startswith(REFUSALS + "{"):
            labels, _, value = line.rpartition(" ")
            why = labels.split('reason="', 1)[-1].split('"', 1)[0]
            try:
                out[why] = out.get(why, 0) + float(value)
            except ValueError:
                pass
    return out


def run_case(name, fn, args, fx):
    """A fresh service, the case against it, the verdict; the service is stopped whatever
    happens (an interrupt included)."""
    t_start = time.monotonic()
    token = secrets.token_hex(16) if name == "token" else None
    svc = Service(args, name, {"FER_PREDICT_TOKEN": token} if token else None)
    try:
        return judge(svc, name, fn, args, fx, token, t_start)
    finally:
        svc.stop()


def judge(svc, name, fn, args, fx, token, t_start):
    ctx = Ctx(svc, fx, args, token)
    background = name != "sigterm"
    res = {"case": name, "attack_codes": {}, "valid": None, "health_codes": None,
           "peak_rss_mb": None, "survived": None, "passed": False, "reasons": [], "notes": [],
           "log": svc.log_path}
    why = svc.wait_ready()
    if why:
        res.update(reasons=[why], survived="no start", seconds=time.monotonic() - t_start)
        return res
    valid = ValidClient(svc.port, fx, token) if background else None
    poller = HealthPoller(svc.port) if background else None
    if background:
        valid.start()
        poller.start()
    t_bg = time.monotonic()
    time.sleep(2.0)  # warm up: the model's first batches, the valid client's first requests
    ctx.idle_rss_mb = svc.rss_mb() or 0.0
    try:
        fn(ctx)
    except Exception:  # noqa: BLE001 (a bug of this script, or an answer it cannot parse: a FAIL)
        ctx.fail("the case raised: " + traceback.format_exc(limit=3).strip().splitlines()[-1])
        traceback.print_exc()
    if background:
        # Keep the valid client going long enough that one shed request is under 10%.
        time.sleep(max(0.0, t_bg + args.min_seconds - time.monotonic()))
        refusals = refusal_counts(svc.port, token) if svc.alive() else {}
        counts, failures = valid.finish()
        hcodes, hbad = poller.finish()
    else:
        refusals, counts, failures, hcodes, hbad = {}, None, [], None, []
    alive = svc.alive()
    peak = svc.peak_mb()
    exit_code = svc.proc.returncode
    svc.stop()
    r = ctx.reasons
    if name == "sigterm":
        survived = f"exit {ctx.extra.get('exit_code')}"
    else:
        survived = "yes" if alive else f"NO (exit {exit_code})"
        if not alive:
            r.insert(0, f"the service died (exit {exit_code}; see {svc.log_path})")
    if peak >= MAX_RSS_MB:
        r.append(f"peak RSS {peak:.0f} MB >= {MAX_RSS_MB:.0f} MB")
    if background:
        n = sum(counts.values())
        bad_health = sum(v for k, v in hcodes.items() if k != 200)
        if bad_health or not hcodes:
            r.append(f"/health not 200 {bad_health} of {sum(hcodes.values())} times"
                     + (f" (e.g. {hbad[0]})" if hbad else ""))
        if counts.get("failed"):
            r.append(f"{counts['failed']} of {n} valid requests failed (e.g. {failures[0]})")
        if counts.get("shed", 0) > MAX_SHED * n:
            r.append(f"{counts['shed']} of {n} valid requests shed (> {MAX_SHED:.0%})")
        if not counts.get("served"):
            r.append("no valid request served")
    res.update(
        attack_codes={str(k): v for k, v in ctx.hist.items()},
        valid=counts, valid_failures=failures,
        health_codes={str(k): v for k, v in (hcodes or {}).items()},
        peak_rss_mb=round(peak, 1), idle_rss_mb=round(ctx.idle_rss_mb, 1), survived=survived,
        passed=not r, reasons=r, notes=ctx.notes, refusals=refusals,
        seconds=round(time.monotonic() - t_start, 1), **ctx.extra)
    return res


# ---- report ----------------------------------------------------------------------------------


def hist(d):
    if not d:
        return "-"
    return " ".join(f"{k}:{v}" for k, v in sorted(d.items(), key=lambda kv: str(kv[0])))


def table(results):
    head = ["case", "attack answers", "valid served/shed/failed", "peak RSS MB", "/health",
            "survived", "result"]
    rows = []
    for x in results:
        v = x["valid"]
        rows.append([
            x["case"], hist(x["attack_codes"]),
            f"{v.get('served', 0)}/{v.get('shed', 0)}/{v.get('failed', 0)}" if v else "-",
            f"{x['peak_rss_mb']:.0f}" if x["peak_rss_mb"] is not None else "-",
            hist(x["health_codes"]), x["survived"] or "-",
            "PASS" if x["passed"] else "FAIL: " + x["reasons"][0][:90],
        ])
    w = [max(len(str(c)) for c in col) for col in zip(head, *rows)]

    def line(cells):
        return "| " + " | ".join(str(c).ljust(n) for c, n in zip(cells, w)) + " |"

    out = [line(head), "|" + "|".join("-" * (n + 2) for n in w) + "|"]
    out += [line(r) for r in rows]
    return "\n".join(out)


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", default=os.path.join(TARGET, "release", "fer-predict"),
                    help="fer-predict binary (default: $CARGO_TARGET_DIR or target, /release)")
    ap.add_argument("--model", default=os.path.join(ROOT, "artifacts", "smoke", "train_cnn", "fer-small"),
                    help="model folder (default: the demo's, written by `make demo`)")
    ap.add_argument("--fixtures", default=os.path.join(TARGET, "hostile-fixtures"))
    ap.add_argument("--case", action="append", metavar="NAME", help="run only this case (repeatable)")
    ap.add_argument("--list", action="store_true", help="list the cases and exit")
    ap.add_argument("--json", metavar="FILE", help="write the results there")
    ap.add_argument("--min-seconds", type=float, default=12.0,
                    help="shortest time the valid client runs in a case (default 12)")
    args = ap.parse_args()

    if args.list:
        for name, fn in CASES:
            print(f"{name:<18} {fn.__doc__.splitlines()[0]}")
        return 0
    names = [n for n, _ in CASES]
    for c in args.case or []:
        if c not in names:
            print(f"unknown case {c!r}; --list shows them", file=sys.stderr)
            return 2
    if not os.path.isfile(args.bin) or not os.access(args.bin, os.X_OK):
        print(f"{args.bin}: no fer-predict binary; build it with `cargo build --release -p "
              "fer-predict` (or pass --bin; CARGO_TARGET_DIR is followed)", file=sys.stderr)
        return 2
    if not os.path.isdir(args.model):
        print(f"{args.model}: no model folder; `make demo` writes artifacts/smoke/train_cnn/"
              "fer-small (or pass --model)", file=sys.stderr)
        return 2
    os.makedirs(TARGET, exist_ok=True)
    fx = fixtures(args.fixtures)

    t0 = time.monotonic()
    results = []
    for name, fn in CASES:
        if args.case and name not in args.case:
            continue
        print(f"== {name}: {fn.__doc__.splitlines()[0]}", flush=True)
        res = run_case(name, fn, args, fx)
        results.append(res)
        print(f"   {'PASS' if res['passed'] else 'FAIL'} in {res.get('seconds', 0):.0f} s"
              + "".join(f"\n   - {m}" for m in res["reasons"])
              + "".join(f"\n   . {m}" for m in res["notes"]), flush=True)
    wall = time.monotonic() - t0
    print()
    print(table(results))
    passed = sum(x["passed"] for x in results)
    print(f"\n{passed} of {len(results)} cases passed in {wall:.0f} s ({args.bin}, {args.model})")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"bin": args.bin, "model": args.model, "seconds": round(wall, 1),
                       "cases": results}, f, indent=2)
            f.write("\n")
    return 0 if passed == len(results) else 1


if __name__ == "__main__":
    sys.exit(main())
