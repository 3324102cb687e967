#!/usr/bin/env python3
"""Which B-trees a database's WAL frames belong to, per commit.

    bench/walpages.py DB

Reads DB-wal (the frames of its current generation: after the last restart), counts frames per
commit and attributes each frame's page to its table or index through SQLite's `dbstat`
(Python's sqlite3 module, on a copy, so DB itself is not touched). For write amplification:
run a workload, stop the server with SIGKILL (so the WAL stays as it is), then run this.
Used by bench/refresh-io.sh."""
import collections, os, shutil, sqlite3, struct, sys, tempfile

db = sys.argv[1]
data = open(db + "-wal", "rb").read()
_, _, page_size, _, salt1, salt2, _, _ = struct.unpack(">IIIIIIII", data[:32])
frames, off = [], 32
while off + 24 + page_size <= len(data):
    page, commit, s1, s2, _, _ = struct.unpack(">IIIIII", data[off:off + 24])
    if (s1, s2) != (salt1, salt2):
        break
    frames.append((page, commit))
    off += 24 + page_size
tmp = tempfile.mkdtemp()
try:
    copy = os.path.join(tmp, "copy.db")
    shutil.copy(db, copy)
    shutil.copy(db + "-wal", copy + "-wal")
    owner = dict((p, n) for n, p in sqlite3.connect(copy).execute("SELECT name, pageno FROM dbstat"))
finally:
    shutil.rmtree(tmp)
commits, per_tree = 0, collections.Counter()
for page, commit in frames:
    per_tree[owner.get(page, "(free or new)")] += 1
    commits += bool(commit)
commits = max(commits, 1)
print(f"{len(frames)} frames in {commits} commits: {len(frames) / commits:.2f} frames per commit")
for name, n in per_tree.most_common():
    print(f"  {n / commits:6.2f} per commit  {name}")
