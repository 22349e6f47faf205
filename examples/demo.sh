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

demo=ipsec-demo
ns_a=ipsec-demo-a
ns_b=ipsec-demo-b
bins=(ipsecd ipsecctl)
# shellcheck source=examples/demo-lib.sh
. "$(dirname "$0")/demo-lib.sh"

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
