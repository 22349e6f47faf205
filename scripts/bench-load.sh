#!/usr/bin/env bash
# Times loading manual SAs into a fresh ipsecd with `ipsecctl -f`, end to
# end (parsing, PF_KEY over the control socket, the daemon's tables), and
# reads the daemon's resident memory afterwards.
#
#   scripts/bench-load.sh [SAS...]      default: 10000 100000
#
# Each statement is an SA pair (spi OUT:IN), so SAS/2 statements.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet --bin ipsecctl --bin ipsecd
dir=$(mktemp -d)
pid=""
cleanup() { [[ -n $pid ]] && kill "$pid" 2>/dev/null; rm -rf "$dir"; }
trap cleanup EXIT
key32=0x$(printf '5a%.0s' {1..32})
key16=0x$(printf 'c3%.0s' {1..16})
for sas in "${@:-10000 100000}"; do
  for n in $sas; do
    conf=$dir/sas-$n.conf
    awk -v n=$((n / 2)) -v a="$key32" -v e="$key16" 'BEGIN {
      for (i = 0; i < n; i++)
        printf "esp from 10.%d.%d.1 to 10.%d.%d.2 spi 0x%x:0x%x authkey %s:%s enckey %s:%s\n",
          int(i / 256) % 256, i % 256, int(i / 256) % 256, i % 256, 4096 + 2 * i, 4097 + 2 * i, a, a, e, e
    }' >"$conf"
    chmod 600 "$conf"
    socket=$dir/ipsecd-$n.sock
    # In a namespace of its own: the daemon makes enc0 and routes.
    unshare --net target/release/ipsecd -d -s "$socket" 2>/dev/null &
    pid=$!
    for _ in $(seq 100); do [[ -S $socket ]] && break; sleep 0.05; done
    start=$(date +%s.%N)
    IPSECD_SOCKET=$socket target/release/ipsecctl -f "$conf"
    end=$(date +%s.%N)
    rss=$(awk '/VmRSS/ {print $2}' "/proc/$pid/status")
    count=$(IPSECD_SOCKET=$socket target/release/ipsecctl -s sa | wc -l)
    awk -v n="$n" -v c="$count" -v s="$start" -v e="$end" -v r="$rss" 'BEGIN {
      printf "%7d SAs loaded (%d shown) in %.2f s: %.0f SAs/s; ipsecd resident %.1f MiB\n",
        n, c, e - s, n / (e - s), r / 1024
    }'
    kill "$pid"; wait "$pid" 2>/dev/null || true; pid=""
  done
done
