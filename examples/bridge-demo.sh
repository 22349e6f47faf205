#!/usr/bin/env bash
# See bridge mode work, in network namespaces, in two parts.
#
# 1. A bump in the wire: a host that knows nothing of IPsec, a bridge
#    (ipsecd -b) in front of it, and a peer running ipsecd in host mode.
#    The bridge's SAs use the host's own address, so the host is
#    protected without being touched.
#
#    ipsec-bd-host 10.9.0.1 ── [ipsec-bd-bridge: ipsecd -b ba -b bb] ══ESP══ 10.9.0.2 ipsec-bd-peer
#
# 2. A virtual LAN: two segments, each with a host and a bridge, the
#    bridges joined by EtherIP in ESP over a link of their own. The two
#    hosts share one broadcast domain.
#
#    ipsec-bd-lan-a 10.5.0.1 ── [ipsec-bd-b1] 192.0.2.1 ══ESP(EtherIP)══ 192.0.2.2 [ipsec-bd-b2] ── 10.5.0.2 ipsec-bd-lan-b
#
# Each part pings across, shows what the wire between carries (ESP, and
# nothing of the hosts' in the clear), and the bridge's counts. Everything
# it made is removed when it ends, however it ends: the daemons and
# captures (by process ID), the namespaces, its temporary directory.
#
#   sudo examples/bridge-demo.sh
#
# IPSECD and IPSECCTL name other binaries than target/release's.

set -euo pipefail

die() {
	echo "bridge-demo.sh: $*" >&2
	exit 1
}

if [ "$(id -u)" -ne 0 ]; then
	die "must run as root (it makes network namespaces and packet sockets): sudo $0"
fi
for tool in ip tcpdump ping; do
	command -v "$tool" >/dev/null || die "needs $tool (iproute2, tcpdump, iputils-ping)"
done

cd "$(dirname "$0")/.."
root=$PWD
ipsecd=${IPSECD:-$root/target/release/ipsecd}
ipsecctl=${IPSECCTL:-$root/target/release/ipsecctl}
for bin in "$ipsecd" "$ipsecctl"; do
	[ -x "$bin" ] || die "$bin missing: cargo build --release --bin ipsecd --bin ipsecctl"
done

namespaces=(ipsec-bd-host ipsec-bd-bridge ipsec-bd-peer ipsec-bd-lan-a ipsec-bd-b1 ipsec-bd-b2 ipsec-bd-lan-b)
for ns in "${namespaces[@]}"; do
	if ip netns list | grep -w "^$ns" >/dev/null; then
		[ -z "$(ip netns pids "$ns" 2>/dev/null)" ] || die "namespace $ns is in use (another demo running?)"
		ip netns del "$ns"
	fi
done

tmp=$(mktemp -d /tmp/ipsec-bridge-demo.XXXXXX)
chmod 700 "$tmp"
pids=()
made=()

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
	if [ "$status" -ne 0 ]; then
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

heading() {
	printf '\n== %s\n' "$*"
}

namespace() {
	ip netns add "$1"
	made+=("$1")
	ip -n "$1" link set lo up
}

# link NS_A IF_A ADDR_A NS_B IF_B ADDR_B: a veth pair, up; "" for no address.
link() {
	ip link add "$2" netns "$1" type veth peer name "$5" netns "$4"
	[ -z "$3" ] || ip -n "$1" addr add "$3" dev "$2"
	[ -z "$6" ] || ip -n "$4" addr add "$6" dev "$5"
	ip -n "$1" link set "$2" up
	ip -n "$4" link set "$5" up
}

# daemon NS [ARGS...]: ipsecd in NS; its control socket is $tmp/NS.sock.
daemon() {
	local ns=$1 socket=$tmp/$1.sock i
	shift
	ip netns exec "$ns" "$ipsecd" -d -s "$socket" "$@" >"$tmp/$ns.log" 2>&1 &
	pids+=("$!")
	for i in $(seq 100); do
		[ -S "$socket" ] && return 0
		sleep 0.1
	done
	die "ipsecd in $ns did not start"
}

# load NS CONFIG: the configuration into NS's daemon.
load() {
	local ns=$1 conf=$tmp/$1.conf
	printf '%s\n' "$2" >"$conf"
	chmod 600 "$conf"
	IPSECD_SOCKET=$tmp/$ns.sock ip netns exec "$ns" "$ipsecctl" -f "$conf"
}

# capture NS IF: tcpdump there, in the background, to $tmp/NS-IF.txt.
capture() {
	ip netns exec "$1" tcpdump -l -nn -i "$2" >"$tmp/$1-$2.txt" 2>/dev/null &
	pids+=("$!")
	sleep 1
}

