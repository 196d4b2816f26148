#!/bin/sh
# Run cargo on the kernel with the flags margay/build.rs uses, e.g.
#   kernel/build.sh            (build)
#   kernel/build.sh clippy -- -D warnings
set -e
cd "$(dirname "$0")"
cmd=${1:-build}
[ $# -gt 0 ] && shift
f="-Ccode-model=kernel -Crelocation-model=static -Cno-redzone=yes -Cforce-frame-pointers=yes -Clink-arg=-T$PWD/linker.ld -Clink-arg=-nostartfiles -Clink-arg=-nostdlib -Clink-arg=-static -Clink-arg=-no-pie -Clink-arg=-Wl,--build-id=none -Clink-arg=-Wl,-z,max-page-size=4096"
CARGO_ENCODED_RUSTFLAGS=$(printf '%s' "$f" | tr ' ' '\037') exec cargo "$cmd" --release --target x86_64-unknown-linux-gnu --target-dir ../target/kernel "$@"
