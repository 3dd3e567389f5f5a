# nodeforge: `make build` runs the main job, `make test` the tests, `make demo` the whole
# pipeline offline against locally generated stand-in artifacts.

CARGO ?= cargo
BIN   := target/release/nodeforge
DEMO  := out/demo
DEMO_FLAGS := --lockfile $(DEMO)/kubenet.lock --out $(DEMO)

.PHONY: build test demo bench lint clean vm cluster cluster-down

## Release binary, then the default cluster's node images: lock check (entries the lockfile lacks
## or records as unresolved are resolved and written, and it says so), verified fetch into
## out/store, one image per node in out/images/<id>/, out/nodes/<node>/current pointing at each.
build:
	$(CARGO) build --release --locked
	$(BIN) build

## Format check, clippy and rustdoc with warnings as errors, every test.
test: lint
	$(CARGO) test --locked

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --locked --all-targets -- -D warnings
	RUSTDOCFLAGS="-D warnings" $(CARGO) doc --no-deps --locked

## The whole pipeline with no network: stand-in artifacts in upstream's layout as a file:// mirror,
## a lock made from their checksum files, a verified fetch into the store (twice: the second is a
## no-op), six node images (twice: the second does nothing), a bill of materials, a mirror export.
demo:
	$(CARGO) build --release --locked
	rm -rf $(DEMO)
	$(BIN) demo-mirror $(DEMO)/mirror
	$(BIN) lock $(DEMO_FLAGS) --offline --mirrors-only --trust-mirror-checksums --mirror file://$(DEMO)/mirror
	$(BIN) lock $(DEMO_FLAGS) --check
	$(BIN) fetch $(DEMO_FLAGS) --offline --mirror file://$(DEMO)/mirror
	$(BIN) fetch $(DEMO_FLAGS) --offline
	$(BIN) build $(DEMO_FLAGS) --offline
	$(BIN) build $(DEMO_FLAGS) --offline
	$(BIN) plan $(DEMO_FLAGS)
	$(BIN) show $(DEMO_FLAGS) worker1 | head -20
	$(BIN) mirror export $(DEMO)/usb $(DEMO_FLAGS)
	@echo "make demo: everything is under $(DEMO)/ (mirror/, kubenet.lock, store/, images/, nodes/<node>/current, usb/); its own lockfile and out, so: $(BIN) list $(DEMO_FLAGS)"

## Boot NODE's current image in QEMU (Debian 12 systemd root from scripts/vm-rootfs, cached;
## the shipped contrib/nodeforge-mount-layers in a busybox initramfs) and leave its serial console
## on this terminal: root, no password; Ctrl-A X quits. OUT=dir for another output directory.
NODE ?= worker1
vm:
	OUT=$(or $(OUT),out) scripts/vm-boot $(NODE)

## Two VMs running the seed's chapter 6 for real (tests/it/cluster.rs, its bring-up): control0
## with etcd, kube-apiserver, kube-controller-manager and kube-scheduler on its own disk, and
## worker0; both run containerd, kubelet and kube-proxy (built from upstream's source by
## scripts/k8s-from-source) from their nodeforge images, secrets delivered over fw_cfg. Left
## running in CLUSTER (default out/cluster); prints the KUBECONFIG to use. `make cluster-down`
## stops the VMs.
CLUSTER ?= out/cluster
cluster:
	NODEFORGE_CLUSTER_DIR=$(CLUSTER) $(CARGO) test --locked --test it -- --ignored --exact --nocapture cluster::cluster_up_for_a_person

cluster-down:
	@for p in $(CLUSTER)/vm/*/qemu.pid; do [ -e "$$p" ] && kill "$$(cat "$$p")" && echo "stopped $$p"; done; true

## Benchmarks: a realistic workload made locally, every figure side by side with the standard
## tools in one run, each against its target (needs curl, erofs-utils (mkfs.erofs, fsck.erofs),
## cryptsetup-bin, b3sum, docker-registry). Results: BENCHMARKS.md.
bench:
	$(CARGO) bench --locked --bench workload

clean:
	rm -rf out
