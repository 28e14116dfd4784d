#!/usr/bin/env bash
# Both code generators read openapi/openapi.yaml whole: swift-openapi-generator (the tool
# its build plugin runs, built by `swift build`) and openapi-python-client (from the e2e
# venv) must not print a single warning (issue 16). Output goes to .build/generators-check.
# Usage: scripts/check-generators.sh BIN_PATH   (the directory `swift build --show-bin-path` prints)
set -euo pipefail
cd "$(dirname "$0")/.."

bin_path="${1:?usage: $0 BIN_PATH}"
out=.build/generators-check
rm -rf "$out"
mkdir -p "$out/swift"

echo "== swift-openapi-generator"
swift_log="$("$bin_path/swift-openapi-generator-tool" generate \
  --config Sources/SpliceCtl/openapi-generator-config.yaml \
  --output-directory "$out/swift" openapi/openapi.yaml 2>&1)"
echo "$swift_log" | grep -E "^(- Generator modes|Writing)" || true
if grep -i "warning" <<<"$swift_log"; then
  echo "swift-openapi-generator warned about openapi/openapi.yaml" >&2
  exit 1
fi

echo "== openapi-python-client"
# The generator formats its output with ruff from the same venv.
PATH="$PWD/.venv/bin:$PATH" .venv/bin/openapi-python-client generate \
  --path openapi/openapi.yaml --config openapi/python-client-config.yaml --meta none \
  --output-path "$out/python" --fail-on-warning

echo "generators: no warnings"
