#!/usr/bin/env bash
# compare.sh: qchat serve against nats-server, in one run, on this host.
#
# Each scenario runs on both servers, interleaved (qchat, NATS, qchat, NATS,
# ...), each run on a fresh server, and the medians are printed side by side
# with their ratio. Both servers are measured from /proc: CPU (user+system)
# per message or delivery, bytes written to disk, peak RSS (VmHWM).
#
#   qchat: `qchat bench --unbatched` (every MSG in a write of its own, every
#          message acknowledged by its recipient, one ACK per read) against
#          `qchat serve --limits-exempt 127.0.0.0/8 --hash-cost 4`, in clear
#          (--no-tls); the pairs scenario also over TLS (STARTTLS).
#   NATS:  `nats bench pub|sub` (natscli) against nats-server, core NATS
#          (no acknowledgement, no storage), same message size, publishers
#          and subscribers: one process per publisher and per subscriber of
#          a pair, each on a subject of its own.
#
# Scenarios: pairs (10 sender->receiver pairs), one (1 -> 1), steady (10
# pairs, 1,000 msgs/s in all), fanout (1 sender, a group of N members / N
# subscribers). Usage:
#
#   modes/bench/compare.sh [-r RUNS] [-n MESSAGES] [-s SIZE] [-m MEMBERS] [-g GROUP_MESSAGES] [SCENARIO...]
#
# Tools: QCHAT (default: qchat on PATH), NATS_SERVER (nats-server), NATS
# (nats), found on PATH or given by these variables; install with
#   go install github.com/nats-io/nats-server/v2@v2.15.2
#   go install github.com/nats-io/natscli/nats@v0.5.0
# Everything listens on 127.0.0.1 on free ports; nothing else is touched.
# It prints the machine's load average before and after: on a shared
# machine, read the figures with it.
set -euo pipefail

runs=3 msgs=200000 size=64 members=1000 gmsgs=1000 steady_s=20
while getopts "r:n:s:m:g:t:h" o; do
	case $o in
	r) runs=$OPTARG ;;
	n) msgs=$OPTARG ;;
	s) size=$OPTARG ;;
	m) members=$OPTARG ;;
	g) gmsgs=$OPTARG ;;
	t) steady_s=$OPTARG ;;
	*) sed -n '2,30p' "$0"; exit 2 ;;
	esac
done
shift $((OPTIND - 1))
scenarios=${*:-pairs one steady fanout}

QCHAT=${QCHAT:-qchat}
NATS_SERVER=${NATS_SERVER:-nats-server}
NATS=${NATS:-nats}
for t in "$QCHAT" "$NATS_SERVER" "$NATS"; do
	command -v "$t" >/dev/null || { echo "compare.sh: $t not found (see the header of $0)" >&2; exit 2; }
done

work=$(mktemp -d)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT
export HOME=$work/home # the bench's known_servers for TLS runs
mkdir -p "$HOME"

# cpu_ticks PID: user+system clock ticks (1/100 s) of a process.
cpu_ticks() { awk '{ sub(/.*\) /, ""); print $12 + $13 }' "/proc/$1/stat"; }
written() { awk '/^write_bytes:/ { print $2 }' "/proc/$1/io"; }
hwm_kib() { awk '/^VmHWM:/ { print $2 }' "/proc/$1/status"; }
waitfile() { for _ in $(seq 1 200); do [ -s "$1" ] && return 0; sleep 0.05; done; echo "compare.sh: no $1" >&2; return 1; }

# results: lines "scenario server metric value", medians taken at the end.
results=$work/results
: >"$results"
note() { echo "$1 $2 $3 $4" >>"$results"; }

start_qchat() {
	local d=$work/q$RANDOM
	mkdir -p "$d"
	"$QCHAT" serve --listen 127.0.0.1:0 --addr-file "$d/addr" --data "$d/data" --hash-cost 4 \
		--limits-exempt 127.0.0.0/8 --log-level warn 2>"$d/log" &
	qpid=$!
	pids+=("$qpid")
	waitfile "$d/addr"
	qaddr=$(cat "$d/addr")
}

start_nats() {
	local d=$work/n$RANDOM
	mkdir -p "$d"
	"$NATS_SERVER" -a 127.0.0.1 -p -1 -m -1 --ports_file_dir "$d" 2>"$d/log" &
	npid=$!
	pids+=("$npid")
	waitfile "$d/nats-server_$npid.ports"
	local ports
	ports=$(cat "$d/nats-server_$npid.ports")
	nurl=$(echo "$ports" | sed -n 's/.*"nats":\["\([^"]*\)".*/\1/p')
	nmon=$(echo "$ports" | sed -n 's/.*"monitoring":\["\([^"]*\)".*/\1/p')
}

