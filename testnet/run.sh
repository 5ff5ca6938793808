#!/usr/bin/env bash
# `make run`: starts a local network of four institutions — a court, a
# notary office, the time service and an appraisal centre — as separate
# node processes on loopback, registers a demo submitter key, prints how to
# use it, and stops the nodes on Ctrl-C. Data stays in run/ between runs
# (directories are tied to the genesis fingerprint); `make clean` resets it.
set -euo pipefail
BIN=${BIN:-bin/cunzheng}
RUN=${RUN:-run}
PORT=${PORT:-8080}
NODES=${NODES:-4}

"$BIN" testnet up --dir "$RUN/network" --nodes "$NODES" --port "$PORT" > "$RUN.up.log" 2>&1 || { cat "$RUN.up.log" >&2; exit 1; }
trap '"$BIN" testnet down --dir "$RUN/network" >/dev/null 2>&1' EXIT INT TERM
URL=http://127.0.0.1:$PORT
if [ ! -f "$RUN/demo.key" ]; then
  "$BIN" keygen submitter -o "$RUN/demo.key" >/dev/null
  for _ in $(seq 50); do
    "$BIN" submitter register --node "$URL" --admin-key "$RUN/network/court.example/admin.key" --label demo "$RUN/demo.pub" >/dev/null 2>"$RUN.register.log" && break
    sleep 0.2 # the network is electing its first leader
  done
fi
FP=$(sed -n 's/.*"fingerprint": *"\([0-9a-f]*\)".*/\1/p' "$RUN/network/network.json" | head -1)
cat "$RUN.up.log" | sed -n '1,/^$/p;/^  /p' | grep -v "^Register\|^  cunzheng" || true
cat <<INFO
demo submitter key:  $RUN/demo.key (registered)
web verification:    $URL/verify

Preserve a file (writes FILE.receipt beside it; any node's URL works):
  $BIN submit --node $URL --key $RUN/demo.key FILE

Verify it offline from its receipt:
  $BIN verify --receipt FILE.receipt --genesis $FP FILE

Or look it up on any node, without a receipt:
  $BIN verify --node http://127.0.0.1:$((PORT+1)) --genesis $FP FILE

Ctrl-C stops the network; data stays in $RUN/ (make clean resets it).
INFO
while true; do sleep 3600; done
