#!/usr/bin/env bash
# Builds libbaton, then the C examples and test suite against ffi/include/baton.h with
# -Wall -Wextra -Werror, linked both shared and static; runs the suite under
# AddressSanitizer, the bad-input part under valgrind too, and the examples.
set -euo pipefail
cd "$(dirname "$0")/../.."
target=${CARGO_TARGET_DIR:-target}
cargo build -q -p baton-ffi
lib=$target/debug
out=$target/bindings-c
mkdir -p "$out"
flags=(-std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -g -Iffi/include -Ibindings/c)
shared=(-L"$lib" -lbaton -Wl,-rpath,"$(realpath "$lib")")
static=("$lib/libbaton.a" -lpthread -ldl -lm)
src=(bindings/c/territory.c)

echo "-- C: test suite (shared library, AddressSanitizer)"
gcc "${flags[@]}" -fsanitize=address,undefined -fno-omit-frame-pointer \
    bindings/c/tests/test_baton.c "${src[@]}" "${shared[@]}" -o "$out/test_baton_asan"
ASAN_OPTIONS=detect_leaks=1 "$out/test_baton_asan"

echo "-- C: bad input under valgrind (static library)"
gcc "${flags[@]}" bindings/c/tests/test_baton.c "${src[@]}" "${static[@]}" -o "$out/test_baton_static"
if command -v valgrind >/dev/null; then
    valgrind -q --error-exitcode=1 --leak-check=full --show-possibly-lost=no --errors-for-leak-kinds=definite \
        "$out/test_baton_static" bad-input
else
    echo "valgrind missing: the bad-input suite runs without it" >&2
    "$out/test_baton_static" bad-input
fi

echo "-- C: examples (static and shared)"
gcc "${flags[@]}" bindings/c/examples/recipe.c "${shared[@]}" -o "$out/recipe"
"$out/recipe"
gcc "${flags[@]}" bindings/c/examples/territory.c "${src[@]}" "${static[@]}" -o "$out/territory"
"$out/territory"
