#!/usr/bin/env python3
"""Scale generator: fills an existing, migrated Latchkey database with N users in M orgs.

    python3 bench/scale.py DB_PATH --users 1000000 --orgs 10000

DB_PATH must already hold the current schema, made by the binary itself:
`latchkey --config CFG migrate` (or one `latchkey serve`). The rows are written as the server
writes them (src/ids.rs, src/db/{users,orgs,members,sessions,audit,outbox}.rs, schema.sql and
migrations/): prefixed ULIDs (`usr_`, `org_`, `mem_`, `ses_`, `aud_`, `evt_`, `msg_`, `adk_`)
whose time part is the row's `created_at`, times in ms since the epoch, the org `settings`
JSON the server stores by default, refresh tokens as the hex SHA-256 of a random token.

What it writes (users spread evenly over the orgs in contiguous blocks; the first member of
each org is its owner, created with it; every org also gets one `org_admin` when it has 3+):
  - orgs: slug `<word>-<word>-<j>`, plan free (80 %) or pro;
  - users over the last 3 years, in creation order; 80 % email-verified; all with the same
    argon2id PHC hash (m=19456 t=2 p=1, the server's defaults: made once by the real server's
    `POST /api/v1/admin/users` and read back from its database) of PASSWORD below; 60 % have
    a last login;
  - one membership per user;
  - for every 10th user (--sessions-every) one ended session with its refresh-token row and
    the audit entries and events of that login: half ended by `logout` (revoked, with a
    `user.logout` entry and event), half idle-expired (7 days after the login);
  - audit `user.signup` for users made in the last 90 days, `org.created` for the orgs made
    in the last 300 days (by one admin key row, `scale-generator`, whose key nobody has);
  - a redacted, succeeded outbox email ("Verify your email — Org") for users made in the last
    20 days, and for 1 % of users a password-reset email with its audit entry.
Everything with a lifetime is kept well inside the server's retention (sessions ended 1-20
days ago: kept 30 d; events and outbox rows under 20 d: kept 30 d; audit under 300 d: kept
365 d), so the maintenance sweep finds nothing to delete for about 10 days after generation
and does not disturb a benchmark; bench/scale.sh regenerates a cached database after 7 days.

The server never runs ANALYZE or PRAGMA optimize (grep src/ for them), so neither does this
generator: the planner sees the big database as it would see a real one. Journal mode stays
WAL. The generated users log in with:

    email    first.last<i>@<domain>, see email_of(i) (the samples are printed at the end)
    password correct-horse-battery-lu
    org      the slug printed beside each sample (header X-Org-Slug)

Stdlib only (sqlite3). Prints the rows written per table, the time taken and the database
size (file + WAL after a TRUNCATE checkpoint, per table from dbstat).
"""
import argparse
import base64
import hashlib
import json
import os
import random
import sqlite3
import sys
import time

PASSWORD = "correct-horse-battery-lu"
# A PHC string the release binary wrote for PASSWORD (POST /api/v1/admin/users, default
# [argon2] m=19456 KiB t=2 p=1): logins verify it and, under the default settings, never
# rehash it. With other [argon2] settings every first login would rewrite the hash; pass one
# made under those settings with --password-hash.
PASSWORD_HASH = "$argon2id$v=19$m=19456,t=2,p=1$OQ0/hAzQu8j0JuGHe2MWBg$6KU4x1iH462623341qwNx7hJDgOU29eGR9I+SQJEtV8"

DAY = 86_400_000
HOUR = 3_600_000
SPAN = 3 * 365 * DAY          # users were made over the last three years
ORG_SETTINGS = '{"signupMode":"invite_only","allowedDomains":[],"require2FA":false,"passwordMinLength":null}'
CHUNK = 100_000               # users per transaction

FIRST = ("ada alan alice amir ana anna ben bruno carla chen chloe dan david diego elena emma "
         "eva fatima felix grace hana hugo ines ivan jack jana jonas julia kai karin lars lea "
         "leo lina luca maria marco mia nina noah olga omar paul petra quinn rosa sam sara "
         "sofia tom uma vera wei yara yusuf zoe").split()
