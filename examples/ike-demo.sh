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

demo=ike-demo
ns_a=ike-demo-a
ns_b=ike-demo-b
bins=(ipsecd ipsecctl iked ikectl)
# shellcheck source=examples/demo-lib.sh
. "$(dirname "$0")/demo-lib.sh"

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
