#!/usr/bin/env bash
# Phyla testbed: N hosts as network namespaces on one bridge, addressed from the benchmarking
# range 198.18.0.0/15, with optional per-host tbf rate limits, optionally a phyla-node daemon in
# every host. Needs root, iproute2 and tc. docs/testbed.md describes all of it.
#
#   tools/testbed/testbed.sh up N [--rate RATE] [--name NAME] [NODES]   create hosts 1..N
#   tools/testbed/testbed.sh down [--name NAME] [--dir DIR] [--grace S]  stop daemons, remove hosts
#   tools/testbed/testbed.sh run N [--rate RATE] [--name NAME] [NODES] -- CMD [ARG...]
#        create, run CMD in the root namespace with the hosts described in the environment,
#        and tear everything down (daemons first) when CMD ends, fails or is interrupted
#   tools/testbed/testbed.sh exec I [--name NAME] -- CMD [ARG...]   run CMD inside host I
#   tools/testbed/testbed.sh addr I                                 print host I's address
#   tools/testbed/testbed.sh kill I [--name NAME] [--dir DIR]       SIGKILL host I's daemon
#
# NODES: --nodes TEMPLATE --dir DIR [--node I[,J...]=TEMPLATE]... [--node-bin PATH] [--port P]
#        [--stagger MS] [--grace S]
#   writes DIR/NAME-I.toml for every host from TEMPLATE (or the --node template given for I),
#   replacing {{NAME}} (NAME-I), {{I}}, {{ADDR}}, {{PORT}}, {{CONTACT}} (host 1's address),
#   {{CONTACTS}} ([] on host 1, ["ADDR1:PORT"] elsewhere) and {{DIR}}, then runs
#   `ip netns exec NAME-I phyla-node --config DIR/NAME-I.toml` in every host, host 1 first and
#   MS (300) apart, standard output to DIR/NAME-I.log, standard error to DIR/NAME-I.err, pid in
#   DIR/NAME-I.pid, and waits for each one's `started` line. PATH defaults to the newer of
#   target/release/phyla-node and target/debug/phyla-node; P to 7400.
#   Stopping (down, and run's teardown) sends SIGTERM to everything in the hosts, waits up to
#   S seconds (5) for it to exit, then sends SIGKILL, and only then deletes the namespaces.
#
# Host I (1 <= I <= 4000) is namespace NAME-I with interface eth0 at 198.18.(I/256).(I%256)/15;
# its peer veth NAME-vI sits on bridge NAME-br, which holds 198.19.255.254/15 so that the root
# namespace reaches every host. RATE is a tc rate (for example 100mbit) applied as a tbf qdisc on
# every host's eth0: each host's sending is limited, as an uplink would be.
# `run` exports TESTBED_NAME, TESTBED_HOSTS (count) and TESTBED_ADDRS (space-separated, host 1
# first) to CMD, and TESTBED_DIR with --dir. NAME defaults to "phyla"; give tests their own, so
# that runs cannot collide.
set -euo pipefail

die() { echo "testbed: $*" >&2; exit 2; }

name=phyla
rate=""
# Daemons (--nodes): the default template, per-host templates, and where their files go.
nodes=""
declare -A host_template=()
dir=""
node_bin=""
port=7400
stagger_ms=300
grace=5

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

# The testbed's namespaces, by host number.
namespaces() {
  ip netns list 2>/dev/null | awk '{print $1}' | grep -E "^${name}-[0-9]+$" | sort -t- -k2 -n || true
}

