#!/usr/bin/env bash
# bridge-throughput.sh - how fast bridge mode carries a host's traffic,
# next to host mode and the bare veth, measured in one run.
#
#   scripts/bridge-throughput.sh [MODE...]     (as root)
#   scripts/bridge-throughput.sh -h            (this text)
#
# For each MODE it builds fresh network namespaces (names carry its pid),
# runs iperf3 (one TCP stream, $DUR s, $REPS times) from the host H
# (10.9.0.1) to the peer P (10.9.0.2), and removes everything again:
#
#   veth    [H] wh ==== wp [P]                     no IPsec
#   host    [H ipsecd] wh ==== wp [P ipsecd]       ipsecd in each, host mode
#   bridge  [H] wh ==== ba [BR ipsecd -b ba -b bb] bb ==== wp [P ipsecd]
#           H runs nothing; the bridge's SAs use H's address
#
# The SAs are transport mode between 10.9.0.1 and 10.9.0.2, AES-128-GCM,
# keyed with keymgr (GETSPI and UPDATE); the flows load through ipsecctl.
# Every veth keeps its offloads, MTU 1500.
#
# Output: a line per run, then the median of each mode; the CPU column is
# the ipsecd processes' utime+stime over the runs, in % of one core.
#
# Environment: DUR=5, REPS=3; IPSECD, IPSECCTL, KEYMGR (default
# target/release: cargo build --release --locked --bin ipsecd --bin
# ipsecctl --bin keymgr).
#
# Needs root, iproute2, iperf3 and /usr/bin/python3. On exit, error or
# Ctrl-C everything it started is stopped by pid and its namespaces go.
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
DUR=${DUR:-5}
REPS=${REPS:-3}
IPSECD=${IPSECD:-$here/target/release/ipsecd}
IPSECCTL=${IPSECCTL:-$here/target/release/ipsecctl}
KEYMGR=${KEYMGR:-$here/target/release/keymgr}
PY=/usr/bin/python3

die() { echo "bridge-throughput.sh: $*" >&2; exit 1; }
usage() { awk 'NR == 1 { next } /^#/ { sub(/^# ?/, ""); print; next } { exit }' "$0"; }

all_modes=(veth host bridge)
modes=()
for arg in "$@"; do
  case $arg in
    -h | --help) usage; exit 0 ;;
    veth | host | bridge) modes+=("$arg") ;;
    *) die "unknown mode '$arg' (modes: ${all_modes[*]})" ;;
  esac
