#!/usr/bin/env bash
# Put this checkout on a slim branch for a device call, and back again.
#
# A device call sends the working tree (tracked and untracked-not-ignored files) plus carried
# paths, 64 MiB at most; the committed results alone are larger. `slim` commits HEAD without
# results/ (keeping results/speed.jsonl, which the GPU timing plan reads) to the branch
# device-slim and switches to it, so git takes results/ out of the working tree; `back` returns
# to the branch you were on and git restores them. Nothing is lost: results/ stay in HEAD.
#
#   bash scripts/device_checkout.sh slim     # then: python -m benchmark.tools.gpu_pack --travel-size --carry .whl
#   ...                                      # the device call(s)
#   bash scripts/device_checkout.sh back
set -euo pipefail
cd "$(dirname "$0")/.."
SLIM=device-slim
FROM_FILE=.git/device-checkout-from
KEEP=results/speed.jsonl

case "${1:-}" in
    slim)
        if ! git diff --quiet || ! git diff --cached --quiet; then
            echo "device_checkout.sh: commit or stash your changes first" >&2
            exit 1
        fi
        branch=$(git rev-parse --abbrev-ref HEAD)
        if [ "$branch" = "$SLIM" ]; then
            echo "device_checkout.sh: already on $SLIM" >&2
            exit 1
        fi
        index=$(mktemp)
        rm -f "$index"
        GIT_INDEX_FILE="$index" git read-tree HEAD
        GIT_INDEX_FILE="$index" git rm -r -q --cached results
        if git cat-file -e "HEAD:$KEEP" 2>/dev/null; then
            GIT_INDEX_FILE="$index" git update-index --add --cacheinfo "100644,$(git rev-parse "HEAD:$KEEP"),$KEEP"
        fi
        tree=$(GIT_INDEX_FILE="$index" git write-tree)
        rm -f "$index"
        commit=$(git commit-tree "$tree" -p HEAD -m "device call: $branch at $(git rev-parse --short HEAD) without results/")
        echo "$branch" > "$FROM_FILE"
        git branch -f "$SLIM" "$commit"
        git checkout -q "$SLIM"
        echo "on $SLIM (from $branch); 'bash scripts/device_checkout.sh back' returns"
        ;;
    back)
        if [ ! -f "$FROM_FILE" ]; then
            echo "device_checkout.sh: no slim checkout to return from" >&2
            exit 1
        fi
        branch=$(cat "$FROM_FILE")
        git checkout -q "$branch"
        rm -f "$FROM_FILE"
        echo "back on $branch"
        ;;
    *)
        echo "usage: bash scripts/device_checkout.sh slim|back" >&2
        exit 2
        ;;
esac
