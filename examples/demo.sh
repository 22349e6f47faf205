#!/usr/bin/env bash
# See it work: two IPsec gateways in network namespaces, joined by a veth
# pair, each running its own ipsecd, with the ESP tunnel of
# examples/demo-a.conf and examples/demo-b.conf between them.
#
#   10.1.0.1 (lo)                                           10.2.0.1 (lo)
#   ipsec-demo-a: enc0 ── veth-a 192.0.2.1 ═══ESP═══ 192.0.2.2 veth-b ── enc0 :ipsec-demo-b
#
# It pings 10.2.0.1 from 10.1.0.1, moves some TCP across (iperf3, or
# python3 without it), and shows the tables, the routes and the filter the
# daemon installed, and the same packets on enc0 (plaintext) and on the
# wire (ESP). Everything it made is removed when it ends, however it
# ends: the daemons and captures (by process ID), the namespaces, and its
# temporary directory.
#
#   sudo examples/demo.sh
#
# IPSECD and IPSECCTL name other binaries than target/release's.

set -euo pipefail

die() {
	echo "demo.sh: $*" >&2
	exit 1
}

if [ "$(id -u)" -ne 0 ]; then
	die "must run as root (it makes network namespaces, TUN devices, routes and nftables rules): sudo $0"
fi
for tool in ip nft; do
	command -v "$tool" >/dev/null || die "needs $tool (iproute2, nftables)"
done

# The configurations name their key files relative to the top of the tree.
cd "$(dirname "$0")/.."
root=$PWD
ipsecd=${IPSECD:-$root/target/release/ipsecd}
ipsecctl=${IPSECCTL:-$root/target/release/ipsecctl}

if [ ! -x "$ipsecd" ] || [ ! -x "$ipsecctl" ]; then
	echo "== building ipsecd and ipsecctl (cargo build --release)"
	if [ -n "${SUDO_USER:-}" ] && [ "$SUDO_USER" != root ]; then
		# Build as the user who asked, so target/ stays theirs.
		sudo -u "$SUDO_USER" -H bash -lc 'cd "$1" && cargo build --release' _ "$root" ||
			die "cargo build --release failed"
	else
		command -v cargo >/dev/null || die "no binaries in target/release and no cargo to build them"
		cargo build --release || die "cargo build --release failed"
	fi
	for bin in "$ipsecd" "$ipsecctl"; do
		[ -x "$bin" ] || die "$bin: not there after the build"
	done
fi

ns_a=ipsec-demo-a
ns_b=ipsec-demo-b
for ns in "$ns_a" "$ns_b"; do
	if ip netns list | grep -w "^$ns" >/dev/null; then
		if [ -n "$(ip netns pids "$ns" 2>/dev/null)" ]; then
			die "namespace $ns is in use (another demo running?)"
		fi
		ip netns del "$ns" # left over from a run that was killed
	fi
done

tmp=$(mktemp -d /tmp/ipsec-demo.XXXXXX)
chmod 700 "$tmp"
pids=()
made=()

# Stops a process this script started: SIGTERM, then SIGKILL after 5 s.
stop() {
	local pid=$1 i
	kill -TERM "$pid" 2>/dev/null || return 0
	for i in $(seq 50); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	kill -KILL "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
}

