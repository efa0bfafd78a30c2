#!/usr/bin/env bash
# testssl.sh against scoregate, as an auditor would run it: a full default
# scan (protocols, ciphers, server defaults, headers, vulnerabilities, client
# simulations) of one scoregate on 127.0.0.1, serving a `scoregate cert dev`
# certificate for score.example.test in front of the --dev demo backend.
#
# Fails when any finding is HIGH, CRITICAL or FATAL (except the waiver below),
# when a protocol below TLS 1.2 is offered, or when the scan does not finish.
# Prints the findings by severity and the time taken.
#
# Installs testssl.sh (and python3 and curl, if missing) from Debian with
# apt-get, so in CI it runs as root. Offline apart from that install: no DNS
# (--ip, --nodns none), no CRL/OCSP fetches (no --phone-out); traffic goes
# to 127.0.0.1 only. SCOREGATE_* variables reach `scoregate serve` as usual
# (flags given here win), e.g. SCOREGATE_HSTS_MAX_AGE=8760h .ci/testssl.sh.
set -euo pipefail
cd "$(dirname "$0")/.."

readonly cname=score.example.test
readonly scan_limit=600    # seconds testssl may take (it takes about 45)
readonly ready_limit=30    # seconds scoregate may take to answer
started=$SECONDS

