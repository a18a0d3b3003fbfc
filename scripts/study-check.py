#!/usr/bin/env python3
"""Tune workers sharing a study, checked on a real pipeline's search (issue 32).

Usage: scripts/study-check.py --bin target/release/fer-tune [--pipeline ci]
                              [--postgres postgres://user@localhost/?host=/sock] [--kills 10]

fer-tune must be built with its `study` feature. Each run searches in a scratch copy of
artifacts/<pipeline> (its preprocess outputs; the run cache off), so the pipeline's own
artifacts are left alone:
  one      SQLite, 1 worker (the stage run): the reference;
(the pipeline's [tune] with --trials trials and rungs up to --max-epochs, default 24 and 8);
  sqlite2  SQLite, the stage run with 2 local workers (--workers 2);
  pg4      PostgreSQL, --workers 4                          (with --postgres);
  chaos    PostgreSQL, 4 `fer-tune --worker` processes, a random one killed with -9 and started
           again --kills times, then `fer-tune --finish` writes the outputs (with --postgres).
Checked for each: every worker still running at the end exits 0; no (trial, rung) is recorded
by two jobs (the rung table's key also forbids it); every (trial, rung) result both it and `one`
trained is equal (asynchronous ASHA promotes in the order results arrive, so the sets of
trials that reach a rung may differ); and the winner (summary.json's best_trial) is the same
whenever the same trials reached the top rung (when they differ, both winners are printed).
With --postgres, a database per run is created in that server (createdb through psql).
"""

import argparse
import json
import os
import random
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

RUNG_SQL = "SELECT trial, k, epochs, val_acc, val_loss FROM fer_rung ORDER BY trial, k"
TWICE_SQL = (
    "SELECT trial, rung, COUNT(*) FROM fer_job WHERE outcome = 'rung' "
    "GROUP BY trial, rung HAVING COUNT(*) > 1"
)
JOBS_SQL = "SELECT outcome, COUNT(*) FROM fer_job GROUP BY outcome ORDER BY outcome"


def fail(msg):
    print(f"study-check: FAIL: {msg}", file=sys.stderr)
    sys.exit(1)


def with_db(base, db):
    """The server URL `base` with database `db`."""
    u = urlsplit(base)
    return urlunsplit((u.scheme, u.netloc, "/" + db, u.query, u.fragment))


def psql(url, sql):
    out = subprocess.run(
        ["psql", url, "-v", "ON_ERROR_STOP=1", "-At", "-F", "\t", "-c", sql],
        check=True, capture_output=True, text=True,
    ).stdout
    return [line.split("\t") for line in out.splitlines() if line]


def query(url, sql):
    if url.startswith("sqlite://"):
        path = url[len("sqlite://"):].split("?")[0]
        with sqlite3.connect(path) as c:
            return [[str(v) for v in row] for row in c.execute(sql)]
    return psql(url, sql)


def rungs(url):
    return {
        (int(t), int(k)): (int(e), float(a), float(l))
        for t, k, e, a, l in query(url, RUNG_SQL)
    }


class Runner:
    def __init__(self, args, scratch):
        self.args, self.scratch = args, scratch
        self.src = Path(args.artifacts) / args.pipeline
        # The pipeline file with a longer search (--trials, --max-epochs), so that the chaos
        # run's kills land while it trains; only [tune] changes, so the copied preprocess
        # outputs stay current.
        text = Path(f"pipelines/{args.pipeline}.toml").read_text().splitlines()
        out, in_tune = [], False
        for line in text:
            if line.startswith("["):
                in_tune = line.strip() == "[tune]"
            key = line.split("=")[0].strip()
            if in_tune and key in ("max_trials", "max_epochs", "min_epochs", "time_limit"):
                line = {"max_trials": f"max_trials = {args.trials}",
                        "max_epochs": f"max_epochs = {args.max_epochs}",
                        "min_epochs": "min_epochs = 1",
                        "time_limit": 'time_limit = "30m"'}[key]
            out.append(line)
        self.pfile = scratch / "pipelines" / f"{args.pipeline}.toml"
        self.pfile.parent.mkdir()
        self.pfile.write_text("\n".join(out) + "\n")

    def artifacts(self, name):
        root = self.scratch / name
        dst = root / self.args.pipeline
        dst.mkdir(parents=True)
        for stage in self.src.iterdir():
            if stage.is_dir() and stage.name not in ("tune", "report") and not stage.name.startswith("."):
                shutil.copytree(stage, dst / stage.name)
        return root

    def cmd(self, art, *extra):
        return [self.args.bin, "--pipeline", str(self.pfile), "--artifacts", str(art),
                "--cache-dir", "off", *extra]

    def env(self, url):
        e = dict(os.environ, FER_TUNE_STUDY=url, FER_TUNE_HEARTBEAT="1s")
        e.pop("FER_TUNE_WORKERS", None)
        return e

    def stage(self, name, url, workers):
        art = self.artifacts(name)
        t0 = time.time()
        log = open(self.scratch / f"{name}.log", "w")
        rc = subprocess.run(self.cmd(art, "--workers", str(workers)), env=self.env(url),
                            stdout=log, stderr=subprocess.STDOUT).returncode
        if rc != 0:
            fail(f"{name}: fer-tune --workers {workers} exited {rc} (log: {log.name})")
        print(f"{name}: {workers} worker(s), {time.time() - t0:.0f} s", flush=True)
        return art

    def chaos(self, name, url, workers, kills):
        art = self.artifacts(name)
        log = open(self.scratch / f"{name}.log", "w")
        start = lambda: subprocess.Popen(self.cmd(art, "--worker"), env=self.env(url),
                                         stdout=log, stderr=subprocess.STDOUT)
        t0 = time.time()
        procs = [start() for _ in range(workers)]
        rng = random.Random(32)
        killed = 0
        while killed < kills:
            time.sleep(rng.uniform(0.5, 2.0))
            live = [i for i, p in enumerate(procs) if p.poll() is None]
            if not live:
                break
            i = rng.choice(live)
            procs[i].kill()  # SIGKILL
            procs[i].wait()
            killed += 1
            procs[i] = start()
        codes = [p.wait() for p in procs]
        if any(codes):
            fail(f"{name}: a worker exited {codes} (log: {log.name})")
        rc = subprocess.run(self.cmd(art, "--finish"), env=self.env(url),
                            stdout=log, stderr=subprocess.STDOUT).returncode
        if rc != 0:
            fail(f"{name}: fer-tune --finish exited {rc} (log: {log.name})")
        print(f"{name}: {workers} workers, {killed} killed with -9 and restarted, "
              f"{time.time() - t0:.0f} s; every worker exited 0", flush=True)
        return art


