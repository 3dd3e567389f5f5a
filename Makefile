# nodeforge: `make build` runs the main job, `make test` the tests, `make demo` the whole
# pipeline offline against locally generated stand-in artifacts.

CARGO ?= cargo
BIN   := target/release/nodeforge
DEMO  := out/demo
DEMO_FLAGS := --lockfile $(DEMO)/kubenet.lock --out $(DEMO)

.PHONY: build test demo lint clean

## Release binary, then the default cluster's artifacts: lock check and verified fetch into out/store.
## (Node images come with the image issue; until then the pipeline stops after fetch.)
build:
	$(CARGO) build --release --locked
	$(BIN) lock --check
	$(BIN) fetch

## Format check, clippy with warnings as errors, every test.
test: lint
	$(CARGO) test --locked

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --locked --all-targets -- -D warnings

## The whole pipeline with no network: stand-in artifacts in upstream's layout as a file:// mirror,
## a lock made from their checksum files, a verified fetch into the store, and a second fetch (a no-op).
demo:
	$(CARGO) build --release --locked
	rm -rf $(DEMO)
	$(BIN) demo-mirror $(DEMO)/mirror
	$(BIN) lock $(DEMO_FLAGS) --offline --mirrors-only --mirror file://$(DEMO)/mirror
	$(BIN) lock $(DEMO_FLAGS) --check
	$(BIN) fetch $(DEMO_FLAGS) --offline --mirror file://$(DEMO)/mirror
	$(BIN) fetch $(DEMO_FLAGS) --offline
	$(BIN) mirror export $(DEMO)/usb $(DEMO_FLAGS)

clean:
	rm -rf out
