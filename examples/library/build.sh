#!/usr/bin/env bash
# Print every src/*.html to docs/<name>.pdf with headless Chromium, keeping the
# browser's default print header (date/time, title) and footer (file URL, page n/m).
# Do NOT add --no-pdf-header-footer: the page furniture is the point of this corpus.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
CHROMIUM="${CHROMIUM:-/usr/bin/chromium}"
mkdir -p "$HERE/docs"

for src in "$HERE"/src/*.html; do
    name="$(basename "$src" .html)"
    out="$HERE/docs/$name.pdf"
    rm -f "$out"
    "$CHROMIUM" --headless --disable-gpu --no-sandbox \
        --print-to-pdf="$out" "file://$src" >/dev/null 2>&1
    if [[ ! -s "$out" ]]; then
        echo "failed: $src" >&2
        exit 1
    fi
    echo "wrote $out"
done