cleanup() {
	local status=$? pid ns
	trap - EXIT INT TERM
	set +e
	if [ "$status" -ne 0 ] && [ -d "$tmp" ]; then
		for log in "$tmp"/*.log; do
			[ -s "$log" ] || continue
			echo "-- $(basename "$log") (last lines)" >&2
			tail -n 5 "$log" >&2
		done
	fi
	for pid in "${pids[@]}"; do
		stop "$pid"
	done
	for ns in "${made[@]}"; do
		ip netns del "$ns" 2>/dev/null
	done
	rm -rf "$tmp"
	exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Runs in a namespace.
in_a() { ip netns exec "$ns_a" "$@"; }
in_b() { ip netns exec "$ns_b" "$@"; }

# Starts a command in a namespace in the background, output to a log;
# remembers its process ID (ip netns exec execs the command, so it is the
# command's own).
started=
start() {
	local ns=$1 log=$2
	shift 2
	ip netns exec "$ns" "$@" >"$tmp/$log" 2>&1 &
	started=$!
	pids+=("$started")
}

# Waits (up to 10 s) until a command succeeds.
await() {
	local what=$1 i
	shift
	for i in $(seq 100); do
		if "$@" >/dev/null 2>&1; then
			return 0
		fi
		sleep 0.1
	done
	die "timed out waiting for $what"
}

# The first six packets of a tcpdump log (sed, not head: under pipefail
# head's early exit would fail the pipeline).
packets() {
	grep -v -e '^listening on' -e '^tcpdump:' -e 'packets captured' \
		-e 'packets received' -e 'packets dropped' -e '^$' "$1" | sed -n 1,6p
}

heading() {
	printf '\n== %s\n' "$*"
}

heading "namespaces $ns_a and $ns_b, joined by veth-a 192.0.2.1 <-> veth-b 192.0.2.2"
for ns in "$ns_a" "$ns_b"; do
	ip netns add "$ns"
	made+=("$ns")
	ip -n "$ns" link set lo up
done
ip link add veth-a netns "$ns_a" type veth peer name veth-b netns "$ns_b"
ip -n "$ns_a" addr add 192.0.2.1/24 dev veth-a
ip -n "$ns_b" addr add 192.0.2.2/24 dev veth-b
# The protected networks: one host each, on the gateway's loopback.
ip -n "$ns_a" addr add 10.1.0.1/32 dev lo
ip -n "$ns_b" addr add 10.2.0.1/32 dev lo
ip -n "$ns_a" link set veth-a up
ip -n "$ns_b" link set veth-b up

heading "ipsecd in each (ipsecd -d -s SOCKET -w PCAP)"
sock_a=$tmp/a.sock
sock_b=$tmp/b.sock
start "$ns_a" ipsecd-a.log "$ipsecd" -d -s "$sock_a" -w "$tmp/a-enc.pcap"
ipsecd_a=$started
start "$ns_b" ipsecd-b.log "$ipsecd" -d -s "$sock_b" -w "$tmp/b-enc.pcap"
ipsecd_b=$started
for side in a b; do
	pid_var=ipsecd_$side sock_var=sock_$side
	# Ready once its control socket answers.
	await "ipsecd in $side" bash -c 'kill -0 "$1" && "$2" -S "$3" -s sa' _ \
		"${!pid_var}" "$ipsecctl" "${!sock_var}"
done
echo "running: pid $ipsecd_a in $ns_a, pid $ipsecd_b in $ns_b"

heading "loading examples/demo-a.conf and examples/demo-b.conf"
# They hold keys: ipsecctl reads them only from files nobody else can
# read, and git checks files out readable by all.
install -m 600 examples/demo-a.conf examples/demo-b.conf "$tmp"
in_a "$ipsecctl" -S "$sock_a" -f "$tmp/demo-a.conf"
in_b "$ipsecctl" -S "$sock_b" -f "$tmp/demo-b.conf"
# Routes and the filter follow the tables once the daemon is idle.
await "routes into enc0" bash -c '[ -n "$(ip -n "$1" route show table 1950)" ] &&
	[ -n "$(ip -n "$2" route show table 1950)" ]' _ "$ns_a" "$ns_b"
in_a "$ipsecctl" -S "$sock_a" -s flow

heading "what ipsecd installed in $ns_a"
echo "\$ ip rule"
in_a ip rule show
echo "\$ ip route show table 1950"
in_a ip route show table 1950
echo "\$ ip link show enc0"
in_a ip link show enc0
echo "\$ nft list table inet ipsecd"
in_a nft list table inet ipsecd

have_tcpdump=
if command -v tcpdump >/dev/null; then
	have_tcpdump=1
	start "$ns_a" tcpdump-enc0.log tcpdump -nn -l -i enc0 ip
	dump_enc=$started
	start "$ns_a" tcpdump-wire.log tcpdump -nn -l -i veth-a ip
	dump_wire=$started
	await "tcpdump" grep -q "listening on enc0" "$tmp/tcpdump-enc0.log"
	await "tcpdump" grep -q "listening on veth-a" "$tmp/tcpdump-wire.log"
fi

heading "ping 10.2.0.1 from 10.1.0.1, through the tunnel"
in_a ping -c 3 -i 0.2 -W 2 -I 10.1.0.1 10.2.0.1

heading "a TCP transfer from 10.1.0.1 to 10.2.0.1"
if command -v iperf3 >/dev/null; then
	start "$ns_b" iperf3-server.log iperf3 -s -1 -B 10.2.0.1
	await "iperf3 server" bash -c 'ip netns exec "$1" ss -ltn | grep -q "10.2.0.1:5201"' _ "$ns_b"
	in_a iperf3 -c 10.2.0.1 -B 10.1.0.1 -t 2 -f m | grep -E 'sender|receiver'
elif command -v python3 >/dev/null; then
	start "$ns_b" tcp-server.log python3 -c '
import socket
s = socket.create_server(("10.2.0.1", 5201))
c, _ = s.accept()
n = 0
while True:
    b = c.recv(65536)
    if not b:
        break
    n += len(b)
print(n, "bytes received")
'
	server=$started
	await "TCP server" bash -c 'ip netns exec "$1" ss -ltn | grep -q "10.2.0.1:5201"' _ "$ns_b"
	in_a python3 -c '
import socket, time
c = socket.create_connection(("10.2.0.1", 5201), source_address=("10.1.0.1", 0))
t = time.monotonic()
c.sendall(bytes(8 << 20))
c.close()
print("8 MiB sent in %.2f s" % (time.monotonic() - t))
'
	wait "$server" || true
	cat "$tmp/tcp-server.log"
else
	echo "(neither iperf3 nor python3: no transfer)"
fi

if [ -n "$have_tcpdump" ]; then
	sleep 0.3
	stop "$dump_enc"
	stop "$dump_wire"
	heading "the first packets as tcpdump -i enc0 saw them: plaintext, both ways"
	packets "$tmp/tcpdump-enc0.log"
	heading "the same packets on the wire, tcpdump -i veth-a: ESP only"
	packets "$tmp/tcpdump-wire.log"
	heading "ipsecd -w: its enc capture, with the SA of each packet (tcpdump -r)"
	# 24 bytes are the file header alone.
	if [ "$(stat -c %s "$tmp/a-enc.pcap")" -gt 24 ]; then
		tcpdump -nn -r "$tmp/a-enc.pcap" 2>/dev/null | sed -n 1,4p
	else
		echo "(no packets recorded)"
	fi
else
	echo "(no tcpdump: no captures to show)"
fi

heading "ipsecctl -s all -v in $ns_a: flows with what they carried, SAs with counters"
in_a "$ipsecctl" -S "$sock_a" -s all -v

heading "SIGUSR1: ipsecd logs its totals and drops by reason"
kill -USR1 "$ipsecd_a"
await "the totals" grep -q "protected out" "$tmp/ipsecd-a.log"
grep "protected out" "$tmp/ipsecd-a.log" | tail -n 1

heading "the teardown: ipsecctl -F, then SIGTERM; with no flows left, ipsecd removes its routes, rules, table and enc0"
for side in a b; do
	sock_var=sock_$side
	"in_$side" "$ipsecctl" -S "${!sock_var}" -F
done
stop "$ipsecd_a"
stop "$ipsecd_b"
echo "\$ ip rule"
in_a ip rule show
echo "\$ ip route show table 1950; nft list table inet ipsecd"
in_a ip route show table 1950
if ! in_a nft list table inet ipsecd >/dev/null 2>&1; then
	echo "(no table inet ipsecd)"
fi
echo
echo "done; the namespaces and $tmp go now."
