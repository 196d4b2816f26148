# Signals between LWK processes: a shell kills a background child and signals a subshell with a trap.
/bin/busybox sleep 5 & p=$!
/bin/busybox sleep 0.3
kill -TERM $p
wait $p; echo "killed child status $?"
trap 'echo child got USR1' USR1
( trap 'echo sub got USR1; exit 9' USR1; while :; do /bin/busybox sleep 0.05; done ) & q=$!
/bin/busybox sleep 0.3
kill -USR1 $q; wait $q; echo "sub status $?"
