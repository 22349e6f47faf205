#!/usr/bin/env bash
# throughput.sh - how fast ipsecd carries traffic, next to the bare veth path
# and two userspace WireGuard implementations, measured on this machine.
#
#   scripts/throughput.sh [MODE...]            (as root)
#   scripts/throughput.sh -h                   (this text)
#
# For each MODE it builds two fresh network namespaces, tp<pid>-a and
# tp<pid>-b, joined by a veth pair (MTU 1500; with OFFLOADS=off, the
# default, TSO, GSO, GRO and UDP segmentation switched off with ethtool in
# every mode, so that each packet costs what it costs; with OFFLOADS=on
# left as a veth has them, as a NIC would: runs the tunnel hands over
# whole cross the veth whole), runs iperf3 from A to B, and removes
# everything again:
#
#   [tp<pid>-a] 10.78.0.1 tun --tunnel-- 10.77.0.1 veth ==== veth 10.77.0.2 --tunnel-- tun 10.78.0.2 [tp<pid>-b]
#
# MODE (default: all of them, in this order):
#   veth        no tunnel: iperf3 straight over the veth, the per-packet
#               ceiling of the machine
#   boringtun   boringtun-cli in each namespace ($BT_THREADS threads),
#               keyed with wg; needs $BORINGTUN, else skipped
#   wggo        wireguard-go in each namespace, keyed with wg; skipped when
#               $WGGO is not there
#   ipsecd-gcm  ipsecd with AES-128-GCM SAs (scripts/bench-tunnel.sh gcm)
#   ipsecd-cbc  ipsecd with AES-128-CBC + HMAC-SHA2-256 (bench-tunnel.sh cbc)
#   ipsecd-gcm-udp, ipsecd-cbc-udp
#               the same SAs as ESP in UDP (port 4500), as WireGuard's and
#               strongSwan's userspace tunnels always send
# The WireGuard TUNs get MTU $WG_MTU; ipsecd sets its own TUN's MTU.
# Before measuring a tunnel, A must get an answer to ping 10.78.0.2 within
# 10 s; if not, the mode is reported as failed and the next one runs.
#
# Tests, each run $REPS times; the table gives the median and every run:
#   tcp1    TCP, one stream, $DUR s          (Gbit/s received)
#   tcp4    TCP, four streams (-P 4)          (Gbit/s received)
#   udp64   UDP, 64-byte payload offered at $UDP_RATE
#           (packets per second that reached B: sent minus lost)
# Every iperf3 run is killed after DUR+10 s at the latest.
#
# CPU: the utime+stime (/proc/PID/stat) of the tunnel processes of both
# namespaces over each run, as a percentage of one core (200% = two cores
# busy), and for TCP as CPU seconds per Gbit carried, which is the same
# number as cores kept busy per Gbit/s: lower is cheaper.
#
# Output: a line per run as it finishes, then a table (mode, test, median,
# runs, tunnel CPU %, CPU s/Gbit); the raw runs go to $RESULTS as TSV, one
# row per run (value NaN when the run failed), plus a row with test "-" and
# value SKIPPED or FAILED, and the reason in the note, for each mode that
# could not be measured.
#
# Environment:
#   DUR=5            seconds per iperf3 run
#   REPS=3           runs per test
#   UDP_RATE=1G      offered rate of udp64 (iperf3 -b)
#   BORINGTUN=       absolute path of boringtun-cli (no default)
#   BT_THREADS=1     boringtun-cli --threads
#   WGGO=/usr/bin/wireguard-go
#   WG_MTU=1420      MTU of the WireGuard TUNs
#   OFFLOADS=off     off: TSO, GSO, GRO and UDP segmentation off on the
#                    veth; on: as they are
#   RESULTS=/tmp/throughput-<date>-<time>.tsv
#   KEEP=1           keep the work directory (iperf3 JSON, tunnel logs)
#   IPSECD, IPSECCTL, KEYMGR, IPSECD_FLAGS: passed to bench-tunnel.sh
#                    (binaries default to target/release; build them first:
#                    cargo build --release --locked --bin ipsecd --bin ipsecctl --bin keymgr)
#
# Example:
#   BORINGTUN=/tmp/boringtun/bin/boringtun-cli scripts/throughput.sh veth boringtun ipsecd-gcm ipsecd-cbc
#
# Needs root, iproute2 (ip, ss), iperf3, ethtool, ping, timeout and
# /usr/bin/python3; wg (wireguard-tools) for the WireGuard modes. Nothing
# leaves the two namespaces. On exit, error or Ctrl-C every process it
# started is stopped by pid and both namespaces are deleted. Numbers move
# from day to day: compare modes measured in the same run.
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
all_modes=(veth boringtun wggo ipsecd-gcm ipsecd-cbc ipsecd-gcm-udp ipsecd-cbc-udp)

