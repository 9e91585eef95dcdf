# Build, test and install warewulf. `make help` lists the targets.
GO        ?= go
PREFIX    ?= /usr
SYSCONFDIR ?= /etc
LOCALSTATEDIR ?= /var/lib
DESTDIR   ?=
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
TAGS      := containers_image_openpgp exclude_graphdriver_btrfs exclude_graphdriver_devicemapper
GOFLAGS_BUILD := -tags '$(TAGS)' -trimpath -ldflags '-s -w -X github.com/warewulf-ng/warewulf/internal/wwctl.Version=$(VERSION)'
BIN       := bin

.PHONY: check deps all build wwctl warewulfd wwclient wwstage1 test test-unit test-e2e lint bench fuzz demo install clean help

all: build

build: wwctl warewulfd wwclient wwstage1 ## build the binaries into ./bin (the node-side ones for every NODE_ARCHES too)

wwctl warewulfd:
	$(GO) build $(GOFLAGS_BUILD) -o $(BIN)/$@ ./cmd/$@

# Node architectures, as Go and as `uname -m` name them: the wwclient
# overlay carries a wwclient for each, and its /warewulf/wwclient starts the
# node's own.
NODE_ARCHES := amd64:x86_64 arm64:aarch64

wwclient: ## static: it runs on nodes whatever their libc; one per NODE_ARCHES
	CGO_ENABLED=0 $(GO) build $(GOFLAGS_BUILD) -o $(BIN)/$@ ./cmd/$@
	@set -e; for a in $(NODE_ARCHES); do \
	  echo "wwclient for $${a#*:}"; \
	  CGO_ENABLED=0 GOARCH=$${a%%:*} $(GO) build $(GOFLAGS_BUILD) -o $(BIN)/$${a#*:}/wwclient ./cmd/wwclient; \
	  install -D -m 0755 $(BIN)/$${a#*:}/wwclient overlays/wwclient/rootfs/warewulf/bin/$${a#*:}/wwclient; \
	done

wwstage1: ## static: the two-stage boot's /init, which warewulfd packs into /stage1/<mac>; also bin/ARCH/ per NODE_ARCHES
	CGO_ENABLED=0 $(GO) build $(GOFLAGS_BUILD) -o $(BIN)/$@ ./cmd/$@
	@set -e; for a in $(NODE_ARCHES); do \
	  echo "wwstage1 for $${a#*:}"; \
	  CGO_ENABLED=0 GOARCH=$${a%%:*} $(GO) build $(GOFLAGS_BUILD) -o $(BIN)/$${a#*:}/wwstage1 ./cmd/wwstage1; \
	done

check: deps test ## install the test dependencies (Debian, root), then run every test

deps: ## install the Debian packages the tests, benchmarks and demo use
	./test/deps.sh

test: build lint fuzz ## every test, VM boots included (needs root and qemu for test/e2e)
	$(GO) test -tags '$(TAGS)' -count=1 -timeout 40m ./...

# A count, not a duration: Go 1.26's fuzz coordinator can fail a target that
# found nothing when a -fuzztime duration runs out (go.dev/issue/75804).
FUZZTIME ?= 20000x
fuzz: ## run each fuzz target (network input: URLs, MACs, TFTP names, DHCP, NDP, the REST API's JSON, the image stage 1 unpacks; nodes.conf of any release, set and unset values, warewulf.conf) briefly (FUZZTIME, default 20000 inputs each)
	@for t in warewulfd:FuzzParseMAC warewulfd:FuzzParsePath warewulfd:FuzzCheckTFTPName \
	  warewulfd:FuzzTFTPGrubName dhcp:FuzzHandlePacket ndp:FuzzCheckSolicitation api:FuzzRecordJSON stage1:FuzzUnpack \
	  upgrade:FuzzNodes node:FuzzEdit config:FuzzParse; do \
	  $(GO) test -tags '$(TAGS)' -run '^$$' -fuzz "^$${t#*:}\$$" -fuzztime $(FUZZTIME) ./internal/$${t%%:*}/ || exit 1; \
	done

test-unit: ## the tests that need neither root nor qemu
	$(GO) test -tags '$(TAGS)' -short -count=1 ./internal/...

lint: ## gofmt and go vet
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	  if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet -tags '$(TAGS)' ./...

bench: build ## benchmarks, side by side with the tools they replace
	$(GO) test -tags '$(TAGS)' -run '^$$' -bench . -benchtime 1x -timeout 60m ./...

demo: ## set up and boot a VM node from this project (installs what it needs)
	./test/demo.sh

install: build ## install with FHS paths under $(DESTDIR)$(PREFIX)
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/sbin
	install -m 0755 $(BIN)/wwctl $(DESTDIR)$(PREFIX)/bin/wwctl
	install -m 0755 $(BIN)/warewulfd $(DESTDIR)$(PREFIX)/sbin/warewulfd
	install -d $(DESTDIR)$(SYSCONFDIR)/warewulf/ipxe
	test -e $(DESTDIR)$(SYSCONFDIR)/warewulf/warewulf.conf || sed "s|/usr/share/warewulf|$(PREFIX)/share/warewulf|; s|/etc/warewulf|$(SYSCONFDIR)/warewulf|; s|/var/lib/warewulf|$(LOCALSTATEDIR)/warewulf|" etc/warewulf.conf > $(DESTDIR)$(SYSCONFDIR)/warewulf/warewulf.conf
	test -e $(DESTDIR)$(SYSCONFDIR)/warewulf/nodes.conf || install -m 0640 etc/nodes.conf $(DESTDIR)$(SYSCONFDIR)/warewulf/nodes.conf
	install -m 0644 etc/ipxe/*.ipxe $(DESTDIR)$(SYSCONFDIR)/warewulf/ipxe/
	install -d $(DESTDIR)$(SYSCONFDIR)/warewulf/grub
	test -e $(DESTDIR)$(SYSCONFDIR)/warewulf/grub/grub.cfg.ww || install -m 0644 etc/grub/grub.cfg.ww $(DESTDIR)$(SYSCONFDIR)/warewulf/grub/
	install -d $(DESTDIR)$(PREFIX)/share/warewulf/overlays
	cp -a overlays/. $(DESTDIR)$(PREFIX)/share/warewulf/overlays/
	for a in $(NODE_ARCHES); do \
	  install -D -m 0755 $(BIN)/$${a#*:}/wwclient $(DESTDIR)$(PREFIX)/share/warewulf/overlays/wwclient/rootfs/warewulf/bin/$${a#*:}/wwclient; \
	done
	install -D -m 0755 $(BIN)/wwstage1 $(DESTDIR)$(PREFIX)/share/warewulf/stage1/wwstage1
	install -d $(DESTDIR)$(PREFIX)/lib/systemd/system
	test ! -e etc/warewulfd.service || install -m 0644 etc/warewulfd.service $(DESTDIR)$(PREFIX)/lib/systemd/system/
	install -d $(DESTDIR)$(LOCALSTATEDIR)/warewulf/overlays $(DESTDIR)$(LOCALSTATEDIR)/warewulf/chroots $(DESTDIR)$(LOCALSTATEDIR)/warewulf/provision

clean:
	rm -rf $(BIN)

help:
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'