# Keys as ipsec.conf writes them (fixed: this is a demonstration).
auth=0x$(printf '11%.0s' {1..32}):0x$(printf '22%.0s' {1..32})
enc=0x$(printf '33%.0s' {1..16}):0x$(printf '44%.0s' {1..16})
rauth=${auth#*:}:${auth%%:*}
renc=${enc#*:}:${enc%%:*}

heading "1. a host protected by a bridge, without being touched"
for ns in ipsec-bd-host ipsec-bd-bridge ipsec-bd-peer; do namespace "$ns"; done
link ipsec-bd-host wh 10.9.0.1/24 ipsec-bd-bridge ba ""
link ipsec-bd-bridge bb "" ipsec-bd-peer wp 10.9.0.2/24
daemon ipsec-bd-bridge -b ba -b bb
daemon ipsec-bd-peer
load ipsec-bd-bridge "flow esp from 10.9.0.1 to 10.9.0.2 peer 10.9.0.2
esp transport from 10.9.0.1 to 10.9.0.2 spi 0x1000:0x1001 auth hmac-sha2-256 enc aes authkey $auth enckey $enc"
load ipsec-bd-peer "flow esp from 10.9.0.2 to 10.9.0.1 peer 10.9.0.1
esp transport from 10.9.0.2 to 10.9.0.1 spi 0x1001:0x1000 auth hmac-sha2-256 enc aes authkey $rauth enckey $renc"
capture ipsec-bd-bridge bb
echo "the host runs nothing but its own stack:"
ip -n ipsec-bd-host -br addr show wh
ip netns exec ipsec-bd-host ping -c 3 -i 0.3 10.9.0.2
heading "between the bridge and the peer: ARP as it was, the host's ping in ESP"
sleep 0.5
grep -e ARP -e ESP "$tmp/ipsec-bd-bridge-bb.txt" | sed -n 1,8p

heading "2. two segments made one LAN by two bridges and EtherIP in ESP"
for ns in ipsec-bd-lan-a ipsec-bd-b1 ipsec-bd-b2 ipsec-bd-lan-b; do namespace "$ns"; done
link ipsec-bd-lan-a wa 10.5.0.1/24 ipsec-bd-b1 la ""
link ipsec-bd-b1 w1 192.0.2.1/24 ipsec-bd-b2 w2 192.0.2.2/24
link ipsec-bd-b2 lb "" ipsec-bd-lan-b wb 10.5.0.2/24
# Room on the bridges' link for a LAN frame in EtherIP and ESP.
ip -n ipsec-bd-b1 link set w1 mtu 9000
ip -n ipsec-bd-b2 link set w2 mtu 9000
daemon ipsec-bd-b1 -b la -b etherip:192.0.2.2
daemon ipsec-bd-b2 -b lb -b etherip:192.0.2.1
load ipsec-bd-b1 "flow esp proto etherip from 192.0.2.1 to 192.0.2.2 peer 192.0.2.2
esp transport from 192.0.2.1 to 192.0.2.2 spi 0x1000:0x1001 auth hmac-sha2-256 enc aes authkey $auth enckey $enc"
load ipsec-bd-b2 "flow esp proto etherip from 192.0.2.2 to 192.0.2.1 peer 192.0.2.1
esp transport from 192.0.2.2 to 192.0.2.1 spi 0x1001:0x1000 auth hmac-sha2-256 enc aes authkey $rauth enckey $renc"
capture ipsec-bd-b1 w1
capture ipsec-bd-lan-b wb
ip netns exec ipsec-bd-lan-a ping -c 3 -i 0.3 10.5.0.2
ip netns exec ipsec-bd-lan-a ping -b -c 2 -i 0.3 -W 1 10.5.0.255 >/dev/null 2>&1 || true
sleep 0.5
heading "host B's segment: host A's ARP and broadcast, as if A stood beside it"
grep -e ARP -e '10.5.0.255' "$tmp/ipsec-bd-lan-b-wb.txt" | sed -n 1,6p
heading "between the bridges: ESP, and the bridges' own ARP"
grep -v -e '^$' -e ICMP6 -e 'IP6 ' "$tmp/ipsec-bd-b1-w1.txt" | sed -n 1,6p

heading "the bridges' counts (logged when they stop)"
for pid in "${pids[@]}"; do stop "$pid"; done
pids=()
grep -h -e 'bridge ' "$tmp"/ipsec-bd-bridge.log "$tmp"/ipsec-bd-b1.log "$tmp"/ipsec-bd-b2.log | sed 's/^ipsecd: //'
heading "done; everything it made is gone"
