# Shortcuts; the scripts do the work. `make test` = the README's test command.
SHELL := /bin/bash
S ?= smoke

.PHONY: demo test bootstrap lint sanity test-unit test-integration build docs molecule rgw-up rgw-down clean

demo:             ## the main job: a demo against a local RGW and local test hosts
	scripts/demo.sh
test:             ## the whole test suite (what CI runs)
	scripts/test.sh
bootstrap:        ## install packages, toolchain and test images
	scripts/bootstrap.sh --hosts
lint:
	scripts/test.sh lint
sanity:
	scripts/test.sh sanity
test-unit:
	scripts/test.sh unit
test-integration:
	scripts/test.sh integration
build:
	scripts/test.sh build
docs:             ## the documentation site (antsibull-docs, static HTML outside the checkout)
	scripts/docs.sh
molecule:         ## one scenario: make molecule S=smoke
	scripts/bootstrap.sh --hosts && . scripts/common.sh && kd_activate && molecule test -s $(S)
rgw-up:
	tests/rig/rgw.sh up
rgw-down:
	tests/rig/rgw.sh down
clean:
	tests/rig/hosts.sh clean; rm -rf tests/output
