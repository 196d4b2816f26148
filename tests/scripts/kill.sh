# Signals between LWK processes: a shell kills a background child and signals a subshell with a trap.
# Each child says through a FIFO when it is ready for its signal (no sleeps).
d=$(/bin/busybox mktemp -d) && /bin/busybox mkfifo "$d/ready" || exit 1
( echo > "$d/ready"; exec /bin/busybox sleep 5 ) & p=$!
read -r _ < "$d/ready"
kill -TERM $p
wait $p; echo "killed child status $?"
trap 'echo child got USR1' USR1
( trap 'echo sub got USR1; exit 9' USR1; echo > "$d/ready"; while :; do /bin/busybox sleep 0.05; done ) & q=$!
read -r _ < "$d/ready"
kill -USR1 $q; wait $q; echo "sub status $?"
/bin/busybox rm -r "$d"
