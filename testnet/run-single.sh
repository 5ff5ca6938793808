#!/usr/bin/env bash
# Starts a local one-institution cunzheng node with a registered demo
# submitter key, prints how to use it, and serves until Ctrl-C. Data stays
# in run/ between runs; `make clean` resets it.
set -euo pipefail
BIN=${BIN:-bin/cunzheng}
RUN=${RUN:-run}
ADDR=${ADDR:-127.0.0.1:8080}
DIR=$RUN/node1
URL=http://$ADDR

mkdir -p "$RUN"
if [ ! -f "$DIR/node.conf" ]; then
  "$BIN" init --dir "$DIR" --name court.example --role court --listen "$ADDR"
fi
"$BIN" node --dir "$DIR" --listen "$ADDR" 2>"$RUN/node1.log" &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null' EXIT INT TERM
for _ in $(seq 100); do
  curl -fsS "$URL/healthz" >/dev/null 2>&1 && break
  kill -0 $pid 2>/dev/null || { echo "node failed to start; see $RUN/node1.log" >&2; cat "$RUN/node1.log" >&2; exit 1; }
  sleep 0.1
done
if [ ! -f "$RUN/demo.key" ]; then
  "$BIN" keygen submitter -o "$RUN/demo.key" >/dev/null
  "$BIN" submitter register --node "$URL" --admin-key "$DIR/admin.key" --label demo "$RUN/demo.pub" >/dev/null
fi
FP=$(curl -fsS "$URL/v1/status" | sed -n 's/.*"network": *"\([0-9a-f]*\)".*/\1/p')
cat <<INFO

cunzheng node running (logs: $RUN/node1.log)
  node URL:            $URL
  genesis fingerprint: $FP
  demo submitter key:  $RUN/demo.key
  web verification:    $URL/verify

Preserve a file (writes FILE.receipt beside it):
  $BIN submit --node $URL --key $RUN/demo.key FILE

Verify it offline from its receipt:
  $BIN verify --receipt FILE.receipt --genesis $FP FILE

Or look it up on the node, without a receipt:
  $BIN verify --node $URL --genesis $FP FILE

Ctrl-C stops the node; data stays in $RUN/ (make clean resets it).
INFO
wait $pid
