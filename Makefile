# berth: two commands on a fresh Debian 12 machine, as root:
#   make demo   the main job end to end on real parts
#   make demo-ceph  the same two-node story on CephFS (scripts/ceph-up's one-node cluster)
#   make test   every test (unit, then integration with runc, mounts, GlusterFS and Ceph)
SHELL := /bin/bash
.ONESHELL:
.PHONY: deps build test test-unit test-integration demo demo-ceph demo-clean bench clean install uninstall

# make install / make uninstall: where (scripts/install says what goes where)
PREFIX ?= /usr/local
DESTDIR ?=

STAMP := node_modules/.berth-deps

deps: $(STAMP)
$(STAMP): package.json package-lock.json scripts/install-deps
	scripts/install-deps
	npm ci --no-audit --no-fund
	touch $(STAMP)

build: deps
	npm run build --silent

UNIT := $(sort $(wildcard test/unit/*.test.ts))
INTEGRATION := $(sort $(wildcard test/integration/*.test.ts))

test: build
	scripts/gluster-up
	scripts/ceph-up
	node --import tsx --test --test-concurrency=1 $(UNIT) $(INTEGRATION)

test-unit: build
	node --import tsx --test $(UNIT)

test-integration: build
	scripts/gluster-up
	scripts/ceph-up
	node --import tsx --test --test-concurrency=1 $(INTEGRATION)

demo: build
	scripts/demo

# what `KEEP=1 make demo` (or an interrupted run) left: agents, mounts, the volume, the dir
demo-clean: build
	scripts/demo clean

demo-ceph: build
	scripts/demo-ceph

bench: build
	for b in bench/*.ts; do node --import tsx $$b || exit 1; done

install: build
	PREFIX='$(PREFIX)' DESTDIR='$(DESTDIR)' scripts/install install

uninstall:
	PREFIX='$(PREFIX)' DESTDIR='$(DESTDIR)' scripts/install uninstall

clean:
	rm -rf dist