DUR=${DUR:-5}
REPS=${REPS:-3}
UDP_RATE=${UDP_RATE:-1G}
BORINGTUN=${BORINGTUN:-}
BT_THREADS=${BT_THREADS:-1}
WGGO=${WGGO:-/usr/bin/wireguard-go}
WG_MTU=${WG_MTU:-1420}
OFFLOADS=${OFFLOADS:-off}
[[ $OFFLOADS == on || $OFFLOADS == off ]] || { echo "throughput.sh: OFFLOADS must be on or off" >&2; exit 2; }
RESULTS=${RESULTS:-/tmp/throughput-$(date +%Y%m%d-%H%M%S).tsv}
KEEP=${KEEP:-0}
PY=/usr/bin/python3

say() { echo "[$(date +%T)] $*"; }
die() { echo "throughput.sh: $*" >&2; exit 1; }
usage() { awk 'NR == 1 { next } /^#/ { sub(/^# ?/, ""); print; next } { exit }' "$0"; }

modes=()
for arg in "$@"; do
  case $arg in
    -h | --help) usage; exit 0 ;;
    veth | boringtun | wggo | ipsecd-gcm | ipsecd-cbc | ipsecd-gcm-udp | ipsecd-cbc-udp) modes+=("$arg") ;;
    *) echo "throughput.sh: unknown mode '$arg' (modes: ${all_modes[*]}; -h for help)" >&2; exit 2 ;;
  esac
