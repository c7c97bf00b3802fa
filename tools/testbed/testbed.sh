#!/usr/bin/env bash
# Phyla testbed: N hosts as network namespaces on one bridge, addressed from the benchmarking
# range 198.18.0.0/15, with optional per-host tbf rate limits. Needs root, iproute2 and tc.
#
#   tools/testbed/testbed.sh up N [--rate RATE] [--name NAME]   create hosts 1..N
#   tools/testbed/testbed.sh down [--name NAME]                 remove them (idempotent)
#   tools/testbed/testbed.sh run N [--rate RATE] [--name NAME] -- CMD [ARG...]
#        create, run CMD in the root namespace with the hosts described in the environment,
#        and tear everything down when CMD ends, fails or is interrupted
#   tools/testbed/testbed.sh exec I [--name NAME] -- CMD [ARG...]   run CMD inside host I
#   tools/testbed/testbed.sh addr I                                 print host I's address
#
# Host I (1 <= I <= 4000) is namespace NAME-I with interface eth0 at 198.18.(I/256).(I%256)/15;
# its peer veth NAME-vI sits on bridge NAME-br, which holds 198.19.255.254/15 so that the root
# namespace reaches every host. RATE is a tc rate (for example 100mbit) applied as a tbf qdisc on
# every host's eth0: each host's sending is limited, as an uplink would be.
# `run` exports TESTBED_NAME, TESTBED_HOSTS (count) and TESTBED_ADDRS (space-separated, host 1
# first) to CMD. NAME defaults to "phyla"; give tests their own, so that runs cannot collide.
set -euo pipefail

die() { echo "testbed: $*" >&2; exit 2; }

name=phyla
rate=""

addr() {
  local i=$1
  echo "198.18.$((i / 256)).$((i % 256))"
}

need_root() {
  [[ $(id -u) -eq 0 ]] || die "needs root (network namespaces, veth, bridge, tc)"
  command -v ip >/dev/null || die "needs iproute2 (ip)"
  if [[ -n $rate ]]; then command -v tc >/dev/null || die "needs tc for --rate"; fi
}

up() {
  local n=$1
  [[ $n =~ ^[0-9]+$ ]] && ((n >= 1 && n <= 4000)) || die "host count $n: 1 to 4000"
  need_root
  # A leftover from an interrupted run would make every later step fail: start clean.
  down_quiet
  ip link add "$name-br" type bridge
  ip addr add 198.19.255.254/15 dev "$name-br"
  ip link set "$name-br" up
  local i
  for ((i = 1; i <= n; i++)); do
    local ns="$name-$i" veth="$name-v$i"
    ip netns add "$ns"
    ip link add "$veth" type veth peer name eth0 netns "$ns"
    ip link set "$veth" master "$name-br" up
    ip -n "$ns" addr add "$(addr "$i")/15" dev eth0
    ip -n "$ns" link set eth0 up
    ip -n "$ns" link set lo up
    if [[ -n $rate ]]; then
      ip netns exec "$ns" tc qdisc add dev eth0 root tbf rate "$rate" burst 64kb latency 50ms
    fi
  done
}

down_quiet() {
  local ns
  for ns in $(ip netns list 2>/dev/null | awk '{print $1}' | grep -E "^${name}-[0-9]+$" || true); do
    ip netns pids "$ns" 2>/dev/null | xargs -r kill -9 2>/dev/null || true
    ip netns del "$ns" 2>/dev/null || true
  done
  ip link del "$name-br" 2>/dev/null || true
}

down() {
  need_root
  down_quiet
}

parse_opts() {
  rest=()
  while (($#)); do
    case $1 in
      --rate) rate=${2:?--rate needs a value}; shift 2 ;;
      --name) name=${2:?--name needs a value}; shift 2 ;;
      --) shift; rest+=("--" "$@"); return ;;
      *) rest+=("$1"); shift ;;
    esac
  done
  [[ $name =~ ^[a-z][a-z0-9]{0,7}$ ]] || die "--name $name: a lowercase letter, then up to 7 letters or digits"
}

cmd=${1:-}
[[ -n $cmd ]] || die "usage: testbed.sh up|down|run|exec|addr ... (see the head of the script)"
shift
parse_opts "$@"
set -- "${rest[@]+"${rest[@]}"}"

case $cmd in
  up)
    up "${1:?up needs a host count}"
    ;;
  down)
    down
    ;;
  addr)
    addr "${1:?addr needs a host number}"
    ;;
  exec)
    host=${1:?exec needs a host number}
    shift
    [[ ${1:-} == -- ]] && shift
    (($#)) || die "exec $host: no command"
    exec ip netns exec "$name-$host" "$@"
    ;;
  run)
    n=${1:?run needs a host count}
    shift
    [[ ${1:-} == -- ]] && shift
    (($#)) || die "run: no command"
    need_root
    # Teardown runs however the command ends: success, failure, or a signal.
    trap down_quiet EXIT
    trap 'exit 130' INT TERM
    up "$n"
    addrs=""
    for ((i = 1; i <= n; i++)); do addrs+="$(addr "$i") "; done
    TESTBED_NAME=$name TESTBED_HOSTS=$n TESTBED_ADDRS=${addrs% } "$@"
    ;;
  *)
    die "unknown command $cmd"
    ;;
esac
