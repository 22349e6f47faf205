# The common part of demo.sh and ike-demo.sh, sourced by both: root and
# tool checks, the release build if a binary is missing, two gateways in
# network namespaces joined by a veth pair, and a cleanup that removes
# whatever was made (processes by pid, namespaces, the temporary
# directory) however the demo ends.
#
# The demo sets before sourcing: demo (its name, for messages and
# names), ns_a and ns_b, and bins (the binaries it runs, by variable
# name, each defaulting to target/release/NAME unless its upper-case
# name is set in the environment).
#
#   ns_a 10.1.0.1 (lo), veth-a 192.0.2.1 <-> veth-b 192.0.2.2, 10.2.0.1 (lo) ns_b

set -euo pipefail

die() {
	echo "$(basename "$0"): $*" >&2
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
missing=
for bin in "${bins[@]}"; do
	upper=$(printf '%s' "$bin" | tr '[:lower:]' '[:upper:]')
	declare "$bin=${!upper:-$root/target/release/$bin}"
	[ -x "${!bin}" ] || missing=1
done

if [ -n "$missing" ]; then
	echo "== building ${bins[*]} (cargo build --release)"
	if [ -n "${SUDO_USER:-}" ] && [ "$SUDO_USER" != root ]; then
		# Build as the user who asked, so target/ stays theirs.
		sudo -u "$SUDO_USER" -H bash -lc 'cd "$1" && cargo build --release' _ "$root" ||
			die "cargo build --release failed"
	else
		command -v cargo >/dev/null || die "no binaries in target/release and no cargo to build them"
		cargo build --release || die "cargo build --release failed"
	fi
	for bin in "${bins[@]}"; do
		[ -x "${!bin}" ] || die "${!bin}: not there after the build"
	done
fi

for ns in "$ns_a" "$ns_b"; do
	if ip netns list | grep -w "^$ns" >/dev/null; then
		if [ -n "$(ip netns pids "$ns" 2>/dev/null)" ]; then
			die "namespace $ns is in use (another demo running?)"
		fi
		ip netns del "$ns" # left over from a run that was killed
	fi
done

tmp=$(mktemp -d "/tmp/$demo.XXXXXX")
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