done
((${#modes[@]})) || modes=("${all_modes[@]}")
[[ $DUR =~ ^[1-9][0-9]*$ ]] || die "DUR must be a whole number of seconds"
[[ $REPS =~ ^[1-9][0-9]*$ ]] || die "REPS must be a positive whole number"
[[ $(id -u) == 0 ]] || die "run it as root: it creates network namespaces"
for b in "$IPSECD" "$IPSECCTL" "$KEYMGR"; do
  [[ -x $b ]] || die "$b missing; build with cargo build --release --locked --bin ipsecd --bin ipsecctl --bin keymgr"
done
for tool in ip iperf3 "$PY"; do
  command -v "$tool" >/dev/null 2>&1 || die "missing: $tool"
done

tag=bt$$
H=$tag-h BR=$tag-br P=$tag-p
HOST=10.9.0.1 PEER=10.9.0.2
HZ=$(getconf CLK_TCK)
WORK=$(mktemp -d /tmp/bridge-throughput.XXXXXX)
started=()

stop() {
  local p
  for p in "$@"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "$@"; do
    for _ in $(seq 30); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$p" 2>/dev/null || true
    wait "$p" 2>/dev/null || true
  done
}

net_down() {
  local ns pids
  for ns in "$H" "$BR" "$P"; do
    pids=$(ip netns pids "$ns" 2>/dev/null || true)
    # shellcheck disable=SC2086
    [[ -z $pids ]] || stop $pids
    ip netns del "$ns" 2>/dev/null || true
  done
}

cleanup() {
  local rc=$?
  set +e
  trap - EXIT INT TERM HUP
  stop "${started[@]}"
  started=()
  net_down
  rm -rf "$WORK"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

ns() { local n=$1; shift; ip netns exec "$n" "$@"; }

# link NS_A IF_A ADDR_A NS_B IF_B ADDR_B (an empty address: none)
link() {
  ip link add "$2" netns "$1" type veth peer name "$5" netns "$4"
  [[ -z $3 ]] || ns "$1" ip addr add "$3/24" dev "$2"
  [[ -z $6 ]] || ns "$4" ip addr add "$6/24" dev "$5"
  ns "$1" ip link set "$2" up
  ns "$4" ip link set "$5" up
}

# daemon NS [ARGS...]: ipsecd in NS, in the foreground; its socket is
# $WORK/NS.sock and its pid joins those charged with CPU.
daemon() {
  local n=$1 socket=$WORK/$1.sock
  shift
  # Not through ns(): a backgrounded function would be a subshell, and
  # its pid not ipsecd's. ip netns exec execs, so $! is ipsecd.
  ip netns exec "$n" "$IPSECD" -d -s "$socket" "$@" >"$WORK/$n.log" 2>&1 &
  started+=($!)
  daemons+=($!)
  for _ in $(seq 100); do [[ -S $socket ]] && break; sleep 0.05; done
  [[ -S $socket ]] || die "ipsecd in $n did not start: $(cat "$WORK/$n.log")"
}

# key NS SOCKET ME THEM: the flow, and the GCM SA pair from ME's side.
key() {
  local n=$1 socket=$2 me=$3 them=$4 conf=$WORK/$1.conf
  echo "flow esp from $me to $them peer $them" >"$conf"
  chmod 600 "$conf"
  IPSECD_SOCKET=$socket ns "$n" "$IPSECCTL" -f "$conf"
  local src dst spi key
  for spi in 0x1000 0x1001; do
    if [[ $spi == 0x1000 ]]; then src=$HOST dst=$PEER key=0x$(printf 'a1%.0s' {1..20}); else src=$PEER dst=$HOST key=0x$(printf 'b2%.0s' {1..20}); fi
    ns "$n" "$KEYMGR" -s "$socket" add --src "$src" --dst "$dst" --spi "$spi" \
      --enc aes-gcm --enckey "$key" >/dev/null
  done
}

# cpu PID...: their utime+stime, in clock ticks.
cpu() {
  local p t=0 s
  for p in "$@"; do
    s=$(cat "/proc/$p/stat" 2>/dev/null) || continue
    s=${s##*) }
    read -r -a f <<<"$s"
    t=$((t + f[11] + f[12]))
  done
  echo "$t"
}

results=()
for mode in "${modes[@]}"; do
  started=()
  for n in "$H" "$BR" "$P"; do ip netns add "$n"; ns "$n" ip link set lo up; done
  daemons=()
  case $mode in
    veth) link "$H" wh "$HOST" "$P" wp "$PEER" ;;
    host)
      link "$H" wh "$HOST" "$P" wp "$PEER"
      daemon "$H"
      daemon "$P"
      key "$H" "$WORK/$H.sock" "$HOST" "$PEER"
      key "$P" "$WORK/$P.sock" "$PEER" "$HOST"
      ;;
    bridge)
      link "$H" wh "$HOST" "$BR" ba ""
      link "$BR" bb "" "$P" wp "$PEER"
      daemon "$BR" -b ba -b bb
      daemon "$P"
      key "$BR" "$WORK/$BR.sock" "$HOST" "$PEER"
      key "$P" "$WORK/$P.sock" "$PEER" "$HOST"
      ;;
  esac
  for _ in $(seq 50); do ns "$H" ping -c1 -W1 "$PEER" >/dev/null 2>&1 && break; done
  ip netns exec "$P" iperf3 -s -B "$PEER" >/dev/null 2>&1 &
  server=$!
  started+=("$server")
  sleep 0.5
  runs=()
  for rep in $(seq "$REPS"); do
    c0=$(cpu "${daemons[@]:-}")
    json=$(ns "$H" timeout $((DUR + 10)) iperf3 -c "$PEER" -B "$HOST" -t "$DUR" -J || true)
    c1=$(cpu "${daemons[@]:-}")
    gbit=$("$PY" -c 'import json,sys; print("%.3f" % (json.load(sys.stdin)["end"]["sum_received"]["bits_per_second"]/1e9))' <<<"$json" 2>/dev/null || echo NaN)
    pct=$(( (c1 - c0) * 100 / HZ / DUR ))
    echo "[$(date +%T)] $mode tcp1 #$rep $gbit Gbit/s, ipsecd CPU ${pct}%"
    runs+=("$gbit")
  done
  median=$(printf '%s\n' "${runs[@]}" | sort -g | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}')
  results+=("$mode $median ${runs[*]}")
  stop "${started[@]}"
  started=()
  net_down
done

echo
echo "DUR=$DUR s, REPS=$REPS, one TCP stream, medians:"
printf '%-8s %s Gbit/s   (%s)\n' mode median runs
for r in "${results[@]}"; do
  read -r m med rest <<<"$r"
  printf '%-8s %s Gbit/s   (%s)\n' "$m" "$med" "$rest"
done
