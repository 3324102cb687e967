# Shared by bench/refresh-io.sh and bench/ab.sh (sourced, not run): a working copy of the
# peers' Latchkey harness (../shared/peers/latchkey: seed.py, mint.py, lua/), a loopback port,
# and a server started on a fresh database (or a copy of SEED_DB), seeded with the harness's
# 100 users. Sets W (the copy; the caller's working directory from here on), PORT, U (the base
# URL) and PID (the server's), and removes the server and the copy on exit.

# lk_workdir NAME: the copy, the port and the exit trap.
lk_workdir() {
  W=$(mktemp -d "/tmp/$1.XXXXXX")
  PID=
  trap '[ -n "$PID" ] && kill -9 $PID 2>/dev/null; rm -rf "$W"' EXIT
  cp -r "${PEERS:-$ROOT/../shared/peers}/latchkey/." "$W/" && chmod -R u+w "$W"
  cd "$W"
  PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  U=http://127.0.0.1:$PORT
}

# lk_start BIN: BIN on a fresh data/ (a copy of SEED_DB when set), rate limits off, warn
# logs; waits for /healthz, then seeds.
lk_start() {
  local bin=$1
  rm -rf data && mkdir data
  if [ -n "${SEED_DB:-}" ]; then cp "$SEED_DB" data/latchkey.db; fi
  cat > data/latchkey.toml <<TOML
[server]
bind = "127.0.0.1:$PORT"
public_url = "$U"
[database]
path = "$W/data/latchkey.db"
[cookies]
secure = false
[log]
level = "warn"
[security]
secret_key = "$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')"
login_ip_per_minute = 100000000
login_max_failures = 100000000
public_api_per_minute = 100000000
TOML
  "$bin" --config data/latchkey.toml serve > server.log 2>&1 &
  PID=$!
  for _ in $(seq 1 300); do curl -sf "$U/healthz" >/dev/null && break; sleep 0.1; done
  LK_BIN=$bin LK_CONFIG=$W/data/latchkey.toml BASE=$U python3 seed.py > /dev/null
}
