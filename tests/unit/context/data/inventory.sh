#!/usr/bin/env bash
set -euo pipefail

source ./lib/common.sh
. "$(dirname "$0")/env.sh"

DEFAULT_PATH="inventory.txt"

# Parse "12" or "3x4".
parse_quantity() {
  local raw="$1"
  if [[ "$raw" == *x* ]]; then
    echo $(( ${raw%x*} * ${raw#*x} ))
  else
    echo "$raw"
  fi
}

add_item() {
  local name="$1" raw="$2"
  local quantity
  quantity="$(parse_quantity "$raw")"
  echo "$name $quantity" >> "${INVENTORY:-$DEFAULT_PATH}"
}

function save_all {
  for name in "$@"; do
    add_item "$name" 1
  done
  log_event "saved" "$#"
}

save_all apples pears
