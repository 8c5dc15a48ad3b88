#!/usr/bin/env bash
# Measures the gateway's memory and CPU footprint, which deploy/base/deployment.yaml's resources
# are sized from. Loopback only: runs `identity-gateway --simulate` (gateway + in-process
# simulated org, so an upper bound for the gateway alone) and `identity-gateway simulate`, reads
# RSS from /proc idle and under a grpcurl loop, and CPU time from /proc/PID/stat.
#
#   cargo build --release && deploy/measure-footprint.sh [CALLS_PER_WORKER] [WORKERS]
set -euo pipefail
cd "$(dirname "$0")/.."
BIN="${CARGO_TARGET_DIR:-target}/release/identity-gateway"
CALLS="${1:-150}"
WORKERS="${2:-4}"
GW_ADDR=127.0.0.1:${GW_PORT:-25051}
SIM_ADDR=127.0.0.1:${SIM_PORT:-25089}
TICKS=$(getconf CLK_TCK)

kib() { awk -v k="$1" '$1 == k":" { print $2 }' "/proc/$2/status"; }
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
report() { # label pid
    printf '%-34s VmRSS %6d KiB  VmHWM %6d KiB  threads %s  cpu %s s\n' "$1" \
        "$(kib VmRSS "$2")" "$(kib VmHWM "$2")" "$(kib Threads "$2")" \
        "$(awk -v t="$(cpu_ticks "$2")" -v h="$TICKS" 'BEGIN { printf "%.2f", t / h }')"
}

IDGW_LOG__FILTER=warn "$BIN" --simulate --listen "$GW_ADDR" >/dev/null 2>&1 &
GW_PID=$!
IDGW_LOG__FILTER=warn "$BIN" simulate --listen "$SIM_ADDR" --token measure-token >/dev/null 2>&1 &
SIM_PID=$!
trap 'kill "$GW_PID" "$SIM_PID" 2>/dev/null || true' EXIT
for _ in $(seq 50); do
    grpcurl -plaintext "$GW_ADDR" list >/dev/null 2>&1 && break
    sleep 0.2
done
sleep 3
report "gateway --simulate, idle" "$GW_PID"
report "simulate (simulator alone), idle" "$SIM_PID"

worker() {
    for i in $(seq "$CALLS"); do
        grpcurl -plaintext -d '{"pageSize":200}' "$GW_ADDR" identity.v1.UserService/ListUsers
        grpcurl -plaintext -d '{"namePrefix":"Eng"}' "$GW_ADDR" identity.v1.GroupService/ListGroups
        grpcurl -plaintext -d '{"profile":{"login":"load'"$1-$i"'@example.com","email":"load'"$1-$i"'@example.com","firstName":"Load","lastName":"Test"},"activate":false}' \
            "$GW_ADDR" identity.v1.UserService/CreateUser
    done >/dev/null 2>&1
}
start_ticks=$(cpu_ticks "$GW_PID")
start_ns=$(date +%s%N)
peak=0
for w in $(seq "$WORKERS"); do worker "$w" & done
while [ -n "$(jobs -rp | grep -vx -e "$GW_PID" -e "$SIM_PID")" ]; do
    rss=$(kib VmRSS "$GW_PID"); [ "$rss" -gt "$peak" ] && peak=$rss
    sleep 0.2
done
elapsed_ms=$(( ($(date +%s%N) - start_ns) / 1000000 ))
busy_ticks=$(( $(cpu_ticks "$GW_PID") - start_ticks ))
report "gateway --simulate, after load" "$GW_PID"
echo "load: $WORKERS workers x $CALLS x 3 RPCs (ListUsers 200/page, ListGroups, CreateUser) in ${elapsed_ms} ms"
echo "gateway peak VmRSS sampled under load: ${peak} KiB"
awk -v t="$busy_ticks" -v h="$TICKS" -v ms="$elapsed_ms" \
    'BEGIN { printf "gateway CPU under load: %.2f s over %.1f s wall = %.0f millicores average\n", t/h, ms/1000, (t/h)/(ms/1000)*1000 }'