done
((${#modes[@]})) || modes=("${all_modes[@]}")

[[ $DUR =~ ^[1-9][0-9]*$ ]] || die "DUR must be a whole number of seconds, not '$DUR'"
[[ $REPS =~ ^[1-9][0-9]*$ ]] || die "REPS must be a positive whole number, not '$REPS'"
[[ $BT_THREADS =~ ^[1-9][0-9]*$ ]] || die "BT_THREADS must be a positive whole number, not '$BT_THREADS'"
[[ $(id -u) == 0 ]] || die "run it as root: it creates network namespaces"
missing=()
for tool in ip ss iperf3 ethtool ping timeout; do
  command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
done
[[ -x $PY ]] || missing+=("$PY")
((${#missing[@]} == 0)) || die "missing: ${missing[*]} (Debian: apt-get install iproute2 iperf3 ethtool iputils-ping python3)"

# Names carry our pid, so that nothing of anyone else's is touched.
tag=tp$$
NS_A=$tag-a NS_B=$tag-b         # bench-tunnel.sh tells the sides apart by -a / -b
VETH_A=${tag}va VETH_B=${tag}vb
TUN_A=${tag}ta TUN_B=${tag}tb
OUT_A=10.77.0.1 OUT_B=10.77.0.2 # the veth: what bench-tunnel.sh keys its SAs to
IN_A=10.78.0.1 IN_B=10.78.0.2   # the TUNs
WG_PORT=51820
PORT=5201
HZ=$(getconf CLK_TCK)

WORK=$(mktemp -d /tmp/throughput.XXXXXX)
started=()  # every background process of ours that is not yet reaped
tunnel=()   # the tunnel processes of the current mode: CPU is charged to them
server=     # the iperf3 server of the current mode
ns_made=0   # the namespaces exist and are ours

# running PID: the process exists and is not a zombie.
running() {
  local s
  s=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
  s=${s##*) }
  [[ ${s:0:1} != Z ]]
}

forget() {
  local p q keep=()
  for q in "${started[@]}"; do
    for p in "$@"; do [[ $q == "$p" ]] && continue 2; done
    keep+=("$q")
  done
  started=("${keep[@]}")
  return 0
}

# stop PID...: SIGTERM, up to 3 s to go, then SIGKILL; reap, forget.
stop() {
  local p i left
  (($#)) || return 0
  for p in "$@"; do kill -TERM "$p" 2>/dev/null || true; done
  for i in $(seq 30); do
    left=0
    for p in "$@"; do if running "$p"; then left=1; fi; done
    ((left)) || break
    sleep 0.1
  done
  for p in "$@"; do
    if running "$p"; then kill -KILL "$p" 2>/dev/null || true; fi
    wait "$p" 2>/dev/null || true
  done
  forget "$@"
}

# Whatever still lives in our namespaces was started from here (a detached
# loader of bench-tunnel.sh, say): stop it by pid before deleting them.
net_down() {
  local ns pids
  ((ns_made)) || return 0
  for ns in "$NS_A" "$NS_B"; do
    pids=$(ip netns pids "$ns" 2>/dev/null || true)
    [[ -z $pids ]] || stop $pids
  done
  ip netns del "$NS_A" 2>/dev/null || true
  ip netns del "$NS_B" 2>/dev/null || true
  rm -f "/var/run/wireguard/$TUN_A.sock" "/var/run/wireguard/$TUN_B.sock"
  ns_made=0
}

cleanup() {
  local rc=$?
  set +e
  trap - EXIT INT TERM HUP
  if ((rc)) && [[ -s $RESULTS ]]; then
    echo "throughput.sh: stopping (status $rc); the runs so far are in $RESULTS" >&2
  fi
  stop "${started[@]}"
  net_down
  if [[ $KEEP == 1 ]]; then echo "work directory kept: $WORK" >&2; else rm -rf "$WORK"; fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

# The setup steps below run in this shell (never in $(...): the processes
# they start must stay our children) and say what went wrong in $why.
why=
# must CMD...: run it; on failure, $why names it with its last error line.
must() {
  "$@" 2>"$WORK/must.err" && return 0
  why="'$*' failed: $(tail -n 1 "$WORK/must.err")"
  return 1
}

net_up() {
  local ns veth addr
  for ns in "$NS_A" "$NS_B"; do
    [[ ! -e /var/run/netns/$ns ]] || { why="namespace $ns exists already"; return 1; }
  done
  must ip netns add "$NS_A" || return 1
  ns_made=1
  must ip netns add "$NS_B" || return 1
  must ip link add "$VETH_A" netns "$NS_A" type veth peer name "$VETH_B" netns "$NS_B" || return 1
  for ns in "$NS_A" "$NS_B"; do
    if [[ $ns == "$NS_A" ]]; then veth=$VETH_A addr=$OUT_A; else veth=$VETH_B addr=$OUT_B; fi
    must ip -n "$ns" link set lo up || return 1
    must ip -n "$ns" addr add "$addr/24" dev "$veth" || return 1
    must ip -n "$ns" link set "$veth" mtu 1500 up || return 1
    if [[ $OFFLOADS == off ]]; then
      must ip netns exec "$ns" ethtool -K "$veth" tso off gso off gro off tx-udp-segmentation off >/dev/null || return 1
    fi
  done
}

# within PID WHAT CMD...: up to 10 s for CMD to succeed while PID runs.
within() {
  local pid=$1 what=$2 i
  shift 2
  for i in $(seq 100); do
    "$@" >/dev/null 2>&1 && return 0
    running "$pid" || { why="the tunnel process exited before $what appeared"; return 1; }
    sleep 0.1
  done
  why="no $what after 10 s"
  return 1
}

# appear NS IFACE PID: the tunnel process made its TUN.
appear() { within "$3" "interface $2" ip -n "$1" link show dev "$2"; }

# uapi IFACE PID: a WireGuard implementation's control socket is there.
uapi() { within "$2" "/var/run/wireguard/$1.sock" test -S "/var/run/wireguard/$1.sock"; }

# tunnel_up MODE: the tunnel process in each namespace, keyed (WireGuard:
# here; ipsecd: by bench-tunnel.sh itself), addressed and up.
tunnel_up() {
  local mode=$1 side ns ifc addr peer_out peer_key pid
  if [[ $mode == boringtun || $mode == wggo ]]; then
    (umask 077 && wg genkey >"$WORK/a.key" && wg genkey >"$WORK/b.key" &&
      wg pubkey <"$WORK/a.key" >"$WORK/a.pub" && wg pubkey <"$WORK/b.key" >"$WORK/b.pub") ||
      { why="wg genkey/pubkey failed"; return 1; }
  fi
  for side in a b; do
    if [[ $side == a ]]; then
      ns=$NS_A ifc=$TUN_A addr=$IN_A peer_out=$OUT_B peer_key=$WORK/b.pub
    else
      ns=$NS_B ifc=$TUN_B addr=$IN_B peer_out=$OUT_A peer_key=$WORK/a.pub
    fi
    case $mode in
      boringtun)
        ip netns exec "$ns" env WG_LOG_LEVEL=error "$BORINGTUN" --foreground \
          --threads "$BT_THREADS" --disable-drop-privileges --log "$WORK/$ifc.wg.log" "$ifc" \
          >"$WORK/$ifc.log" 2>&1 &
        ;;
      wggo)
        ip netns exec "$ns" env WG_I_PREFER_BUGGY_USERSPACE_TO_POLISHED_KMOD=1 LOG_LEVEL=error \
          "$WGGO" -f "$ifc" >"$WORK/$ifc.log" 2>&1 &
        ;;
      ipsecd-*)
        # ip netns exec and bench-tunnel.sh both exec: this pid becomes ipsecd's.
        NS=$ns IFACE=$ifc BENCH_RUN=$WORK/ipsecd \
          ip netns exec "$ns" "$here/scripts/bench-tunnel.sh" "${mode#ipsecd-}" \
          >"$WORK/$ifc.log" 2>&1 &
        ;;
    esac
    pid=$!
    started+=("$pid")
    tunnel+=("$pid")
    case $mode in
      boringtun | wggo)
        uapi "$ifc" "$pid" || return 1
        appear "$ns" "$ifc" "$pid" || return 1
        must ip netns exec "$ns" wg set "$ifc" private-key "$WORK/$side.key" \
          listen-port "$WG_PORT" peer "$(cat "$peer_key")" allowed-ips 10.78.0.0/24 \
          endpoint "$peer_out:$WG_PORT" || return 1
        must ip -n "$ns" link set "$ifc" mtu "$WG_MTU" || return 1
        ;;
      *) appear "$ns" "$ifc" "$pid" || return 1 ;;
    esac
    must ip -n "$ns" addr add "$addr/24" dev "$ifc" || return 1
    must ip -n "$ns" link set "$ifc" up || return 1
  done
}

# answers DST: A gets a ping reply from DST within 10 s.
answers() {
  local until=$((SECONDS + 10))
  while ((SECONDS < until)); do
    ip netns exec "$NS_A" ping -q -c 1 -W 1 "$1" >/dev/null 2>&1 && return 0
    sleep 0.2
  done
  return 1
}

# server_up DST: an iperf3 server in B, listening on DST.
server_up() {
  local i
  ip netns exec "$NS_B" iperf3 -s -B "$1" -p "$PORT" >>"$WORK/iperf3-server.log" 2>&1 &
  server=$!
  started+=("$server")
  for i in $(seq 50); do
    [[ -n $(ip netns exec "$NS_B" ss -Hltn "sport = :$PORT" 2>/dev/null) ]] && return 0
    running "$server" || break
    sleep 0.1
  done
  why="the iperf3 server in $NS_B did not come up (see iperf3-server.log)"
  return 1
}

# tunnel_ticks: utime+stime of the tunnel processes, in clock ticks; NA
# without a tunnel or when one of them has gone.
tunnel_ticks() {
  local p s f sum=0
  ((${#tunnel[@]})) || { echo NA; return 0; }
  for p in "${tunnel[@]}"; do
    s=$(cat "/proc/$p/stat" 2>/dev/null) || { echo NA; return 0; }
    read -ra f <<<"${s##*) }" # f[0] is field 3, the state: utime is f[11], stime f[12]
    [[ ${f[0]} != Z ]] || { echo NA; return 0; }
    sum=$((sum + f[11] + f[12]))
  done
  echo "$sum"
}

tunnel_alive() {
  local p
  for p in "${tunnel[@]}"; do running "$p" || return 1; done
  return 0
}

# measure MODE TEST REP DST: one iperf3 run; a row to $RESULTS and a line
# to the terminal. Fails when the run gave no number.
measure() {
  local mode=$1 test=$2 rep=$3 dst=$4 json cpid rc=0 t0 t1 c0 c1 out row
  local args=(-c "$dst" -p "$PORT" -t "$DUR" -J --connect-timeout 3000)
  case $test in
    tcp4) args+=(-P 4) ;;
    udp64) args+=(-u -l 64 -b "$UDP_RATE") ;;
  esac
  json=$WORK/$mode-$test-$rep.json
  c0=$(tunnel_ticks)
  t0=$(date +%s%N)
  # In the background and waited for, so that Ctrl-C acts at once.
  timeout -k 2 $((DUR + 10)) ip netns exec "$NS_A" iperf3 "${args[@]}" >"$json" 2>"$json.err" &
  cpid=$!
  started+=("$cpid")
  wait "$cpid" || rc=$?
  forget "$cpid"
  t1=$(date +%s%N)
  c1=$(tunnel_ticks)
  out=$("$PY" "$WORK/report.py" row "$mode" "$test" "$rep" "$json" "$rc" \
    $((t1 - t0)) "$c0" "$c1" "$HZ") || { say "$mode $test #$rep: could not read $json"; return 1; }
  row=${out%%$'\n'*}
  printf '%s\n' "$row" >>"$RESULTS"
  say "${out#*$'\n'}"
  [[ $row != *$'\tNaN\t'* ]]
}

# record MODE WHAT REASON: a mode that was skipped or failed, in $RESULTS.
record() {
  printf '%s\t%s\t-\t-\t%s\t\t\t\t\t\t\t%s\n' "$(date +%T)" "$1" "$2" "${3//$'\t'/ }" >>"$RESULTS"
}

# skip_reason MODE: why MODE cannot run here (empty: it can).
skip_reason() {
  local b
  case $1 in
    boringtun)
      [[ -n $BORINGTUN ]] || { echo "BORINGTUN is not set (the absolute path of boringtun-cli)"; return 0; }
      [[ $BORINGTUN == /* ]] || { echo "BORINGTUN=$BORINGTUN is not an absolute path"; return 0; }
      [[ -x $BORINGTUN ]] || { echo "BORINGTUN=$BORINGTUN is not an executable"; return 0; }
      command -v wg >/dev/null 2>&1 || echo "wg (wireguard-tools) is not installed"
      ;;
    wggo)
      [[ $WGGO == /* ]] || { echo "WGGO=$WGGO is not an absolute path"; return 0; }
      [[ -x $WGGO ]] || { echo "WGGO=$WGGO is not an executable"; return 0; }
      command -v wg >/dev/null 2>&1 || echo "wg (wireguard-tools) is not installed"
      ;;
    ipsecd-*)
      [[ -x $here/scripts/bench-tunnel.sh ]] || { echo "scripts/bench-tunnel.sh is missing"; return 0; }
      for b in "${IPSECD:-$here/target/release/ipsecd}" "${IPSECCTL:-$here/target/release/ipsecctl}" \
        "${KEYMGR:-$here/target/release/keymgr}"; do
        [[ -x $b ]] || { echo "$b is missing (cargo build --release --locked --bin ipsecd --bin ipsecctl --bin keymgr)"; return 0; }
      done
      ;;
  esac
  return 0
}

# run_mode MODE: all tests of MODE in fresh namespaces; sets $why and fails
# when the mode could not be measured (the runs done so far are kept).
run_mode() {
  local mode=$1 dst test rep
  net_up || return 1
  if [[ $mode == veth ]]; then
    dst=$OUT_B
  else
    dst=$IN_B
    tunnel_up "$mode" || return 1
  fi
  answers "$dst" || { why="no answer to ping $dst from $NS_A within 10 s"; return 1; }
  say "$mode: $dst answers ping"
  server_up "$dst" || return 1
  for test in tcp1 tcp4 udp64; do
    for rep in $(seq "$REPS"); do
      if ! measure "$mode" "$test" "$rep" "$dst"; then
        # A run that went wrong can leave the server stuck in its test.
        stop "$server"
        server_up "$dst" || return 1
      fi
      tunnel_alive || { why="a tunnel process exited during $test #$rep"; return 1; }
      sleep 1
    done
  done
}

# mode_down: stop the mode's processes, delete its namespaces.
mode_down() {
  stop "${tunnel[@]}" ${server:+"$server"}
  tunnel=() server=
  net_down
}

# show_logs: the end of the tunnel logs, after a failure.
show_logs() {
  local f
  for f in "$WORK/$TUN_A.log" "$WORK/$TUN_B.log" "$WORK/ipsecd/$TUN_A.log" "$WORK/ipsecd/$TUN_B.log"; do
    [[ -s $f ]] || continue
    echo "--- ${f#"$WORK"/} (last lines)"
    tail -n 8 "$f"
  done
}

cat >"$WORK/report.py" <<'PY'
"""row: one iperf3 run as a TSV row plus a line for people; table: medians."""
import csv
import json
import statistics
import sys
import time


def fmt(v, spec):
    return "NA" if v is None else spec % v


def row(mode, test, rep, path, rc, wall_ns, c0, c1, hz):
    rc, wall = int(rc), int(wall_ns) / 1e9
    try:
        with open(path) as f:
            j = json.load(f)
    except (OSError, ValueError):
        j = {}
    end = j.get("end") or {}
    got = end.get("sum_received") or {}
    sent = end.get("sum_sent") or {}
    notes, value, gbit = [], None, None
    if test.startswith("tcp"):
        unit = "Gbit/s"
        if rc == 0 and got.get("seconds"):
            value = got["bits_per_second"] / 1e9
            gbit = got["bytes"] * 8 / 1e9
        if "retransmits" in sent:
            notes.append("retransmits=%d" % sent["retransmits"])
    else:
        unit = "pkt/s"
        if rc == 0 and got.get("seconds"):
            # The receiver counts up to the highest sequence number seen and
            # the gaps in it: what arrived is the one minus the other.
            value = (got["packets"] - got["lost_packets"]) / got["seconds"]
        if sent.get("seconds"):
            notes.append("sent=%.0fpkt/s" % (sent["packets"] / sent["seconds"]))
        if "lost_percent" in got:
            notes.append("lost=%.1f%%" % got["lost_percent"])
    if j.get("error"):
        notes.append("iperf3: " + j["error"])
    if rc:
        notes.append("rc=%d%s" % (rc, " (timed out)" if rc in (124, 137) else ""))
        if not j.get("error"):
            try:
                with open(path + ".err") as f:
                    err = f.read().strip().splitlines()
                if err:
                    notes.append(err[-1])
            except OSError:
                pass
    cpu = pct = per_gbit = None
    if c0 != "NA" and c1 != "NA":
        cpu = (int(c1) - int(c0)) / int(hz)
        pct = 100 * cpu / wall
        if gbit:
            per_gbit = cpu / gbit
    note = " ".join(notes).replace("\t", " ").replace("\n", " ")
    fields = [
        time.strftime("%H:%M:%S"), mode, test, rep,
        "NaN" if value is None else ("%.3f" if unit == "Gbit/s" else "%.0f") % value,
        unit, str(rc),
        "%.2f" % wall, fmt(cpu, "%.2f"), fmt(pct, "%.0f"), fmt(per_gbit, "%.3f"), note,
    ]
    print("\t".join(fields))
    result = "FAILED" if value is None else fields[4] + " " + unit
    line = "%-10s %-5s #%s  %s" % (mode, test, rep, result)
    if pct is not None:
        line += "  tunnel CPU %s%%" % fields[9]
        if per_gbit is not None:
            line += " (%s CPU s/Gbit)" % fields[10]
    if note:
        line += "  [" + note + "]"
    print(line)


def table(path):
    with open(path) as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    groups = {}
    for r in rows:
        groups.setdefault((r["mode"], r["test"]), []).append(r)

    def med(rs, key):
        xs = []
        for r in rs:
            try:
                x = float(r[key])
            except (TypeError, ValueError):
                continue
            if x == x:  # not NaN
                xs.append(x)
        return statistics.median(xs) if xs else None

    head = ("mode", "test", "median", "runs", "tunnel CPU%", "CPU s/Gbit")
    out, notes = [head], []
    for (mode, test), rs in groups.items():
        if test == "-":
            out.append((mode, "-", rs[0]["value"], "", "", ""))
            notes.append("%s: %s: %s" % (mode, rs[0]["value"], rs[0]["note"]))
            continue
        unit = rs[0]["unit"]
        m = med(rs, "value")
        if m is None:
            median = "FAILED"
        elif unit == "Gbit/s":
            median = "%.3f Gbit/s" % m
        else:
            median = "%.0f pkt/s" % m
        runs = ",".join(r["value"] for r in rs)
        cpu = med(rs, "tunnel_cpu_pct")
        per = med(rs, "cpu_s_per_gbit")
        out.append((mode, test, median, runs, fmt(cpu, "%.0f"), fmt(per, "%.3f")))
    widths = [max(len(r[i]) for r in out) for i in range(len(head) - 1)]
    for r in out:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)) + "  " + r[-1])
    if notes:
        print()
        print("\n".join(notes))


if __name__ == "__main__":
    {"row": row, "table": table}[sys.argv[1]](*sys.argv[2:])
PY

mkdir -p "$(dirname "$RESULTS")"
printf 'time\tmode\ttest\trep\tvalue\tunit\trc\twall_s\ttunnel_cpu_s\ttunnel_cpu_pct\tcpu_s_per_gbit\tnote\n' >"$RESULTS"
say "modes: ${modes[*]}; DUR=$DUR REPS=$REPS UDP_RATE=$UDP_RATE; namespaces $NS_A, $NS_B"
for mode in "${modes[@]}"; do
  reason=$(skip_reason "$mode")
  if [[ -n $reason ]]; then
    say "$mode: skipped: $reason"
    record "$mode" SKIPPED "$reason"
    continue
  fi
  say "=== $mode"
  why=
  if run_mode "$mode"; then
    :
  else
    say "$mode: FAILED: $why"
    show_logs
    record "$mode" FAILED "$why"
  fi
  mode_down
done

echo
echo "DUR=$DUR s, REPS=$REPS, medians; tunnel CPU in % of one core; raw runs: $RESULTS"
"$PY" "$WORK/report.py" table "$RESULTS"
