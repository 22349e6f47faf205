#!/usr/bin/env bash
# See iked key a tunnel: two IPsec gateways in network namespaces, joined
# by a veth pair, each running ipsecd and iked. ipsecctl -i hands each
# iked its rule (examples/ike-a.conf, dynamic, and examples/ike-b.conf,
# passive, with a shared key). Nothing is keyed until A sends traffic to
# B's network: then ipsecd asks iked (SADB_ACQUIRE), the two ikeds run
# IKE_SA_INIT and IKE_AUTH, and the SAs go into both ipsecds.
#
#   10.1.0.1 (lo)                                        10.2.0.1 (lo)
#   ike-demo-a: enc0 -- veth-a 192.0.2.1 ===IKE, ESP=== 192.0.2.2 veth-b -- enc0 :ike-demo-b
#
# It shows the flows before any traffic, the first ping, the exchange on
# the wire, the SAs each side has, iked's log, and the teardown from one
# side (ipsecctl -d: the other side deletes its SAs too). Everything it
# made is removed when it ends, however it ends: the daemons and the
# capture (by process ID), the namespaces, and its temporary directory.
#
#   sudo examples/ike-demo.sh
#
# IPSECD, IPSECCTL, IKED and IKECTL name other binaries than target/release's.

set -euo pipefail

die() {
	echo "ike-demo.sh: $*" >&2
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
iked=${IKED:-$root/target/release/iked}
ikectl=${IKECTL:-$root/target/release/ikectl}

if [ ! -x "$ipsecd" ] || [ ! -x "$ipsecctl" ] || [ ! -x "$iked" ] || [ ! -x "$ikectl" ]; then
	echo "== building ipsecd, ipsecctl, iked and ikectl (cargo build --release)"
	if [ -n "${SUDO_USER:-}" ] && [ "$SUDO_USER" != root ]; then
		# Build as the user who asked, so target/ stays theirs.
		sudo -u "$SUDO_USER" -H bash -lc 'cd "$1" && cargo build --release' _ "$root" ||
			die "cargo build --release failed"
	else
		command -v cargo >/dev/null || die "no binaries in target/release and no cargo to build them"
		cargo build --release || die "cargo build --release failed"
	fi
	for bin in "$ipsecd" "$ipsecctl" "$iked" "$ikectl"; do
		[ -x "$bin" ] || die "$bin: not there after the build"
	done
fi

ns_a=ike-demo-a
ns_b=ike-demo-b
for ns in "$ns_a" "$ns_b"; do
	if ip netns list | grep -w "^$ns" >/dev/null; then
		if [ -n "$(ip netns pids "$ns" 2>/dev/null)" ]; then
			die "namespace $ns is in use (another demo running?)"
		fi
		ip netns del "$ns" # left over from a run that was killed
	fi
done

tmp=$(mktemp -d /tmp/ike-demo.XXXXXX)
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

heading "ipsecd and iked in each (ipsecd -d -s SOCKET; iked -dv -s SOCKET -S IPSECD)"
for side in a b; do
	ns_var=ns_$side
	start "${!ns_var}" "ipsecd-$side.log" "$ipsecd" -d -s "$tmp/$side.sock"
	declare "ipsecd_$side=$started"
	await "ipsecd in $side" bash -c 'kill -0 "$1" && "$2" -S "$3" -s sa' _ \
		"$started" "$ipsecctl" "$tmp/$side.sock"
	start "${!ns_var}" "iked-$side.log" "$iked" -dv -s "$tmp/$side-iked.sock" -S "$tmp/$side.sock"
	declare "iked_$side=$started"
	await "iked in $side" test -S "$tmp/$side-iked.sock"
done
echo "running: ipsecd $ipsecd_a and iked $iked_a in $ns_a, ipsecd $ipsecd_b and iked $iked_b in $ns_b"

have_tcpdump=
if command -v tcpdump >/dev/null; then
	have_tcpdump=1
	start "$ns_a" tcpdump-wire.log tcpdump -nn -l -i veth-a ip
	dump_wire=$started
	await "tcpdump" grep -q "listening on veth-a" "$tmp/tcpdump-wire.log"
fi

heading "loading examples/ike-b.conf into B's iked, then examples/ike-a.conf into A's (ipsecctl -i)"
# They hold the shared key: ipsecctl reads them only from files nobody
# else can read, and git checks files out readable by all.
install -m 600 examples/ike-a.conf examples/ike-b.conf "$tmp"
in_b "$ipsecctl" -S "$tmp/b.sock" -i "$tmp/b-iked.sock" -f "$tmp/ike-b.conf"
in_a "$ipsecctl" -S "$tmp/a.sock" -i "$tmp/a-iked.sock" -f "$tmp/ike-a.conf"
echo "\$ ipsecctl -s flow   (in $ns_a: iked installed the flows)"
in_a "$ipsecctl" -S "$tmp/a.sock" -s flow
echo "\$ ipsecctl -s sa     (in $ns_a: nothing keyed yet)"
sas=$(in_a "$ipsecctl" -S "$tmp/a.sock" -s sa)
echo "${sas:-(none)}"

heading "ping 10.2.0.1 from 10.1.0.1: the first packet starts the negotiation"
in_a ping -c 4 -i 0.2 -W 2 -I 10.1.0.1 10.2.0.1 || true

heading "the SAs iked keyed, in each ipsecd (ipsecctl -s sa)"
for side in a b; do
	ns_var=ns_$side
	echo "-- ${!ns_var}"
	"in_$side" "$ipsecctl" -S "$tmp/$side.sock" -s sa
done

heading "ikectl show in $ns_a: the rule, its IKE SA and Child SA"
in_a "$ikectl" -s "$tmp/a-iked.sock" show

heading "a TCP transfer from 10.1.0.1 to 10.2.0.1, through the tunnel"
if command -v iperf3 >/dev/null; then
	start "$ns_b" iperf3-server.log iperf3 -s -1 -B 10.2.0.1
	await "iperf3 server" bash -c 'ip netns exec "$1" ss -ltn | grep -q "10.2.0.1:5201"' _ "$ns_b"
	in_a iperf3 -c 10.2.0.1 -B 10.1.0.1 -t 2 -f m | grep -E 'sender|receiver'
else
	echo "(no iperf3: no transfer)"
fi

if [ -n "$have_tcpdump" ]; then
	sleep 0.3
	stop "$dump_wire"
	heading "on the wire, tcpdump -i veth-a: IKE on port 500, then ESP only"
	packets "$tmp/tcpdump-wire.log"
fi

heading "iked's log in $ns_a"
cat "$tmp/iked-a.log"

heading "ipsecctl -d -f ike-a.conf in $ns_a: A's iked tells B's, and both delete their SAs"
in_a "$ipsecctl" -S "$tmp/a.sock" -i "$tmp/a-iked.sock" -d -f "$tmp/ike-a.conf"
await "B's SAs to go" bash -c '[ -z "$(ip netns exec "$1" "$2" -S "$3" -s sa)" ]' _ \
	"$ns_b" "$ipsecctl" "$tmp/b.sock"
echo "-- iked's log in $ns_b"
tail -n 2 "$tmp/iked-b.log"
echo "\$ ipsecctl -s sa   (in $ns_b)"
sas=$(in_b "$ipsecctl" -S "$tmp/b.sock" -s sa)
echo "${sas:-(none)}"
for side in a b; do
	"in_$side" "$ipsecctl" -S "$tmp/$side.sock" -i "$tmp/$side-iked.sock" -F
done
echo
echo "done; the daemons, the namespaces and $tmp go now."
