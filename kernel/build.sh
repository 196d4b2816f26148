#!/bin/sh
# Build the kernel by hand with the flags margay/build.rs uses (for kernel hacking).
set -e
cd "$(dirname "$0")"
f="-Ccode-model=kernel -Crelocation-model=static -Cno-redzone=yes -Cforce-frame-pointers=yes -Clink-arg=-T$PWD/linker.ld -Clink-arg=-nostartfiles -Clink-arg=-nostdlib -Clink-arg=-static -Clink-arg=-no-pie -Clink-arg=-Wl,--build-id=none -Clink-arg=-Wl,-z,max-page-size=4096"
CARGO_ENCODED_RUSTFLAGS=$(printf '%s' "$f" | tr ' ' '\037') exec cargo "${@:-build}" --release --target x86_64-unknown-linux-gnu --target-dir ../target/kernel
