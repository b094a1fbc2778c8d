# StackPilot: every target is exactly one `cargo xtask …` call (see README.md).
# NODE= picks the lab node (default control); ENV= the environment (default dev).
NODE ?= control
ENV ?= dev
export NODE ENV

.PHONY: help test

help: ## list the targets
	@cargo xtask help-targets

test: ## format check, clippy (warnings denied) and the whole test suite
	cargo xtask test