# Whether process $1 runs (a zombie, which nobody may reap here, does not).
alive() {
  local stat
  stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
  stat=${stat##*) }
  [[ ${stat%% *} != Z ]]
}

# Stops everything that runs in the testbed's hosts: SIGTERM (a phyla-node then writes its final
# reports and exits), up to $grace seconds to exit, then SIGKILL.
stop_all() {
  local ns pid pids=()
  for ns in $(namespaces); do
    for pid in $(ip netns pids "$ns" 2>/dev/null || true); do pids+=("$pid"); done
  done
  ((${#pids[@]})) || return 0
  kill -TERM "${pids[@]}" 2>/dev/null || true
  local waited=0 left
  while :; do
    left=()
    for pid in "${pids[@]}"; do
      if alive "$pid"; then left+=("$pid"); fi
    done
    ((${#left[@]})) || break
    if ((waited >= grace * 10)); then
      echo "testbed: still running after ${grace}s, SIGKILL: ${left[*]}" >&2
      kill -KILL "${left[@]}" 2>/dev/null || true
      break
    fi
    sleep 0.1
    waited=$((waited + 1))
  done
}

down_quiet() {
  stop_all
  local ns
  for ns in $(namespaces); do
    ip netns pids "$ns" 2>/dev/null | xargs -r kill -9 2>/dev/null || true
    ip netns del "$ns" 2>/dev/null || true
  done
  ip link del "$name-br" 2>/dev/null || true
  # Pid files of daemons that were killed (a daemon that exits cleanly removes its own).
  if [[ -n $dir && -d $dir ]]; then
    rm -f "$dir/$name"-[0-9]*.pid
  fi
}

down() {
  need_root
  down_quiet
}

# The phyla-node binary: --node-bin, else the newer of the workspace's release and debug builds.
find_node_bin() {
  if [[ -n $node_bin ]]; then
    [[ -x $node_bin ]] || die "--node-bin $node_bin: not an executable file"
    return
  fi
  local root release debug
  root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
  release=$root/target/release/phyla-node
  debug=$root/target/debug/phyla-node
  if [[ -x $release && ( ! -x $debug || $release -nt $debug ) ]]; then
    node_bin=$release
  elif [[ -x $debug ]]; then
    node_bin=$debug
  else
    die "no phyla-node in $root/target/{release,debug}: run cargo build -p phyla-tools, or give --node-bin"
  fi
}

# Checks the daemon options before anything is created.
check_nodes() {
  local n=$1 key
  if [[ -z $nodes ]]; then
    ((${#host_template[@]} == 0)) || die "--node needs --nodes (the template of the other hosts)"
    [[ -z $node_bin ]] || die "--node-bin needs --nodes"
    return 0
  fi
  [[ -n $dir ]] || die "--nodes needs --dir (configurations, logs and pid files go there)"
  for key in "${!host_template[@]}"; do
    ((key >= 1 && key <= n)) || die "--node $key: no such host (1 to $n)"
  done
  for key in "$nodes" "${host_template[@]}"; do
    [[ -r $key ]] || die "template $key: not readable"
  done
  [[ $port =~ ^[0-9]+$ ]] && ((port >= 1 && port <= 65535)) || die "--port $port: 1 to 65535"
  find_node_bin
}

# Host $1's configuration: its template with the placeholders replaced.
render() {
  local i=$1 t contacts
  t=$(<"${host_template[$i]:-$nodes}")
  if ((i == 1)); then contacts="[]"; else contacts="[\"$(addr 1):$port\"]"; fi
  t=${t//"{{NAME}}"/"$name-$i"}
  t=${t//"{{I}}"/"$i"}
  t=${t//"{{ADDR}}"/"$(addr "$i")"}
  t=${t//"{{PORT}}"/"$port"}
  t=${t//"{{CONTACTS}}"/"$contacts"}
  t=${t//"{{CONTACT}}"/"$(addr 1)"}
  t=${t//"{{DIR}}"/"$dir"}
  if [[ $t =~ \{\{[A-Za-z_]*\}\} ]]; then
    echo "testbed: template ${host_template[$i]:-$nodes}: unknown placeholder ${BASH_REMATCH[0]}" >&2
    return 1
  fi
  printf '%s\n' "$t"
}

# Starts a phyla-node in each of hosts 1..$1 and waits for every one's `started` line.
start_nodes() {
  local n=$1 i
  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd)
  for ((i = 1; i <= n; i++)); do
    render "$i" >"$dir/$name-$i.toml" || return 1
  done
  for ((i = 1; i <= n; i++)); do
    local host="$name-$i"
    if ((i > 1 && stagger_ms > 0)); then sleep "$(printf '%d.%03d' $((stagger_ms / 1000)) $((stagger_ms % 1000)))"; fi
    # `ip netns exec` execs the daemon, so $! is the daemon's pid (it writes the same file).
    ip netns exec "$host" "$node_bin" --config "$dir/$host.toml" \
      </dev/null >"$dir/$host.log" 2>"$dir/$host.err" &
    echo $! >"$dir/$host.pid"
  done
  for ((i = 1; i <= n; i++)); do
    local host="$name-$i" pid waited=0
    pid=$(<"$dir/$host.pid")
    until grep -q '"event":"started"' "$dir/$host.log" 2>/dev/null; do
      if ! alive "$pid" || ((waited >= 300)); then
        echo "testbed: $host's phyla-node did not start: $(tail -n 3 "$dir/$host.err" 2>/dev/null)" >&2
        return 1
      fi
      sleep 0.1
      waited=$((waited + 1))
    done
  done
}

# SIGKILLs host $1's daemon (every process of the host without --dir or a pid file), waits until
# it is gone, and prints `killed PID at TS_MS`.
kill_host() {
  local i=$1 ns="$name-$1" pids=() pid
  [[ $i =~ ^[0-9]+$ ]] || die "kill $i: not a host number"
  need_root
  ip netns list 2>/dev/null | awk '{print $1}' | grep -qx "$ns" || die "kill $i: no host $ns"
  if [[ -n $dir && -r $dir/$ns.pid ]]; then
    pid=$(<"$dir/$ns.pid")
    # The pid must still be the host's process, not a reused number.
    if [[ $pid =~ ^[0-9]+$ ]] && [[ $(ip netns identify "$pid" 2>/dev/null) == "$ns" ]]; then pids+=("$pid"); fi
  else
    for pid in $(ip netns pids "$ns" 2>/dev/null || true); do pids+=("$pid"); done
  fi
  ((${#pids[@]})) || { echo "testbed: kill $i: nothing runs in $ns" >&2; exit 1; }
  kill -KILL "${pids[@]}"
  local ts
  ts=$(date +%s%3N)
  for pid in "${pids[@]}"; do
    while alive "$pid"; do sleep 0.01; done
  done
  [[ -z $dir ]] || rm -f "$dir/$ns.pid"
  echo "killed ${pids[*]} at $ts"
}

parse_opts() {
  rest=()
  while (($#)); do
    case $1 in
      --rate) rate=${2:?--rate needs a value}; shift 2 ;;
      --name) name=${2:?--name needs a value}; shift 2 ;;
      --nodes) nodes=${2:?--nodes needs a template file}; shift 2 ;;
      --node)
        local spec=${2:?--node needs I[,J...]=TEMPLATE} hosts h
        [[ $spec =~ ^([0-9]+(,[0-9]+)*)=(.+)$ ]] || die "--node $spec: expected I[,J...]=TEMPLATE"
        hosts=${BASH_REMATCH[1]}
        for h in ${hosts//,/ }; do host_template[$((10#$h))]=${BASH_REMATCH[3]}; done
        shift 2
        ;;
      --dir) dir=${2:?--dir needs a directory}; shift 2 ;;
      --node-bin) node_bin=${2:?--node-bin needs a path}; shift 2 ;;
      --port) port=${2:?--port needs a number}; shift 2 ;;
      --stagger) stagger_ms=${2:?--stagger needs milliseconds}; shift 2 ;;
      --grace) grace=${2:?--grace needs seconds}; shift 2 ;;
      --) shift; rest+=("--" "$@"); return ;;
      *) rest+=("$1"); shift ;;
    esac
  done
  [[ $name =~ ^[a-z][a-z0-9]{0,7}$ ]] || die "--name $name: a lowercase letter, then up to 7 letters or digits"
  [[ $stagger_ms =~ ^[0-9]+$ ]] || die "--stagger $stagger_ms: milliseconds"
  [[ $grace =~ ^[0-9]+$ ]] || die "--grace $grace: whole seconds"
}

cmd=${1:-}
[[ -n $cmd ]] || die "usage: testbed.sh up|down|run|exec|addr|kill ... (see the head of the script)"
shift
parse_opts "$@"
set -- "${rest[@]+"${rest[@]}"}"

case $cmd in
  up)
    n=${1:?up needs a host count}
    check_nodes "$n"
    up "$n"
    if [[ -n $nodes ]] && ! start_nodes "$n"; then
      # A half-started testbed is no use: leave nothing behind.
      down_quiet
      exit 1
    fi
    ;;
  down)
    down
    ;;
  addr)
    addr "${1:?addr needs a host number}"
    ;;
  kill)
    kill_host "${1:?kill needs a host number}"
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
    check_nodes "$n"
    # Teardown runs however the command ends: success, failure, or a signal.
    trap down_quiet EXIT
    trap 'exit 130' INT TERM
    up "$n"
    if [[ -n $nodes ]]; then start_nodes "$n" || exit 1; fi
    addrs=""
    for ((i = 1; i <= n; i++)); do addrs+="$(addr "$i") "; done
    if [[ -n $dir ]]; then export TESTBED_DIR=$dir; fi
    TESTBED_NAME=$name TESTBED_HOSTS=$n TESTBED_ADDRS=${addrs% } "$@"
    ;;
  *)
    die "unknown command $cmd"
    ;;
esac
