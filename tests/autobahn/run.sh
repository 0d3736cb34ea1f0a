#!/usr/bin/env bash
# WebSocket compliance: Autobahn TestSuite fuzzingclient (cases 1-10) against `aegis-gateway ws-echo`,
# which runs the production connection code (upgrade response, WebSocketConfig, error-to-close mapping).
# Needs Python 2.7 with `pip install autobahntestsuite`. Prints the summary; exits 1 on any FAILED case.
set -euo pipefail
cd "$(dirname "$0")"
PY=${PYTHON2:-$HOME/.pyenv/versions/2.7.18/bin/python}
WSTEST=${WSTEST:-$(dirname "$PY")/wstest}
BIN=${BIN:-../../target/release/aegis-gateway}
[ -x "$BIN" ] || (cd ../.. && cargo build --release)
# Autobahn 9.x sends messages up to 16 MiB: let the echo accept them.
MAX_MESSAGE_SIZE=64MiB RUST_LOG=warn "$BIN" ws-echo --addr 127.0.0.1:9001 &
ECHO=$!
trap 'kill $ECHO 2>/dev/null || true' EXIT
sleep 1
rm -rf reports
timeout 1800 "$WSTEST" -m fuzzingclient -s fuzzingclient.json > wstest.log 2>&1
python3 - <<'PY'
import json, collections
d = json.load(open("reports/servers/index.json"))["aegis-gateway"]
c = collections.Counter(v["behavior"] for v in d.values())
print("autobahn cases:", len(d), dict(c))
failed = sorted(k for k, v in d.items() if v["behavior"] == "FAILED")
print("FAILED:", failed if failed else "none")
raise SystemExit(1 if failed else 0)
PY
