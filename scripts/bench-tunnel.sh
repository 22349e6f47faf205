#!/usr/bin/env bash
# bench-tunnel.sh - ipsecd as the tunnel of scripts/throughput.sh.
#
#   scripts/bench-tunnel.sh MODE [SIDE]
#
# MODE: the SA pair to key
#   cbc     AES-128-CBC + HMAC-SHA2-256, manual SAs through ipsecctl -f
#   gcm     AES-128-GCM, keyed by keymgr (GETSPI + UPDATE, as isakmpd does;
#           ipsec.conf refuses GCM with static keys)
#   gcm256  AES-256-GCM, keymgr
#   chacha  ChaCha20-Poly1305, keymgr
# Any MODE with -udp behind it (gcm-udp, cbc-udp, ...) keys the same
# algorithms with keymgr as ESP in UDP (RFC 3948, port 4500 both ways),
# as a pair of gateways keyed after NAT detection would send it.
# SIDE: a or b; by default taken from $NS (ipsbench-a / ipsbench-b).
#
# The harness runs this in each namespace with $IFACE set and wants a TUN
# named $IFACE that stays in the foreground; it then puts 10.78.0.x/24 on
# it. So: start a loader in the background that waits for ipsecd's control
# socket and loads the flow (ipsecctl) and the SA pair (ipsecctl or keymgr),
# then `exec ipsecd -d -e $IFACE`, so that the pid the harness holds (and
# charges CPU to, and SIGTERMs at the end) is ipsecd's own.
#
#   [ns A] 10.78.0.1 tun --ipsecd-- 10.77.0.1 veth ==== veth 10.77.0.2 --ipsecd-- tun 10.78.0.2 [ns B]
#   SPI 0x1000 carries A to B, 0x1001 B to A; tunnel mode between the veth addresses.
#
# The keys are fixed: this is a benchmark, nothing here is secret.
#
# Build first (the harness gives the command a few seconds to make the TUN):
#   cargo build --release --locked --bin ipsecd --bin ipsecctl --bin keymgr
# Then, from the workspace: scripts/throughput.sh ipsecd-gcm ipsecd-cbc
#
# Knobs: IPSECD, IPSECCTL, KEYMGR (binaries; default target/release),
# IPSECD_FLAGS (extra ipsecd flags, e.g. -v), BENCH_RUN (socket directory,
# default /run/ipsecd-bench).
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
mode=${1:?usage: bench-tunnel.sh cbc|gcm|gcm256|chacha[-udp] [a|b]}
encap=()
if [[ $mode == *-udp ]]; then
  mode=${mode%-udp}
  encap=(--udpencap 4500)
fi
side=${2:-}
if [[ -z $side ]]; then
  case ${NS:-} in
    *-a) side=a ;;
    *-b) side=b ;;
    *) echo "bench-tunnel.sh: give the side (a or b); \$NS is '${NS:-}'" >&2; exit 2 ;;
  esac
fi
ifname=${IFACE:?IFACE must name the TUN to create}
IPSECD=${IPSECD:-$here/target/release/ipsecd}
IPSECCTL=${IPSECCTL:-$here/target/release/ipsecctl}
KEYMGR=${KEYMGR:-$here/target/release/keymgr}
run=${BENCH_RUN:-/run/ipsecd-bench}
for b in "$IPSECD" "$IPSECCTL" "$KEYMGR"; do
  [[ -x $b ]] || { echo "bench-tunnel.sh: $b missing; build with cargo build --release --locked --bin ipsecd --bin ipsecctl --bin keymgr" >&2; exit 1; }
done

# Outer (veth) and inner (TUN) addresses, as the harness sets them.
if [[ $side == a ]]; then
  me=10.77.0.1 peer=10.77.0.2 inner_me=10.78.0.1 inner_peer=10.78.0.2
  spi_out=0x1000 spi_in=0x1001
