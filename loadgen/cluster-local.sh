#!/usr/bin/env bash
# A cluster on this machine for measurements (README "Cluster mode" figures): three
# nats-server processes with JetStream (R3 streams, sync_interval: always, as
# tuning/nats/nats-server.conf) and NODES gateway nodes on 127.0.0.1 ports, all in a temp dir.
# Prints the agent and admin URLs (comma-separated, for aegis-loadgen --url/--admin) and the
# gateways' pids, then waits; Ctrl-C (or SIGTERM) stops everything.
#
#   NATS_SERVER=target/nats-venv/bin/nats-server NODES=2 loadgen/cluster-local.sh target/release/aegis-gateway
set -euo pipefail
GATEWAY=${1:?usage: cluster-local.sh PATH/TO/aegis-gateway}
NATS=${NATS_SERVER:-nats-server}
NODES=${NODES:-2}
TOKEN=${ADMIN_TOKEN:-cluster-local-token-0123456789}
DIR=$(mktemp -d /tmp/aegis-cluster.XXXXXX)
pids=()
stop() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$DIR"
}
trap stop EXIT INT TERM

routes="nats-route://127.0.0.1:16221,nats-route://127.0.0.1:16222,nats-route://127.0.0.1:16223"
urls=()
for i in 1 2 3; do
  mkdir -p "$DIR/nats-$i"
  cat >"$DIR/nats-$i.conf" <<EOF
server_name: nats-$i
listen: 127.0.0.1:$((14221 + i))
jetstream { store_dir: "$DIR/nats-$i", sync_interval: always, max_file_store: 10GB }
cluster { name: aegis-local, listen: 127.0.0.1:$((16220 + i)), routes: [ ${routes//,/, } ] }
max_payload: 1MB
EOF
  "$NATS" -c "$DIR/nats-$i.conf" >"$DIR/nats-$i.log" 2>&1 &
  pids+=($!)
  urls+=("nats://127.0.0.1:$((14221 + i))")
done
NATS_URL=$(IFS=,; echo "${urls[*]}")
sleep 2

agent_urls=()
admin_urls=()
gw_pids=()
for n in $(seq 1 "$NODES"); do
  mkdir -p "$DIR/gw-$n"
  [ "$n" -gt 1 ] && key=(AUTH_PRIVATE_KEY_PATH="$DIR/gw-1/keys/private.pem") || key=()
  env "${key[@]}" NATS_URL="$NATS_URL" NATS_REPLICAS=3 NODE_ID="gw-$n" DATA_DIR="$DIR/gw-$n" \
    WEBSOCKET_ADDR="127.0.0.1:$((18080 + n))" ADMIN_ADDR="127.0.0.1:$((19090 + n))" \
    ADMIN_TOKEN="$TOKEN" MESSAGE_RATE=0 CONNECT_RATE=0 RUST_LOG=warn \
    "$GATEWAY" serve >"$DIR/gw-$n.log" 2>&1 &
  pids+=($!)
  gw_pids+=($!)
  agent_urls+=("ws://127.0.0.1:$((18080 + n))/ws/agent")
  admin_urls+=("http://127.0.0.1:$((19090 + n))")
  # The first node generates the gateway key the others share.
  for _ in $(seq 1 100); do [ -s "$DIR/gw-$n/keys/private.pem" ] || [ "$n" -gt 1 ] && break; sleep 0.1; done
  # Serving only once ready: the first node creates the streams and buckets (≈ 10 s with three
  # fresh servers), and agents dialling before then are refused.
  for _ in $(seq 1 600); do
    curl -sf -o /dev/null "http://127.0.0.1:$((19090 + n))/readyz" && break
    sleep 0.1
  done
done
echo "agents: $(IFS=,; echo "${agent_urls[*]}")"
echo "admin:  $(IFS=,; echo "${admin_urls[*]}")"
echo "token:  $TOKEN"
echo "pids:   ${gw_pids[*]}"
echo "logs:   $DIR"
wait
