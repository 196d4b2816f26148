# An orphan: the subshell exits while its background child still runs;
# the child (reparented, as on Linux) still prints before the script ends.
# FIFOs order the steps instead of sleeps: the grandchild prints only once
# the subshell has exited, and the script ends only once it has printed.
d=$(/bin/busybox mktemp -d) && /bin/busybox mkfifo "$d/go" "$d/done" || exit 1
( ( read -r _ < "$d/go"; echo grandchild done; echo > "$d/done" ) & echo subshell exits )
echo > "$d/go"
read -r _ < "$d/done"
/bin/busybox rm -r "$d"
echo main done
