# A peer of the network pushes a newer version of the model whose signature
# is random, and another signed by a key nobody trusts, advertises both in
# its digest and says it holds all their chunks. Neither may be stored or
# forwarded: not by the node under test, not by a node behind it. Each
# forgery drops the peer and counts against it; the third bans it (the
# untrusted signer counts nothing: an honest node of another network may
# relay such a manifest), and it is refused at the handshake from then on.
# Node c behind b never sees a forgery, so it bans no one. The node must
# stay up and complete the genuine version from an honest peer.
. "$FERRY_SRCDIR/tests/hostile/hlib.sh"

hostile_setup 8
node_make c "models.want=*" "peers.peer=$(addr_of b)"
node_start b
node_start c
rss_watch b

say "forged manifests (bad signature, untrusted signer) pushed to b, four times"
evil_start evil b forged-manifest --store "$T/evil/state" --model llm --repeat 4 --gap 300 \
	--hold 5000
evil_wait evil
eid=$(evil_id evil)
n=$(grep -c "refused a manifest.* from peer $eid: manifest signature by publisher" "$T/b/log" || true)
[ "$n" -eq 3 ] || fail "b's log reports $n forged manifests from $eid, expected one on each of 3 connections"
grep -q "refused a manifest.* from peer $eid: manifest is signed by publisher .*, which is not trusted" \
	"$T/b/log" || fail "b's log does not report the manifest of the untrusted signer"
grep "refused a manifest.* from peer $eid" "$T/b/log" | sort -u | head -n 2 | sed 's/^/# /'
[ $(($(evil_val evil dropped) + $(evil_val evil refused))) -eq 4 ] ||
	fail "b kept a connection of the forger: $(grep summary "$T/evil.evil")"
[ "$(refusals b "$eid")" -eq 1 ] || fail "b refused the banned forger $(refusals b "$eid") times, not once"
ban_check b "$eid" "a forged manifest"
for v in 1001 2001; do
	has_manifest b llm "$v" && fail "b stored the forged llm@$v"
	has_manifest c llm "$v" && fail "the forged llm@$v reached c through b"
done
grep -q "refused a manifest" "$T/c/log" && fail "b relayed a manifest that c refused"
grep -q "banning peer" "$T/c/log" && fail "c banned its honest relay b"
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