stop() { kill "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; }

# nsubs: the subscriptions nats-server holds (its own included).
nsubs() { curl -s "$nmon/varz" | sed -n 's/.*"subscriptions": *\([0-9]*\).*/\1/p'; }

# await_subs N: waits until N more subscriptions than base are there
# (every subscriber subscribed before anyone publishes).
await_subs() {
	for _ in $(seq 1 1200); do
		[ "$(nsubs)" -ge $((base + $1)) ] && return 0
		sleep 0.05
	done
	echo "compare.sh: the NATS subscribers did not subscribe" >&2
	return 1
}

json() { sed -n "s/.*\"$2\":\([0-9.e+-]*\).*/\1/p" <<<"$1" | head -1; }
fmt() { awk -v v="$1" -v f="$2" 'BEGIN { printf f, v }'; }

# qchat_run SCENARIO [bench flags...]
qchat_run() {
	local sc=$1
	shift
	start_qchat
	local w0 out
	w0=$(written "$qpid")
	out=$("$QCHAT" bench --server "$qaddr" --pid "$qpid" --prefix "c$RANDOM" --size "$size" --unbatched --json "$@" 2>"$work/bench.err") ||
		{ echo "compare.sh: qchat bench failed: $(tail -3 "$work/bench.err")" >&2; stop "$qpid"; return 1; }
	case $sc in
	fanout*)
		note "$sc" qchat per_s "$(fmt "$(json "$out" deliveries_per_s)" %.0f)"
		note "$sc" qchat us "$(fmt "$(json "$out" server_us_per_delivery)" %.3f)"
		note "$sc" qchat disk "$(json "$out" server_disk_written)"
		note "$sc" qchat peak_mib "$(awk -v k="$(hwm_kib "$qpid")" 'BEGIN { printf "%.1f", k / 1024 }')"
		;;
	*)
		note "$sc" qchat per_s "$(fmt "$(json "$out" msgs_per_s)" %.0f)"
		note "$sc" qchat us "$(fmt "$(json "$out" server_us_per_msg)" %.3f)"
		note "$sc" qchat disk "$(json "$out" server_disk_written)"
		note "$sc" qchat cpu_pct "$(awk -v c="$(json "$out" server_cpu_s)" -v e="$(json "$out" elapsed_s)" 'BEGIN { printf "%.1f", 100 * c / e }')"
		;;
	esac
	stop "$qpid"
}

# nats_pairs SCENARIO PAIRS MESSAGES [pub flags...]
nats_pairs() {
	local sc=$1 pairs=$2 n=$3
	shift 3
	start_nats
	local per=$((n / pairs)) subs=() i base
	base=$(nsubs)
	for i in $(seq 1 "$pairs"); do
		timeout 600 "$NATS" bench sub "p$i" --msgs "$per" --size "$size" --no-progress -s "$nurl" >"$work/sub$i" 2>&1 &
		subs+=($!)
	done
	await_subs "$pairs"
	local c0 w0 t0 t1 pubs=()
	c0=$(cpu_ticks "$npid")
	w0=$(written "$npid")
	t0=$(date +%s.%N)
	for i in $(seq 1 "$pairs"); do
		timeout 600 "$NATS" bench pub "p$i" --msgs "$per" --size "$size" --no-progress -s "$nurl" "$@" >"$work/pub$i" 2>&1 &
		pubs+=($!)
	done
	wait "${pubs[@]}" "${subs[@]}"
	t1=$(date +%s.%N)
	local c1 w1
	c1=$(cpu_ticks "$npid")
	w1=$(written "$npid")
	local total=$((per * pairs))
	note "$sc" nats per_s "$(awk -v n=$total -v a="$t0" -v b="$t1" 'BEGIN { printf "%.0f", n / (b - a) }')"
	note "$sc" nats us "$(awk -v c=$((c1 - c0)) -v n=$total 'BEGIN { printf "%.3f", c * 10000 / n }')"
	note "$sc" nats disk $((w1 - w0))
	note "$sc" nats cpu_pct "$(awk -v c=$((c1 - c0)) -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", c / (b - a) }')"
	stop "$npid"
}

