#!/bin/sh
# Under CONNS connections held by clients that reconnect when the server
# closes them (gale bench idle -reconnect), either kills one worker with
# SIGKILL (kill) or reloads the supervisor with SIGHUP (reload), and
# reports what the clients saw (OUT.json) and what the supervisor logged.
# usage: docs/scale/restart.sh GALE kill|reload CONNS PROCS DRAIN OUT [HOLD]
# HOLD (default 45s) is how long the clients hold their connections once all
# are open; a reload's drain and the redials must fit in it.
set -eu
gale=$1 what=$2 conns=$3 procs=$4 drain=$5 out=$6 hold=${7:-45s}
port=$((20000 + $$ % 10000))
: >"$out.serve.err" # appended to by the server and by this script alike
"$gale" serve -addr 127.0.0.1:$port -procs "$procs" -loops 1 -stats 0 -drain "$drain" >/dev/null 2>>"$out.serve.err" &
sv=$!
trap 'kill -TERM $sv 2>/dev/null; wait $sv 2>/dev/null || true' EXIT
sleep 1
"$gale" bench idle -url ws://127.0.0.1:$port/ -conns "$conns" -duration "$hold" -settle 1s -pid $sv -reconnect -json >"$out.json" &
bench=$!
# Wait until every connection is open (the supervisor's summed counters).
while :; do
	sleep 1
	kill -USR1 $sv
	sleep 0.2
	open=$(grep -o 'open=[0-9]*' "$out.serve.err" | tail -1 | cut -d= -f2)
	[ "${open:-0}" -ge "$conns" ] && break
done
sleep 3
case $what in
kill)
	victim=$(cat /proc/$sv/task/*/children | tr ' ' '\n' | grep . | head -1)
	echo "killing worker $victim with SIGKILL at $(date +%T.%N)" >>"$out.serve.err"
	kill -KILL "$victim"
	;;
reload)
	echo "SIGHUP at $(date +%T.%N)" >>"$out.serve.err"
	kill -HUP $sv
	;;
esac
wait $bench || echo "bench exit status $?" >>"$out.serve.err"
kill -USR1 $sv
sleep 0.3
