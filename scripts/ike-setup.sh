#!/usr/bin/env bash
# ike-setup.sh - how fast one iked brings up tunnels with another, and
# one strongSwan charon with another, for comparison.
#
#   scripts/ike-setup.sh [children|strongswan] [N]
#                                (as root; N tunnels, default 100)
#   scripts/ike-setup.sh -h      (this text)
#
# Two gateways in fresh network namespaces (names carry the pid), joined
# by a veth pair, each running ipsecd and iked:
#
#   [a ipsecd iked] 192.0.2.1 wa ==== wb 192.0.2.2 [b ipsecd iked]
#
# Each run loads B's passive rules, then A's active ones, through
# ipsecctl -i, and times from A's load until A's ipsecd holds every
# tunnel's two SAs (each rule its own IKE SA: IKE_SA_INIT, IKE_AUTH,
# GETSPI, UPDATE and ADD on both sides). Rule i joins 10.1.x.y to
# 10.2.x.y, both /32, with a shared key, identities of its own (so that
# it is an IKE SA of its own) and iked's default offer (AES-256-GCM,
# Curve25519 first). The gateways are torn down after each run.
#
# With children, the rules have no identities of their own: all share
# one IKE SA, and each adds its Child SA under it with CREATE_CHILD_SA,
# one exchange at a time.
#
# With strongswan, the same with charon (kernel-libipsec, as the tests
# run it) at both ends instead of ipsecd and iked: N connections of one
# child each, loaded with swanctl, A's started as they load; timed until
# A's charon lists N installed Child SAs. Each connection has identities
# of its own (charon picks a connection by identity, not by selector),
# and charon is set to iked's flood policy: cookies past 32 half-open
# IKE SAs, no cap per peer address.
#
# Output: per run, the time for one tunnel and for N, then the medians
# and N tunnels per second. Past 32 half-open IKE SAs the responder
# asks for cookies, as it would under a flood: that costs the later
# tunnels a round trip, and is part of what is measured.
#
# Environment: REPS=3; IPSECD, IPSECCTL, IKED (default target/release:
# cargo build --release --locked --bin ipsecd --bin ipsecctl --bin iked);
# KEEP=1 keeps the work directory (configurations and logs).
#
# Needs root and iproute2. On exit, error or Ctrl-C everything it
# started is stopped by pid and its namespaces go.
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
REPS=${REPS:-3}
IPSECD=${IPSECD:-$here/target/release/ipsecd}
IPSECCTL=${IPSECCTL:-$here/target/release/ipsecctl}
IKED=${IKED:-$here/target/release/iked}

die() { echo "ike-setup.sh: $*" >&2; exit 1; }
usage() { awk 'NR == 1 { next } /^#/ { sub(/^# ?/, ""); print; next } { exit }' "$0"; }

N=100
MODE=iked
case ${1:-} in
  -h | --help) usage; exit 0 ;;
  strongswan) MODE=strongswan; shift ;;
  children) MODE=children; shift ;;
esac
case ${1:-} in
  '') ;;
  *) N=$1 ;;
esac
[[ $N =~ ^[1-9][0-9]*$ ]] && ((N <= 65536)) || die "N must be a whole number from 1 to 65536"
[[ $REPS =~ ^[1-9][0-9]*$ ]] || die "REPS must be a positive whole number"
[[ $(id -u) == 0 ]] || die "run it as root: it creates network namespaces"
CHARON=/usr/lib/ipsec/charon
if [[ $MODE != strongswan ]]; then
  for b in "$IPSECD" "$IPSECCTL" "$IKED"; do
    [[ -x $b ]] || die "$b missing; build with cargo build --release --locked --bin ipsecd --bin ipsecctl --bin iked"
  done
else
  [[ -x $CHARON ]] && command -v swanctl >/dev/null 2>&1 ||
    die "no charon or swanctl (apt install strongswan-charon strongswan-swanctl libcharon-extra-plugins)"
fi
command -v ip >/dev/null 2>&1 || die "missing: ip (iproute2)"

tag=is$$
A=$tag-a B=$tag-b
WORK=$(mktemp -d /tmp/ike-setup.XXXXXX)
chmod 700 "$WORK"
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

