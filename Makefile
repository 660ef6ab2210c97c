# Thin wrapper over the CMake presets. `make test` and `make demo` are all a new user needs
# on a fresh Debian 12 machine: each installs the packages and builds first.
PRESET ?= release
BUILD  := build/$(PRESET)
PREFIX ?= /usr/local
JOBS   ?= $(shell nproc)

.PHONY: all deps configure build test demo bench install clean

all: build

deps:
	@bash scripts/install-deps.sh

configure: deps
	@cmake --preset $(PRESET) >/dev/null

build: configure
	@cmake --build $(BUILD) -j $(JOBS)

test: build
	@ctest --test-dir $(BUILD) --output-on-failure -j $(JOBS)

# The demo needs the seven programs only, not the test binaries.
PROGRAMS := eve-prep eve-tokenize eve-pretrain eve-finetune eve-embed eve-rank eve-score

demo: configure
	@cmake --build $(BUILD) -j $(JOBS) --target $(PROGRAMS)
	@EVE_BIN=$(CURDIR)/$(BUILD)/bin bash scripts/demo.sh

bench: build
	@EVE_BIN=$(CURDIR)/$(BUILD)/bin bash tests/bench/run.sh

install: build
	@cmake --install $(BUILD) --prefix $(PREFIX)

clean:
	rm -rf build
