# A peer of the network pushes a newer version of the model whose signature
# is random, and another signed by a key nobody trusts, advertises both in
# its digest and says it holds all their chunks. Neither may be stored or
# forwarded: not by the node under test, not by a node behind it. The node
# must stay up and complete the genuine version from an honest peer.
. "$FERRY_SRCDIR/tests/hostile/hlib.sh"

hostile_setup 8
node_make c "models.want=*" "peers.peer=$(addr_of b)"
node_start b
node_start c
rss_watch b

say "forged manifests (bad signature, untrusted signer) pushed to b, three times"
evil_start evil b forged-manifest --store "$T/evil/state" --model llm --repeat 3 --gap 300 \
	--hold 5000
evil_wait evil
eid=$(evil_id evil)
n=$(grep -c "refused a manifest.* from peer $eid" "$T/b/log" || true)
[ "$n" -ge 2 ] || fail "b's log reports $n refused manifests from $eid, expected both forgeries"
grep "refused a manifest.* from peer $eid" "$T/b/log" | sort -u | head -n 2 | sed 's/^/# /'
for v in 1001 2001; do
	has_manifest b llm "$v" && fail "b stored the forged llm@$v"
	has_manifest c llm "$v" && fail "the forged llm@$v reached c through b"
done
alive b

say "the honest seed a arrives: b and c complete the genuine version"
node_start a
wait_log b "model llm version 1 complete" 60
wait_log c "model llm version 1 complete" 60
alive b
rss_check b
for n in a b c; do node_stop "$n"; done
export_check b llm@1 "$T/model"
export_check c llm@1 "$T/model"
store_verify b
