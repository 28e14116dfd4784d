# splicegate: `make run` starts a demo gateway, `make test` runs every test.
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

# Admin address for `make run` (port 0 picks a free one; the URL is printed).
ADMIN ?= 127.0.0.1:8080
# Extra flags for swift build/test, e.g. SWIFTFLAGS="--scratch-path .build-e2e".
SWIFTFLAGS ?=
# Extra pytest flags, e.g. PYTEST_FLAGS="-k process -x".
PYTEST_FLAGS ?=
VENV := .venv

.PHONY: help deps deps-test release run build-tests test test-swift test-e2e spec-check console-screenshot clean

help:
	@echo "make run    install missing packages, build release, start the demo gateway"
	@echo "make test   install missing packages, build, run swift tests and the e2e suite"
	@echo "make console-screenshot   refresh docs/console.png (the README's picture) from a live console"

deps:
	scripts/deps.sh run

deps-test:
	scripts/deps.sh test

release: deps
	swift build -c release $(SWIFTFLAGS)

run: release
	@echo "starting splicegate --demo (Ctrl-C to stop); demo listener on 127.0.0.1:7000"
	exec "$$(swift build -c release $(SWIFTFLAGS) --show-bin-path)/splicegate" --demo --admin $(ADMIN)

build-tests: deps-test
	swift build --build-tests $(SWIFTFLAGS)

# The spec is valid, and both code generators read it without a warning (the Swift one is
# the tool the build plugin runs, built by build-tests).
spec-check: deps-test
	$(VENV)/bin/openapi-spec-validator openapi/openapi.yaml
	scripts/check-generators.sh "$$(swift build $(SWIFTFLAGS) --show-bin-path)"

# Runs both suites even when the first fails, then fails if either did.
test: build-tests spec-check
	swift_rc=0; $(MAKE) --no-print-directory test-swift || swift_rc=$$?; \
	e2e_rc=0; $(MAKE) --no-print-directory test-e2e || e2e_rc=$$?; \
	if [ "$$swift_rc" -ne 0 ] || [ "$$e2e_rc" -ne 0 ]; then \
	  echo "FAILED: swift test exit $$swift_rc, e2e exit $$e2e_rc" >&2; exit 1; fi

test-swift:
	swift test --skip-build $(SWIFTFLAGS)

test-e2e: deps-test
	SPLICEGATE_BIN="$${SPLICEGATE_BIN:-$$(swift build $(SWIFTFLAGS) --show-bin-path)/splicegate}" \
	  $(VENV)/bin/python -m pytest Tests/e2e $(PYTEST_FLAGS)

# Tests write their screenshot under .build/; this writes the README's picture instead.
console-screenshot: build-tests
	SPLICEGATE_SCREENSHOT="$(CURDIR)/docs/console.png" $(MAKE) --no-print-directory test-e2e \
	  PYTEST_FLAGS="-k test_splice_split_remove_and_kill_from_the_console"

clean:
	rm -rf .build .build-e2e $(VENV) .pytest_cache schemathesis-report
