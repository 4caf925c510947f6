#!/usr/bin/env bash
# Compiles the Unity package's C# sources and the tests with Mono's mcs, and runs them
# against libbaton.so.
set -euo pipefail
cd "$(dirname "$0")/../.."
target=${CARGO_TARGET_DIR:-target}
cargo build -q -p baton-ffi
out=$target/bindings-csharp
mkdir -p "$out"
mcs -warnaserror -out:"$out/SessionTests.exe" \
    bindings/csharp/com.baton.sdk/Runtime/*.cs bindings/csharp/tests/SessionTests.cs
LD_LIBRARY_PATH="$(realpath "$target/debug")" mono --debug "$out/SessionTests.exe"