LAST = ("adams baker bauer berg brown chen costa cruz diaz dubois evans fischer garcia gomez "
        "hansen hoffmann ito jansen jones kim klein koch kowalski lee lopez martin meyer "
        "moreau muller nguyen novak olsen park patel perez petrov ricci rossi sato schmidt "
        "silva smith suzuki tanaka taylor wagner wang weber wilson wolf yamamoto zhang").split()
DOMAINS = ("example.com example.org example.net mail.example.com corp.example.org "
           "inbox.example.net").split()
WORDS = ("acme apex arc atlas aurora beacon birch blue bolt cedar cloud comet coral crest delta "
         "ember echo falcon fern flux forge frost gale granite harbor helix indigo iron jade "
         "juniper kestrel lumen maple meadow mesa nimbus north nova oak onyx orbit pine pixel "
         "prism quartz raven ridge river sage silver slate solar spark spruce stone summit tide "
         "topaz vector willow zenith").split()
AGENTS = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Safari/605.1.15",
    "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1",
    "okhttp/4.12.0",
)

# ULIDs as src/ids.rs makes them: 48-bit ms time + 80 random bits, Crockford base32, 26
# characters. 160 bits = 32 base32 characters; the last 26 hold the 128-bit value.
_CROCKFORD = bytes.maketrans(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", b"0123456789ABCDEFGHJKMNPQRSTVWXYZ")


def email_of(i):
    """The email of generated user i (0-based)."""
    return f"{FIRST[i % len(FIRST)]}.{LAST[(i // len(FIRST)) % len(LAST)]}{i}@{DOMAINS[i % len(DOMAINS)]}"


def slug_of(j):
    """The slug of generated org j (0-based)."""
    return f"{WORDS[j % len(WORDS)]}-{WORDS[(j // len(WORDS)) % len(WORDS)]}-{j}"


def block(n_users, n_orgs, j):
    """The users [start, end) of org j: contiguous blocks, sizes differing by at most one."""
    return (j * n_users // n_orgs, (j + 1) * n_users // n_orgs)


def org_of(n_users, n_orgs, i):
    """The org j whose block holds user i: the largest j with j * n_users // n_orgs <= i."""
    return -(-(i + 1) * n_orgs // n_users) - 1


def rfc3339(ms):
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms // 1000)) + f".{ms % 1000:03d}Z"


class Gen:
    def __init__(self, args):
        self.n, self.m = args.users, args.orgs
        self.rng = random.Random(args.seed)
        self.now = int(time.time() * 1000)
        self.t0 = self.now - SPAN
        self.hash = args.password_hash
        self.every = args.sessions_every
        self.counts = {}

    def ulid(self, prefix, ms):
        v = (ms << 80) | self.rng.getrandbits(80)
        return prefix + "_" + base64.b32encode(v.to_bytes(20, "big"))[6:].translate(_CROCKFORD).decode()

    def user_created(self, i):
        # Evenly spread over SPAN, strictly increasing with i; the last a minute before now.
        return self.t0 + (i * (SPAN - 60_000)) // self.n

    def ip(self):
        r = self.rng
        return r.choice(("198.51.100.", "203.0.113.", "192.0.2.")) + str(r.randrange(1, 255))

    def token_hash(self):
        tok = base64.urlsafe_b64encode(self.rng.randbytes(32)).rstrip(b"=")
        return hashlib.sha256(tok).hexdigest()

    def chain_token_hash(self, sid):
        """SHA-256 of a refresh token as Latchkey issues it: `<session>-0-<secret>`."""
        tok = sid.encode() + b"-0-" + base64.urlsafe_b64encode(self.rng.randbytes(32)).rstrip(b"=")
        return hashlib.sha256(tok).digest()


def insert(db, g, table, cols, rows):
    sql = f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})"
    db.executemany(sql, rows)
    g.counts[table] = g.counts.get(table, 0) + len(rows)


def check_db(db, path):
    version = db.execute("PRAGMA user_version").fetchone()[0]
    tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    need = {"orgs", "users", "memberships", "sessions", "refresh_chain", "audit_log", "events",
            "outbox", "admin_keys"}
    if version == 0 or not need <= tables:
        sys.exit(f"{path}: not a migrated Latchkey database (user_version {version}); "
                 "run `latchkey --config CFG migrate` first")
    return version


def generate(db, g):
    n, m, rng, now = g.n, g.m, g.rng, g.now
    adk_at = g.t0 - DAY
    adk = g.ulid("adk", adk_at)
    insert(db, g, "admin_keys", ("id", "name", "key_hash", "prefix", "created_at"),
           [(adk, "scale-generator", g.token_hash(), "sk_admin_0", adk_at)])

    # Orgs: org j is made with its owner (the first user of its block).
    orgs, audit = [], []
    org_ids = [None] * m
    org_names = [None] * m
    for j in range(m):
        start, _ = block(n, m, j)
        at = g.user_created(start)
        oid = g.ulid("org", at)
        org_ids[j] = oid
        org_names[j] = f"{WORDS[j % len(WORDS)].title()} {WORDS[(j // len(WORDS)) % len(WORDS)].title()} {j}"
        orgs.append((oid, slug_of(j), org_names[j], "pro" if rng.random() < 0.2 else "free",
                     ORG_SETTINGS, at, at))
        if at > now - 300 * DAY:
            audit.append((g.ulid("aud", at), oid, "admin_key", adk, "org.created", "org", oid,
                          g.ip(), "curl/8.5.0", json.dumps({"slug": slug_of(j)}, separators=(",", ":")), at))
    insert(db, g, "orgs", ("id", "slug", "name", "plan", "settings", "created_at", "updated_at"), orgs)
    insert(db, g, "audit_log", AUDIT_COLS, audit)
    db.commit()

    for lo in range(0, n, CHUNK):
        hi = min(n, lo + CHUNK)
        users, members, sessions, refresh, audit, events, outbox = [], [], [], [], [], [], []
        for i in range(lo, hi):
            j = org_of(n, m, i)
            start, end = block(n, m, j)
            oid = org_ids[j]
            at = g.user_created(i)
            uid = g.ulid("usr", at)
            email = email_of(i)
            first, last = FIRST[i % len(FIRST)], LAST[(i // len(FIRST)) % len(LAST)]
            name = f"{first.title()} {last.title()}"
            verified = 1 if rng.random() < 0.8 else 0
            updated = at + rng.randrange(60_000, 3 * DAY) if verified else at
            updated = min(updated, now - 1000)
            last_login = None
            if rng.random() < 0.6:
                last_login = min(now - 1000, at + rng.randrange(60_000, max(60_001, now - at)))
            role = "owner" if i == start else ("org_admin" if i == start + 1 and end - start >= 3 else "member")
            sess = i % g.every == g.every - 1 and at < now - 2 * DAY
            if sess:
                if i % (2 * g.every) == g.every - 1:  # ended by logout 1-20 days ago
                    c = rng.randrange(max(at + HOUR, now - 20 * DAY), now - DAY)
                    seen = c + rng.randrange(60_000, 2 * HOUR)
                    revoked = seen
                else:  # idle-expired 1-20 days ago (idle deadline 7 days after the last refresh)
                    c = rng.randrange(max(at + HOUR, now - 27 * DAY), now - 8 * DAY) if at + HOUR < now - 8 * DAY else None
                    seen, revoked = c, None
                if c is None:
                    sess = False
            if sess:
                last_login = c if last_login is None or last_login < c else last_login
            users.append((uid, email, verified, g.hash, name, at, updated, last_login))
            members.append((g.ulid("mem", at), oid, uid, role, at, at))
            slug = slug_of(j)
            if at > now - 90 * DAY:
                audit.append((g.ulid("aud", at), oid, "user", uid, "user.signup", "user", uid,
                              g.ip(), rng.choice(AGENTS), "{}", at))
            if at > now - 20 * DAY:
                outbox.append(email_row(g, oid, email, f"Verify your email — {org_names[j]}", at + 5))
            if rng.random() < 0.01:
                r_lo = max(at + HOUR, now - 20 * DAY)
                if r_lo < now - HOUR:
                    r_at = rng.randrange(r_lo, now - HOUR)
                    audit.append((g.ulid("aud", r_at), oid, "user", uid, "user.password_reset_requested",
                                  "user", uid, g.ip(), rng.choice(AGENTS), "{}", r_at))
                    outbox.append(email_row(g, oid, email, f"Reset your password — {org_names[j]}", r_at))
            if sess:
                sid = g.ulid("ses", c)
                ip, ua = g.ip(), rng.choice(AGENTS)
                sessions.append((sid, oid, uid, '["pwd"]', ip, ua, c, seen, seen + 7 * DAY,
                                 c + 30 * DAY, revoked, "logout" if revoked else None))
                refresh.append((sid, 0, g.chain_token_hash(sid), oid, c))
                audit.append((g.ulid("aud", c), oid, "user", uid, "user.login", "user", uid, ip, ua,
                              '{"amr":["pwd"]}', c))
                who = json.dumps({"email": email, "id": uid}, separators=(",", ":"))
                events.append(event_row(g, oid, slug, "user.login", c,
                                        f'{{"amr":["pwd"],"session":{{"id":"{sid}"}},"user":{who}}}'))
                if revoked:
                    audit.append((g.ulid("aud", revoked), oid, "user", uid, "user.logout", "session",
                                  sid, ip, ua, "{}", revoked))
                    events.append(event_row(g, oid, slug, "user.logout", revoked,
                                            f'{{"session":{{"id":"{sid}"}},"user":{{"id":"{uid}"}}}}'))
        insert(db, g, "users", ("id", "email", "email_verified", "password_hash", "name",
                                "created_at", "updated_at", "last_login_at"), users)
        insert(db, g, "memberships", ("id", "org_id", "user_id", "role", "joined_at", "updated_at"), members)
        insert(db, g, "sessions", ("id", "org_id", "user_id", "auth_methods", "ip_address", "user_agent",
                                   "created_at", "last_seen_at", "idle_expires_at", "expires_at",
                                   "revoked_at", "revoked_reason"), sessions)
        insert(db, g, "refresh_chain", ("session_id", "generation", "token_hash", "org_id", "created_at"), refresh)
        insert(db, g, "audit_log", AUDIT_COLS, audit)
        insert(db, g, "events", ("id", "org_id", "event", "payload", "created_at"), events)
        insert(db, g, "outbox", ("id", "kind", "org_id", "payload", "status", "attempts",
                                 "next_attempt_at", "created_at", "delivered_at"), outbox)
        db.commit()
        print(f"  {hi:>9} users", file=sys.stderr, flush=True)


AUDIT_COLS = ("id", "org_id", "actor_type", "actor_id", "action", "target_type", "target_id",
              "ip_address", "user_agent", "metadata", "created_at")


def email_row(g, oid, to, subject, at):
    # What the worker leaves of a sent email (src/outbox/at_rest.rs `redact`; keys sorted as
    # serde_json writes them).
    payload = json.dumps({"format": "redacted", "subject": subject, "to": to},
                         ensure_ascii=False, separators=(",", ":"))
    return (g.ulid("msg", at), "email", oid, payload, "succeeded", 1, at + 2 + 90_000, at, at + 2)


def event_row(g, oid, slug, event, at, data):
    eid = g.ulid("evt", at)
    payload = (f'{{"id":"{eid}","event":"{event}","orgId":"{oid}","orgSlug":"{slug}",'
               f'"timestamp":"{rfc3339(at)}","data":{data}}}')
    return (eid, oid, event, payload, at)


def sizes(db, path):
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    main = os.path.getsize(path)
    wal = os.path.getsize(path + "-wal") if os.path.exists(path + "-wal") else 0
    per = {}
    try:
        q = ("SELECT coalesce(m.tbl_name, s.name), sum(s.pgsize) FROM dbstat s "
             "LEFT JOIN sqlite_master m ON m.name = s.name GROUP BY 1 ORDER BY 2 DESC")
        per = dict(db.execute(q).fetchall())
    except sqlite3.OperationalError:
        pass  # no dbstat in this SQLite build
    return main, wal, per


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("db", help="a Latchkey database already migrated by the binary")
    p.add_argument("--users", type=int, required=True)
    p.add_argument("--orgs", type=int, required=True)
    p.add_argument("--sessions-every", type=int, default=10,
                   help="every Nth user gets an ended session (default 10: 10 %%)")
    p.add_argument("--password-hash", default=PASSWORD_HASH,
                   help="the PHC string every user gets (default: the server's hash of "
                        f"{PASSWORD!r} under the default [argon2] settings)")
    p.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    p.add_argument("--check", action="store_true",
                   help="also run PRAGMA foreign_key_check afterwards (a scan of every table)")
    args = p.parse_args()
    if args.users < 1 or not 1 <= args.orgs <= args.users:
        p.error("need 1 <= orgs <= users")
    if not args.password_hash.startswith("$argon2id$"):
        p.error("--password-hash must be an argon2id PHC string")
    if not os.path.exists(args.db):
        sys.exit(f"{args.db}: no such file; create it with `latchkey --config CFG migrate`")

    db = sqlite3.connect(args.db, isolation_level="DEFERRED")
    db.execute("PRAGMA busy_timeout = 5000")
    version = check_db(db, args.db)
    if db.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
        db.execute("PRAGMA journal_mode = WAL")
    if db.execute("SELECT 1 FROM users WHERE email = ?", (email_of(0),)).fetchone():
        sys.exit(f"{args.db}: already holds generated users ({email_of(0)}); use a fresh database")
    # Bulk-load settings for this connection only (the file keeps WAL; the server sets its own
    # pragmas on each of its connections). The rows are consistent by construction, so the
    # foreign keys are not checked row by row (--check verifies them afterwards).
    db.execute("PRAGMA synchronous = OFF")
    db.execute("PRAGMA cache_size = -524288")   # 512 MiB
    db.execute("PRAGMA temp_store = MEMORY")
    db.execute("PRAGMA foreign_keys = OFF")

    g = Gen(args)
    t = time.monotonic()
    print(f"generating {args.users} users in {args.orgs} orgs into {args.db} (schema version {version})",
          file=sys.stderr)
    generate(db, g)
    elapsed = time.monotonic() - t
    if args.check:
        bad = db.execute("PRAGMA foreign_key_check").fetchmany(5)
        if bad:
            sys.exit(f"foreign key violations: {bad}")
        print("foreign keys: ok", file=sys.stderr)
    main_b, wal_b, per = sizes(db, args.db)
    db.close()

    total = sum(g.counts.values())
    print(f"rows written: {total:,} in {elapsed:.1f} s ({total / elapsed:,.0f} rows/s)")
    for table, c in g.counts.items():
        print(f"  {table:<15} {c:>10,}")
    mib = lambda b: b / 1048576
    print(f"database size: {mib(main_b + wal_b):.1f} MiB (file {mib(main_b):.1f} MiB + WAL {mib(wal_b):.1f} MiB "
          f"after a TRUNCATE checkpoint); {mib(main_b + wal_b) * 1e6 / args.users:.1f} MiB per 1 M users")
    big = {t: b for t, b in per.items() if b >= 1 << 20}
    if big:
        print("  by table (data + indexes, dbstat; 1 MiB and more):")
        for table, b in big.items():
            print(f"  {table:<15} {mib(b):>9.1f} MiB")
    print(f"password of every generated user: {PASSWORD}" if args.password_hash == PASSWORD_HASH
          else "password: the one --password-hash was made from")
    for i in sorted({0, args.users // 2, args.users - 1}):
        j = org_of(args.users, args.orgs, i)
        print(f"sample user {i}: email={email_of(i)} org={slug_of(j)}")


if __name__ == "__main__":
    main()
