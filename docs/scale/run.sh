#!/bin/sh
# Runs one step of the scale measurement: gale serve -procs PROCS on one
# port, gale bench idle with CONNS connections held for HOLD, then tears
# everything down. Writes OUT.json (the bench's result) and OUT.txt (the
# table, the kernel's counters and the supervisor's log).
# usage: [SERVE_FLAGS=...] docs/scale/run.sh GALE CONNS PROCS HOLD OUT [bench flags...]
set -eu
gale=$1 conns=$2 procs=$3 hold=$4 out=$5
shift 5
port=$((20000 + $$ % 10000))
"$gale" serve -addr 127.0.0.1:$port -procs "$procs" -loops 1 -stats 0 ${SERVE_FLAGS:-} >"$out.serve.out" 2>"$out.serve.err" &
sv=$!
trap 'kill -TERM $sv 2>/dev/null; wait $sv 2>/dev/null || true' EXIT
sleep 1
nstat -n
{
	echo "## $conns connections, $procs worker processes, hold $hold, serve flags: ${SERVE_FLAGS:-(defaults: -ping 30s -idle-timeout 60s)}"
	echo "machine: $(nproc) CPUs, $(free -g | awk '/Mem:/{print $2}') GiB; load before: $(cut -d' ' -f1-3 /proc/loadavg)"
} >"$out.txt"
"$gale" bench idle -url ws://127.0.0.1:$port/ -conns "$conns" -duration "$hold" -settle 5s \
	-pid $sv -parallel 4 -json "$@" >"$out.json" || echo "bench exit status $?" >>"$out.txt"
{
	echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
	echo '### nstat (changes during the run; loss-related counters)'
	nstat | grep -iE 'ListenOverflows|ListenDrops|SynRetrans|TCPReqQFullDrop|TCPReqQFullDoCookies|SyncookiesSent|TCPMemoryPressures|TCPAbortOnMemory|TCPAbortOnTimeout|TCPAbortOnData|TCPAbortOnClose|TCPTimeouts|OutOfWindowIcmps|TCPRcvQDrop|PruneCalled|TCPBacklogDrop|TCPOrphan|EmbryonicRsts|AttemptFails|EstabResets|RetransSegs' || true
} >>"$out.txt"
kill -TERM $sv
wait $sv || echo "supervisor exit status $?" >>"$out.txt"
trap - EXIT
echo '### supervisor log (last lines)' >>"$out.txt"
tail -n 3 "$out.serve.err" >>"$out.txt"
