# A shell script exercising what scripts on the LWK need: pipelines, $(...),
# subshells, here-documents, loops, traps, background jobs with wait, exit statuses.
set -u
echo "pipeline: $(seq 1 10000 | sort -r | head -3 | tr '\n' ' ')"
x=$(echo sub | tr a-z A-Z); echo "subst: $x"
( echo "subshell $((6*7))" )
while read -r a b; do echo "heredoc $a-$b"; done <<END
one two
three four
END
for i in 1 2 3; do printf '%s,' "$i"; done; echo
trap 'echo trapped USR1' USR1
kill -USR1 $$
sleep 0.2 & p1=$!
(exit 3) & p2=$!
wait $p1; echo "bg1 $?"
wait $p2; echo "bg2 $?"
false; echo "false gives $?"
/bin/busybox sh -c 'exit 7'; echo "child exit $?"
echo done
