# An orphan: the subshell exits while its background child still runs;
# the child (reparented, as on Linux) still prints before the script ends.
( ( sleep 0.3; echo grandchild done ) & echo subshell exits )
sleep 2
echo main done