def check(name, url, art, ref, ref_best):
    twice = query(url, TWICE_SQL)
    if twice:
        fail(f"{name}: rungs recorded by two jobs: {twice}")
    mine = rungs(url)
    common = sorted(set(mine) & set(ref))
    diff = [(k, mine[k], ref[k]) for k in common if mine[k] != ref[k]]
    if diff:
        fail(f"{name}: rung results differ from the 1-worker search: {diff[:5]}")
    summary = json.loads(next(art.glob("*/tune/summary.json")).read_text())
    top = lambda rs: sorted(t for (t, k) in rs if k == max(k for (_, k) in rs))
    same_top = top(mine) == top(ref)
    winner = f"winner trial-{summary['best_trial']:03}"
    if summary["best_trial"] == ref_best:
        winner += " (same)"
    elif same_top:
        fail(f"{name}: {winner}, 1 worker: trial-{ref_best:03}, with the same trials at the top rung")
    else:
        # Asynchronous ASHA promotes in the order results arrive: a worker killed mid-rung
        # delays its trial's result, so other trials may be promoted first, and a different set
        # reaches the top rung. The winner is then the best of that set.
        winner += (f" (1 worker: trial-{ref_best:03}; the trials at the top rung differ: "
                   f"{top(mine)} here, {top(ref)} with 1 worker)")
    jobs = dict((o or "open", int(n)) for o, n in query(url, JOBS_SQL))
    only = sorted(set(mine) ^ set(ref))
    print(f"{name}: {len(common)} (trial, rung) results equal to 1 worker's, "
          f"{len(only)} trained by one run only {only}; jobs {jobs}; "
          f"{winner}; no rung recorded twice", flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--pipeline", default="ci")
    ap.add_argument("--artifacts", default="artifacts")
    ap.add_argument("--postgres", help="a PostgreSQL server URL (its database is replaced)")
    ap.add_argument("--workers", type=int, default=4)
    ap.add_argument("--kills", type=int, default=10)
    ap.add_argument("--trials", type=int, default=24)
    ap.add_argument("--max-epochs", type=int, default=8)
    args = ap.parse_args()
    if not (Path(args.artifacts) / args.pipeline / "preprocess" / "manifest.json").exists():
        fail(f"no {args.artifacts}/{args.pipeline}/preprocess: run make preprocess PIPELINE={args.pipeline}")
    scratch = Path(tempfile.mkdtemp(prefix="fer-study-check."))
    r = Runner(args, scratch)
    one_url = f"sqlite://{scratch}/one.sqlite?mode=rwc"
    one = r.stage("one", one_url, 1)
    ref = rungs(one_url)
    ref_best = json.loads(next(one.glob("*/tune/summary.json")).read_text())["best_trial"]
    print(f"one: {len(ref)} (trial, rung) results, winner trial-{ref_best:03}", flush=True)
    url = f"sqlite://{scratch}/sqlite2.sqlite?mode=rwc"
    check("sqlite2", url, r.stage("sqlite2", url, 2), ref, ref_best)
    if args.postgres:
        for name in ("pg4", "chaos"):
            db = f"fer_study_{name}"
            psql(args.postgres, f"DROP DATABASE IF EXISTS {db}")
            psql(args.postgres, f"CREATE DATABASE {db}")
            url = with_db(args.postgres, db)
            art = (r.stage(name, url, args.workers) if name == "pg4"
                   else r.chaos(name, url, args.workers, args.kills))
            check(name, url, art, ref, ref_best)
    else:
        print("skipped: PostgreSQL runs (no --postgres server given)")
    shutil.rmtree(scratch)
    print("study-check: ok")


if __name__ == "__main__":
    main()
