# StackPilot: every target is exactly one `cargo xtask …` call (see README.md).
# NODE= picks the lab node (default control); ENV= the environment (default dev).
NODE ?= control
ENV ?= dev
export NODE ENV

.PHONY: help up demo verify down clean demo-reviewer halt destroy shell lab-status images test test-vm check ci drill drills

help: ## list the targets
	@cargo xtask help-targets

up: ## lab nodes up, then the service stack started on NODE
	cargo xtask up

demo: ## forced rebuild from source, recreate, wait healthy, demo order (NODE; MODE=swarm: built on control, deployed by digest, the order through the workers)
	cargo xtask demo

verify: ## host-driven, read-only verification of ENV on NODE: the definition of working
	cargo xtask verify

down: ## stop the stack's containers on NODE; images and volumes stay
	cargo xtask down

clean: ## clean room on NODE: containers, app images, build cache removed; volumes kept
	cargo xtask clean

demo-reviewer: ## always clean room, then forced rebuild, then full verification (NODE)
	cargo xtask demo-reviewer

halt: ## stop the stack on every running node, then halt the nodes
	cargo xtask halt

destroy: ## clean room on every node, then destroy the nodes
	cargo xtask destroy

shell: ## a shell on NODE, for debugging only (not part of normal operation)
	cargo xtask shell

drill: ## one failure drill NAME on NODE: steady state, inject, observe, recover, verify; journal in .stackpilot/runs
	cargo xtask drills run $(NAME)

drills: ## every failure drill on NODE, with measured detection and recovery (journals in .stackpilot/runs)
	cargo xtask drills run all

.PHONY: deploy status restart logs stop rollback

deploy: ## staged deploy of ENV to NODE with evidence and automatic rollback (live: CONFIRM_LIVE=yes; HEALTH_TIMEOUT= OBSERVE_WINDOW= MAX_ERRORS=)
	cargo xtask deploy

status: ## deployed release of ENV on NODE (when, by whom), containers, health and readiness; fails when the stack is down
	cargo xtask status

restart: ## stop ENV's stack cleanly and start the deployed release again, then verify
	cargo xtask restart

logs: ## tail ENV's service logs on NODE (TAIL=100 lines or all; FOLLOW=no to print and exit)
	cargo xtask logs

stop: ## stop ENV's stack on NODE; images, volumes and the deploy record kept
	cargo xtask stop

rollback: ## switch ENV back to its previous release, verify it and record it
	cargo xtask rollback

lab-status: ## the labs on this host and their checkouts, then each node's provider, state, address, engine health and loaded images
	cargo xtask lab status

images: ## build every lab image locally (nothing pulled), checked against the image lock
	cargo xtask images

test: ## format check, clippy (warnings denied) and the whole test suite, the libvirt VM e2e included
	cargo xtask test

test-vm: ## the libvirt VM e2e alone (make test runs it too; one VM under TCG, about 17 min here): lab up, demo-reviewer, ctx-guard, drills, deploy, a reboot, destroy
	cargo xtask test-vm

ci: ## runtime verification: capabilities, checks, lab e2e when possible (else skipped), teardown always; ci/logs/
	cargo xtask ci

check: ## repo contracts (no Docker): pinned images, no secrets, Makefile/workflow shape; fmt, clippy, unit tests
	cargo xtask check
