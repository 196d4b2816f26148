#!/usr/bin/env bash
# Install the Debian packages Margay and its tests need (idempotent).
set -euo pipefail
need=()
command -v qemu-system-x86_64 >/dev/null || need+=(qemu-system-x86)
[ -x /bin/busybox ] || need+=(busybox-static)
[ -x /bin/bash-static ] || need+=(bash-static)
[ -x /usr/bin/python3 ] || need+=(python3)
command -v gcc >/dev/null || need+=(gcc)
[ -f /usr/lib/x86_64-linux-gnu/libc.a ] || need+=(libc6-dev)
# Renders the bench's SVG plots headlessly in its tests (optional there).
command -v rsvg-convert >/dev/null || need+=(librsvg2-bin)
# The Linux guest kernel for `margay bench` (and its test).
compgen -G '/boot/vmlinuz-*' >/dev/null || need+=(linux-image-amd64)
if [ ${#need[@]} -gt 0 ]; then
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo=sudo
    export DEBIAN_FRONTEND=noninteractive
    $sudo apt-get update -qq
    $sudo apt-get install -y -qq "${need[@]}"
fi
