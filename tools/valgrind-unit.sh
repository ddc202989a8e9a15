#!/bin/sh
# The LOG_COMPILER of `make check-valgrind` (mk/harden.am): run one unit test
# under valgrind's memcheck. Any memory error (an invalid read or write, a
# jump on an uninitialised value, a bad free) or a definitely lost block
# fails the test; blocks still reachable at exit (libsodium's and LMDB's
# process-wide state) do not. valgrind.supp next to this script lists the
# false positives, each with its reason. docs/testing.md, "Valgrind".
here=$(cd "$(dirname "$0")" && pwd)
exec valgrind -q --error-exitcode=1 --leak-check=full --errors-for-leak-kinds=definite \
	--show-leak-kinds=definite --suppressions="$here/valgrind.supp" "$@"