# --- everything below lives in $work and is stopped or removed on exit
work=$(mktemp -d "${TMPDIR:-/tmp}/scoregate-testssl.XXXXXX")
sg_pid=""
scan_pid=""
cleanup() {
	local pid
	for pid in $scan_pid $sg_pid; do
		kill -TERM "$pid" 2>/dev/null || continue
		# Bounded wait for a graceful stop (scoregate drains in-flight
		# requests), then SIGKILL.
		for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
		kill -KILL "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
	done
	rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# --- install what is missing (idempotent; apt-get update only if needed)
missing=()
command -v testssl >/dev/null || missing+=(testssl.sh)
command -v python3 >/dev/null || missing+=(python3)
command -v curl >/dev/null || missing+=(curl)
if [ ${#missing[@]} -gt 0 ]; then
	echo "--- apt-get install ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	install=(apt-get install -y -q --no-install-recommends "${missing[@]}")
	if ! "${install[@]}" >"$work/apt.log" 2>&1; then
		if ! { apt-get update -q && "${install[@]}"; } >>"$work/apt.log" 2>&1; then
			cat "$work/apt.log"; echo "installing ${missing[*]} failed"; exit 1
		fi
	fi
fi
installed=$((SECONDS - started))

# --- scoregate with a dev certificate for $cname, on a port the kernel picks
echo "--- build scoregate; certificate for $cname"
go build -buildvcs=false -o "$work/scoregate" ./cmd/scoregate
# Its output (and its stderr warning about the dev CA's key) only on failure.
if ! out=$("$work/scoregate" cert dev --ssl-cname "$cname" --out "$work/certs" 2>&1); then
	echo "$out"; exit 1
fi

# --dev only adds the demo backend here: the certificate is the one given.
"$work/scoregate" serve --dev \
	--ssl-cert-pem-file "$work/certs/cert.pem" --ssl-key-pem-file "$work/certs/key.pem" \
	--ca-file "$work/certs/ca.pem" --ssl-cname "$cname" \
	--listen 127.0.0.1:0 --metrics-listen '' --log-format json \
	>"$work/scoregate.out" 2>"$work/scoregate.log" &
sg_pid=$!

# Wait (bounded) for the address it logs, then for a 200 through the proxy.
addr="" code=""
deadline=$((SECONDS + ready_limit))
while [ $SECONDS -lt $deadline ]; do
	if ! kill -0 "$sg_pid" 2>/dev/null; then
		echo "scoregate exited before serving:"; cat "$work/scoregate.log"; exit 1
	fi
	if [ -z "$addr" ]; then
		addr=$(sed -n 's/.*"listen":"\(127\.0\.0\.1:[0-9]*\)".*/\1/p' "$work/scoregate.log" | head -n 1)
	fi
	if [ -n "$addr" ]; then
		port=${addr##*:}
		code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 \
			--cacert "$work/certs/ca.pem" --resolve "$cname:$port:127.0.0.1" \
			"https://$cname:$port/" || true)
		[ "$code" = 200 ] && break
	fi
	sleep 0.2
done
if [ "$code" != 200 ]; then
	echo "scoregate did not answer 200 within ${ready_limit}s (address ${addr:-not logged}, last status ${code:-none}):"
	cat "$work/scoregate.log"
	exit 1
fi

# --- the scan
echo "--- testssl against https://$cname:$port/ (127.0.0.1, SNI $cname)"
scan_started=$SECONDS
# --add-ca: trust the dev CA, so that the chain is judged like a real one.
# secure_renego comes out WARN: testssl checks it with a handshake without
# SNI, which scoregate refuses (--allow-missing-sni is off); its TLS 1.2
# ServerHello does carry renegotiation_info (TLS_extensions), i.e. RFC 5746.
# timeout signals testssl's whole process group (its openssl children too).
rc=0
TMPDIR="$work" timeout "$scan_limit" testssl \
	--quiet --color 0 --warnings batch \
	--ip 127.0.0.1 --nodns none \
	--connect-timeout 10 --openssl-timeout 10 \
	--add-ca "$work/certs/ca.pem" \
	--jsonfile "$work/testssl.json" \
	"https://$cname:$port" >"$work/testssl.txt" 2>&1 &
scan_pid=$!
wait "$scan_pid" || rc=$?
scan_pid=""
scanned=$((SECONDS - scan_started))

# testssl's status is the sum of its checks' problems (the JSON judges
# those); 124 is our timeout and 242-255 are testssl's own errors.
if [ "$rc" -eq 124 ] || [ "$rc" -ge 242 ]; then
	cat "$work/testssl.txt"
	echo "testssl failed (exit $rc$([ "$rc" -eq 124 ] && echo ": over ${scan_limit}s"))"
	exit 1
fi

verdict=0
python3 - "$work/testssl.json" <<'PY' || verdict=$?
import json, sys
from collections import defaultdict

# Findings that describe the throwaway certificate, not scoregate's TLS.
# Matched on id and exact text, so a changed check is judged again.
WAIVED = {
    ("cert_revocation", "Neither CRL nor OCSP URI provided"):
        "`scoregate cert dev` certificates carry no CRL or OCSP URI "
        "(public-CA and ACME certificates do); not a server setting",
}
FAILING = ("FATAL", "CRITICAL", "HIGH")
ORDER = FAILING + ("MEDIUM", "LOW", "WARN", "INFO", "OK")
OLD = ("SSLv2", "SSLv3", "TLS1", "TLS1_1")

with open(sys.argv[1]) as f:
    findings = json.load(f)  # an incomplete file (a killed scan) fails here

by_sev = defaultdict(list)
waived, problems = [], []
for x in findings:
    key, sev, text = x.get("id", "?"), x.get("severity", "?"), x.get("finding", "")
    if sev in FAILING and (key, text) in WAIVED:
        waived.append(f"{key} ({sev}: {text}): {WAIVED[key, text]}")
        continue
    by_sev[sev].append((key, text))
    if sev in FAILING:
        problems.append(f"{sev} {key}: {text}")

protocols = {x["id"]: x.get("finding", "") for x in findings if x.get("id") in OLD + ("TLS1_2", "TLS1_3")}
for p in OLD:
    if p not in protocols:
        problems.append(f"{p}: not tested")
    elif not protocols[p].startswith("not offered"):
        problems.append(f"{p} offered: {protocols[p]}")

print("protocols: " + ", ".join(f"{p} {v}" for p, v in protocols.items()))
print(f"{'severity':<9} {'count':>5}  findings")
for sev in ORDER + tuple(s for s in by_sev if s not in ORDER):
    items = by_sev.get(sev, [])
    if sev in ("INFO", "OK"):
        detail = ""
    else:
        detail = "; ".join(f"{k} ({t})" if t else k for k, t in items)
    print(f"{sev:<9} {len(items):>5}  {detail}")
for w in waived:
    print(f"waived    {1:>5}  {w}")
if problems:
    print("FAIL:\n  " + "\n  ".join(problems))
    sys.exit(1)
PY

echo "time: ${installed}s install, ${scanned}s scan, $((SECONDS - started))s in all"
if [ "$verdict" -ne 0 ]; then
	echo "--- testssl output"
	cat "$work/testssl.txt"
	exit 1
fi
echo "testssl passed"
