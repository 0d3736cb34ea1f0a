#!/usr/bin/env bash
# Runs schemathesis (PyPI) with every check against a real gateway and its own OpenAPI document:
# the document and the validators must agree (hardening issue, item 8). Installs schemathesis into
# a venv under target/, starts `aegis-gateway serve` on loopback ports with a temp DATA_DIR, stops
# it on exit, and fails on any schemathesis failure.
#
# Env: MAX_EXAMPLES (default 40 per operation), SCHEMATHESIS_VERSION, GATEWAY_BIN (default: the
# debug binary, built if missing), SCHEMATHESIS_VENV.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
VERSION="${SCHEMATHESIS_VERSION:-4.32.5}"
VENV="${SCHEMATHESIS_VENV:-$ROOT/target/schemathesis-venv}"
MAX_EXAMPLES="${MAX_EXAMPLES:-40}"
TOKEN="schemathesis-token-$RANDOM$RANDOM"

if ! "$VENV/bin/schemathesis" --version 2>/dev/null | grep -q "version $VERSION\$"; then
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$VERSION"
fi

BIN="${GATEWAY_BIN:-$ROOT/target/debug/aegis-gateway}"
if [ -z "${GATEWAY_BIN:-}" ]; then
    cargo build --quiet --bin aegis-gateway
fi

WORK=$(mktemp -d)
PID=""
cleanup() {
    if [ -n "$PID" ] && kill -0 "$PID" 2>/dev/null; then
        kill -TERM "$PID" 2>/dev/null || true
        for _ in $(seq 1 100); do kill -0 "$PID" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$PID" 2>/dev/null || true
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT

DATA_DIR="$WORK/data" WEBSOCKET_ADDR=127.0.0.1:0 ADMIN_ADDR=127.0.0.1:0 ADMIN_TOKEN="$TOKEN" \
    SHARDS=1 LOG_FORMAT=pretty NO_COLOR=1 RUST_LOG=info \
    "$BIN" serve >"$WORK/stdout.log" 2>"$WORK/gateway.log" &
PID=$!

ADDR=""
for _ in $(seq 1 300); do
    ADDR=$(grep -o 'admin_addr=[^ ]*' "$WORK/gateway.log" 2>/dev/null | head -1 | cut -d= -f2 | tr -d '"') || true
    [ -n "$ADDR" ] && break
    kill -0 "$PID" 2>/dev/null || { cat "$WORK/gateway.log"; echo "gateway exited" >&2; exit 1; }
    sleep 0.1
done
[ -n "$ADDR" ] || { cat "$WORK/gateway.log"; echo "gateway did not report its admin address" >&2; exit 1; }
echo "schemathesis $VERSION against http://$ADDR (max $MAX_EXAMPLES examples per operation)"

"$VENV/bin/python" - "$ADDR" "$TOKEN" "$WORK/openapi.json" <<'PY'
import sys, urllib.request
addr, token, out = sys.argv[1:4]
req = urllib.request.Request(f"http://{addr}/api/v1/openapi.json",
                             headers={"Authorization": f"Bearer {token}"})
with urllib.request.urlopen(req, timeout=30) as r, open(out, "wb") as f:
    f.write(r.read())
PY

# The event stream never ends, so it cannot be judged as one response: excluded here, it has
# its own tests (src/admin/tests/sse.rs, tests/admin_api.rs).
START=$(date +%s)
status=0
cd "$WORK" # schemathesis keeps its example database in the working directory
"$VENV/bin/schemathesis" run "$WORK/openapi.json" \
    --url "http://$ADDR" \
    --header "Authorization: Bearer $TOKEN" \
    --checks all \
    --max-examples "$MAX_EXAMPLES" \
    --exclude-operation-id streamEvents \
    ${SEED:+--seed "$SEED"} \
    --workers 2 \
    --request-timeout 10 \
    --no-color \
    --report junit --report-dir "$WORK/report" || status=$?
echo "schemathesis took $(( $(date +%s) - START )) s, exit $status"
if [ "$status" -ne 0 ]; then
    echo "--- gateway log (tail) ---"; tail -n 50 "$WORK/gateway.log"
fi
exit "$status"