else
  me=10.77.0.2 peer=10.77.0.1 inner_me=10.78.0.2 inner_peer=10.78.0.1
  spi_out=0x1001 spi_in=0x1000
fi
# Per direction: the SA with SPI 0x1000 (A to B) and 0x1001 (B to A).
key() { # key SPI BYTES: a fixed key of BYTES bytes for the SA
  local fill=b2 i s=
  [[ $1 == 0x1000 ]] && fill=a1
  for ((i = 0; i < $2; i++)); do s+=$fill; done
  echo "0x$s"
}

mkdir -p "$run"
chmod 700 "$run"
socket=$run/$ifname.sock
rm -f "$socket"

load() {
  local i
  for i in $(seq 1 100); do [[ -S $socket ]] && break; sleep 0.05; done
  [[ -S $socket ]] || { echo "bench-tunnel.sh: no control socket at $socket" >&2; return 1; }
  local conf
  conf=$(mktemp "$run/$ifname.XXXXXX.conf") # mktemp makes it 0600, as ipsecctl wants
  echo "flow esp from $inner_me to $inner_peer peer $peer" >"$conf"
  case $mode in
    cbc) if ((${#encap[@]} == 0)); then
      echo "esp tunnel from $me to $peer spi $spi_out:$spi_in auth hmac-sha2-256 enc aes" \
        "authkey $(key "$spi_out" 32):$(key "$spi_in" 32)" \
        "enckey $(key "$spi_out" 16):$(key "$spi_in" 16)" >>"$conf"
      fi ;;
    gcm | gcm256 | chacha) ;;
    *) echo "bench-tunnel.sh: unknown mode $mode" >&2; rm -f "$conf"; return 1 ;;
  esac
  IPSECD_SOCKET=$socket "$IPSECCTL" -f "$conf" || { rm -f "$conf"; return 1; }
  rm -f "$conf"
  local enc bytes
  case $mode in
    gcm) enc=aes-gcm bytes=20 ;;
    gcm256) enc=aes-gcm bytes=36 ;;
    chacha) enc=chacha20-poly1305 bytes=36 ;;
    cbc) if ((${#encap[@]})); then enc=aes bytes=16; else enc=; fi ;;
    *) enc= ;;
  esac
  if [[ -n $enc ]]; then
    local spi auth
    for spi in "$spi_out" "$spi_in"; do
      auth=()
      [[ $mode == cbc ]] && auth=(--auth hmac-sha2-256 --authkey "$(key "$spi" 32)")
      if [[ $spi == "$spi_out" ]]; then set -- "$me" "$peer"; else set -- "$peer" "$me"; fi
      "$KEYMGR" -s "$socket" add --src "$1" --dst "$2" --spi "$spi" --tunnel \
        --enc "$enc" --enckey "$(key "$spi" "$bytes")" "${auth[@]}" "${encap[@]}" || return 1
    done
  fi
  echo "bench-tunnel.sh: $mode SAs and flow loaded on side $side"
  IPSECD_SOCKET=$socket "$IPSECCTL" -s all || true
  # What the data path ends up with once the harness has set the TUN up:
  # kept in $run/$ifname.log, as the harness deletes its own logs.
  for i in $(seq 1 50); do ip -4 addr show dev "$ifname" | grep -q inet && break; sleep 0.1; done
  sleep 0.5
  {
    echo "$(date +%T) $mode side $side:"
    ip -o link show dev "$ifname"
    ip -4 -o addr show dev "$ifname"
    ip route show table 1950
    ip route get "$inner_peer"
  } >"$run/$ifname.log" 2>&1
}

# Detached (the subshell exits at once), so ipsecd has no child to reap.
# A loader that fails stops the daemon: a tunnel without SAs would send
# the harness's traffic in the clear.
(load || kill -TERM $$ &)
# shellcheck disable=SC2086
exec "$IPSECD" -d ${IPSECD_FLAGS:-} -s "$socket" -e "$ifname"