# nats_fanout SCENARIO MEMBERS MESSAGES
nats_fanout() {
	local sc=$1 m=$2 n=$3
	start_nats
	local base
	base=$(nsubs)
	timeout 600 "$NATS" bench sub fan --clients "$m" --msgs "$n" --size "$size" --no-progress -s "$nurl" >"$work/fsub" 2>&1 &
	local sub=$!
	await_subs "$m"
	local c0 w0 t0 t1
	c0=$(cpu_ticks "$npid")
	w0=$(written "$npid")
	t0=$(date +%s.%N)
	"$NATS" bench pub fan --msgs "$n" --size "$size" --no-progress -s "$nurl" >"$work/fpub" 2>&1
	wait "$sub"
	t1=$(date +%s.%N)
	local c1 w1 d=$((n * m))
	c1=$(cpu_ticks "$npid")
	w1=$(written "$npid")
	note "$sc" nats per_s "$(awk -v n=$d -v a="$t0" -v b="$t1" 'BEGIN { printf "%.0f", n / (b - a) }')"
	note "$sc" nats us "$(awk -v c=$((c1 - c0)) -v n=$d 'BEGIN { printf "%.3f", c * 10000 / n }')"
	note "$sc" nats disk $((w1 - w0))
	note "$sc" nats peak_mib "$(awk -v k="$(hwm_kib "$npid")" 'BEGIN { printf "%.1f", k / 1024 }')"
	stop "$npid"
}

echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)  ($(nproc) cores)"
echo "runs $runs, messages $msgs of $size bytes, fan-out $members members x $gmsgs messages; scenarios: $scenarios"
for r in $(seq 1 "$runs"); do
	for sc in $scenarios; do
		echo "run $r: $sc" >&2
		case $sc in
		pairs)
			qchat_run pairs --pairs 10 --messages "$msgs" --no-tls
			nats_pairs pairs 10 "$msgs"
			qchat_run pairs-tls --pairs 10 --messages "$msgs"
			;;
		one)
			qchat_run one --pairs 1 --messages $((msgs / 4)) --no-tls
			nats_pairs one 1 $((msgs / 4))
			;;
		steady)
			qchat_run steady --pairs 10 --messages $((1000 * steady_s)) --rate 1000 --no-tls
			nats_pairs steady 10 $((1000 * steady_s)) --throughput 100 # 100 per publisher, 1,000 in all
			;;
		fanout)
			qchat_run "fanout" --pairs 0 --group-members "$members" --group-messages "$gmsgs" --no-tls
			nats_fanout "fanout" "$members" "$gmsgs"
			;;
		*) echo "compare.sh: unknown scenario $sc" >&2; exit 2 ;;
		esac
	done
done
echo "load average after:  $(cut -d' ' -f1-3 /proc/loadavg)"

# Medians, side by side.
median() { sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) print "-"; else if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
get() { awk -v s="$1" -v v="$2" -v m="$3" '$1 == s && $2 == v && $3 == m { print $4 }' "$results" | median; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "-" || b == "-" || b == 0) print "-"; else printf "%.2f", a / b }'; }
echo
printf "%-10s | %-22s | %12s | %12s | %6s | %12s | %12s | %12s | %12s\n" scenario "what" "qchat" "nats" "÷ nats" "qchat disk" "nats disk" "qchat extra" "nats extra"
for sc in pairs pairs-tls one steady fanout; do
	grep -q "^$sc " "$results" || continue
	base=$sc
	[ "$sc" = pairs-tls ] && base=pairs
	per="msgs/s"
	item="µs CPU/msg"
	extra=cpu_pct
	case $sc in fanout) per="deliveries/s"; item="µs CPU/delivery"; extra=peak_mib ;; esac
	qd=$(get "$sc" qchat disk)
	nd=$(get "$base" nats disk)
	qx=$(get "$sc" qchat $extra)
	nx=$(get "$base" nats $extra)
	[ "$extra" = cpu_pct ] && { qx="$qx% CPU"; nx="$nx% CPU"; } || { qx="$qx MiB peak"; nx="$nx MiB peak"; }
	q=$(get "$sc" qchat us)
	n=$(get "$base" nats us)
	printf "%-10s | %-22s | %12s | %12s | %6s | %12s | %12s | %12s | %12s\n" "$sc" "$item" "$q" "$n" "$(ratio "$q" "$n")" "$qd" "$nd" "$qx" "$nx"
	q=$(get "$sc" qchat per_s)
	n=$(get "$base" nats per_s)
	printf "%-10s | %-22s | %12s | %12s | %6s |\n" "" "$per" "$q" "$n" "$(ratio "$q" "$n")"
done
