#!/usr/bin/env bash
# Prints the shell block of README.md (on stdin) between <!-- NAME:begin --> and <!-- NAME:end -->,
# without its ``` fences, so the docs' commands are the ones scripts and tests run.
set -euo pipefail
name=$1
awk -v b="<!-- $name:begin -->" -v e="<!-- $name:end -->" '
  $0 == b { on = 1; next }
  $0 == e { on = 0 }
  on && !/^```/ { print }
'
