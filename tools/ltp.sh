#!/usr/bin/env bash
# LTP syscalls tests natively and on Margay: see README.md, "Linux compatibility: LTP".
#   tools/ltp.sh --ltp /path/to/ltp --out /path/to/results [options]   (--help for all)
set -euo pipefail
command -v python3 >/dev/null || { echo "ltp.sh: python3 is needed (apt-get install python3)" >&2; exit 2; }
exec python3 "$(dirname "$(readlink -f "$0")")/ltp/ltp.py" "$@"
