#!/bin/sh
# Repeats the 30-process run the lost connections were first seen in: 30
# separate gale serve processes on 30 ports, each given PER idle
# connections by its own gale bench idle (3 source addresses each, its own),
# all at once; then the kernel's counters and every bench's result.
# usage: docs/scale/repro-30.sh GALE PER HOLD OUTDIR
set -u
gale=$1 per=$2 hold=$3 out=$4
mkdir -p "$out"
nstat -n
pids=""
for i in $(seq 0 29); do
	port=$((31000 + i))
	"$gale" serve -addr 127.0.0.1:$port >/dev/null 2>"$out/serve-$i.err" &
	pids="$pids $!"
	echo $! >"$out/serve-$i.pid"
done
sleep 2
bpids=""
for i in $(seq 0 29); do
	port=$((31000 + i))
	"$gale" bench idle -url ws://127.0.0.1:$port/ -conns "$per" -sources 3 -first-source $((2 + 3 * i)) \
		-duration "$hold" -pid "$(cat "$out/serve-$i.pid")" -json >"$out/bench-$i.json" 2>"$out/bench-$i.err" &
	bpids="$bpids $!"
done
for p in $bpids; do wait "$p"; done
nstat >"$out/nstat.txt"
cat /proc/net/sockstat >"$out/sockstat.txt"
for p in $pids; do kill -TERM "$p"; done
for p in $pids; do wait "$p"; done