down() {
  # iked first: it goes when its ipsecd does, but should say goodbye.
  ((${#started[@]})) && stop "${started[@]}"
  started=()
  local ns
  for ns in "$A" "$B"; do ip netns del "$ns" 2>/dev/null || true; done
}

cleanup() {
  local status=$?
  trap - EXIT INT TERM HUP
  set +e
  down
  if [[ -n ${KEEP:-} ]]; then echo "ike-setup.sh: kept $WORK" >&2; else rm -rf "$WORK"; fi
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

ns() { ip netns exec "$@"; }

# Waits up to 10 s for a path to exist.
await_path() {
  local i
  for i in $(seq 500); do [[ -e $1 ]] && return 0; sleep 0.02; done
  die "timed out waiting for $1"
}

# Rules for n tunnels, as seen from side $1 (a or b).
rules() {
  local side=$1 n=$2 i x y ids=
  for ((i = 0; i < n; i++)); do
    x=$((i / 256)) y=$((i % 256))
    if [[ $side == a ]]; then
      [[ $MODE == children ]] || ids="srcid c$i.a.example dstid c$i.b.example"
      echo "ike active esp from 10.1.$x.$y to 10.2.$x.$y local 192.0.2.1 peer 192.0.2.2 $ids psk \"setup-rate\""
    else
      [[ $MODE == children ]] || ids="srcid c$i.b.example dstid c$i.a.example"
      echo "ike passive esp from 10.2.$x.$y to 10.1.$x.$y local 192.0.2.2 peer 192.0.2.1 $ids psk \"setup-rate\""
    fi
  done
}

# The two namespaces and the wire between them.
wire() {
  ip netns add "$A"
  ip netns add "$B"
  ip link add wa netns "$A" type veth peer name wb netns "$B"
  ns "$A" ip addr add 192.0.2.1/24 dev wa
  ns "$B" ip addr add 192.0.2.2/24 dev wb
  local n
  for n in "$A" "$B"; do
    ns "$n" ip link set lo up
  done
  ns "$A" ip link set wa up
  ns "$B" ip link set wb up
  # Each end knows the other's MAC before the clock starts: a burst of
  # first datagrams would otherwise queue behind ARP, and some be lost.
  ns "$A" ip neigh replace 192.0.2.2 lladdr "$(mac "$B" wb)" dev wa
  ns "$B" ip neigh replace 192.0.2.1 lladdr "$(mac "$A" wa)" dev wb
}

mac() { ns "$1" cat "/sys/class/net/$2/address"; }

up_iked() {
  wire
  local side name
  for side in a b; do
    name=$tag-$side
    rm -f "$WORK/$side.sock" "$WORK/$side-iked.sock"
    # Not through ns(): a backgrounded function is a subshell, whose pid
    # is not the daemon's (killing it left the daemon running). ip netns
    # exec execs, so $! is the daemon.
    ip netns exec "$name" "$IPSECD" -d -s "$WORK/$side.sock" >"$WORK/$side-ipsecd.log" 2>&1 &
    started+=($!)
    await_path "$WORK/$side.sock"
    ip netns exec "$name" "$IKED" -d -s "$WORK/$side-iked.sock" -S "$WORK/$side.sock" \
      >"$WORK/$side-iked.log" 2>&1 &
    started+=($!)
    await_path "$WORK/$side-iked.sock"
  done
}

# charon in each namespace, with a private /run (its pid file's place is
# fixed) and its own strongswan.conf.
up_strongswan() {
  wire
  local side name dir i
  # kernel-libipsec routes a Child SA's traffic from a local address of
  # its selector: every tunnel's inner address is on lo.
  for ((i = 0; i < N; i++)); do
    echo "addr add 10.1.$((i / 256)).$((i % 256))/32 dev lo"
  done | ns "$A" ip -batch -
  for ((i = 0; i < N; i++)); do
    echo "addr add 10.2.$((i / 256)).$((i % 256))/32 dev lo"
  done | ns "$B" ip -batch -
  for side in a b; do
    name=$tag-$side dir=$WORK/charon-$side
    rm -rf "$dir"
    mkdir -p "$dir/run"
    cat >"$dir/strongswan.conf" <<CONF
charon {
  load_modular = no
  load = random nonce openssl kdf gcm aes sha2 hmac pem pkcs1 x509 pubkey kernel-libipsec kernel-netlink socket-default vici
  install_virtual_ip = no
  # As iked: cookies past 32 half-open IKE SAs, no cap per peer address.
  cookie_threshold = 32
  block_threshold = 1000000
  filelog { log { path = $dir/charon.log
    flush_line = yes
    default = 1 } }
  plugins { vici { socket = unix://$dir/charon.vici } }
}
CONF
    rm -f "$dir/charon.vici"
    # ip netns exec, env, unshare and sh all exec: $! is charon.
    ip netns exec "$name" env STRONGSWAN_CONF="$dir/strongswan.conf" \
      unshare -m --propagation private sh -c "mount --bind $dir/run /run && exec $CHARON" \
      >"$WORK/$side-charon.log" 2>&1 &
    started+=($!)
    await_path "$dir/charon.vici"
  done
}

up() { if [[ $MODE == strongswan ]]; then up_strongswan; else up_iked; fi; }

# swanctl.conf for n tunnels, as seen from side $1 (a or b).
connections() {
  local side=$1 n=$2 i x y me peer mine theirs start other
  if [[ $side == a ]]; then
    me=192.0.2.1 peer=192.0.2.2 mine=10.1 theirs=10.2 start=start other=b
  else
    me=192.0.2.2 peer=192.0.2.1 mine=10.2 theirs=10.1 start=none other=a
  fi
  echo "connections {"
  for ((i = 0; i < n; i++)); do
    x=$((i / 256)) y=$((i % 256))
    echo " c$i { version = 2
  local_addrs = $me
  remote_addrs = $peer
  proposals = aes256gcm16-prfsha256-x25519
  mobike = no
  local { auth = psk
   id = c$i.$side.example }
  remote { auth = psk
   id = c$i.$other.example }
  children { net { mode = tunnel
   local_ts = $mine.$x.$y/32
   remote_ts = $theirs.$x.$y/32
   esp_proposals = aes256gcm16
   start_action = $start } } }"
  done
  echo "}"
  echo "secrets { ike-any { secret = \"setup-rate\" } }"
}

run_strongswan() {
  local n=$1 side
  for side in a b; do
    connections "$side" "$n" >"$WORK/charon-$side/swanctl.conf"
  done
  ns "$B" swanctl --load-all --noprompt --uri "unix://$WORK/charon-b/charon.vici" \
    --file "$WORK/charon-b/swanctl.conf" >"$WORK/b-swanctl.log" 2>&1
  local t0 t1 have
  t0=$(date +%s.%N)
  ns "$A" swanctl --load-all --noprompt --uri "unix://$WORK/charon-a/charon.vici" \
    --file "$WORK/charon-a/swanctl.conf" >"$WORK/a-swanctl.log" 2>&1
  for _ in $(seq 6000); do
    have=$(ns "$A" swanctl --list-sas --uri "unix://$WORK/charon-a/charon.vici" 2>/dev/null | grep -c INSTALLED || true)
    ((have >= n)) && break
    sleep 0.01
  done
  t1=$(date +%s.%N)
  if ((have < n)); then
    grep -v "^plugin '" "$WORK/a-swanctl.log" >&2
    tail -n 20 "$WORK/charon-a/charon.log" >&2
    die "only $have of $n Child SAs after 60 s"
  fi
  awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.4f\n", b - a }'
}

run() { if [[ $MODE == strongswan ]]; then run_strongswan "$@"; else run_iked "$@"; fi; }

# Loads n tunnels and prints the seconds until A holds all their SAs.
run_iked() {
  local n=$1 side
  for side in a b; do
    rules "$side" "$n" >"$WORK/$side.conf"
    chmod 600 "$WORK/$side.conf"
  done
  ns "$B" "$IPSECCTL" -S "$WORK/b.sock" -i "$WORK/b-iked.sock" -f "$WORK/b.conf"
  local t0 t1 have
  t0=$(date +%s.%N)
  ns "$A" "$IPSECCTL" -S "$WORK/a.sock" -i "$WORK/a-iked.sock" -f "$WORK/a.conf"
  for _ in $(seq 6000); do
    have=$(ns "$A" "$IPSECCTL" -S "$WORK/a.sock" -s sa | wc -l)
    ((have >= 2 * n)) && break
    sleep 0.01
  done
  t1=$(date +%s.%N)
  ((have >= 2 * n)) || die "only $have of $((2 * n)) SAs after 60 s; logs in $WORK"
  awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.4f\n", b - a }'
}

median() { sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

ones=() alls=()
for rep in $(seq "$REPS"); do
  up
  one=$(run 1)
  down
  up
  all=$(run "$N")
  down
  printf 'run %d: one tunnel %.3f s; %d tunnels %.3f s\n' "$rep" "$one" "$N" "$all"
  ones+=("$one") alls+=("$all")
done
one=$(printf '%s\n' "${ones[@]}" | median)
all=$(printf '%s\n' "${alls[@]}" | median)
awk -v one="$one" -v n="$N" -v all="$all" 'BEGIN {
  printf "median: one tunnel in %.0f ms; %d tunnels in %.3f s, %.0f tunnels/s\n", one * 1000, n, all, n / all
}'
