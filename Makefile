# moh — build, run, test. `make run` and `make test` are the two set-up
# commands on a fresh machine that has only Go.

GO       ?= go
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS  := -s -w -X main.version=$(VERSION)
RUN_DIR  ?= .run
LISTEN   ?= 127.0.0.1:8080
# Debian packages the tests drive for real (decoders, encoders, MPD, ALSA
# tools, the MQTT broker, the browser), as check:package pairs.
DEB_NEEDS := socat:socat mpd:mpd aplay:alsa-utils lame:lame sox:sox \
	/usr/lib/x86_64-linux-gnu/sox/libsox_fmt_mp3.so:libsox-fmt-mp3 mpg123:mpg123 ffmpeg:ffmpeg \
	mosquitto:mosquitto mosquitto_pub:mosquitto-clients chromium:chromium \
	promtool:prometheus rsyslogd:rsyslog /usr/lib/x86_64-linux-gnu/rsyslog/lmnsd_gtls.so:rsyslog-gnutls \
	rauc:rauc mksquashfs:squashfs-tools dbus-daemon:dbus-daemon baresip:baresip \
	openssl:openssl ip:iproute2 unshare:util-linux pulseaudio:pulseaudio parec:pulseaudio-utils curl:curl grub-editenv:grub-common

.PHONY: all build run test test-go test-contention deps lint bench dist clean

all: build

build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/mohd ./cmd/mohd
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/mohctl ./cmd/mohctl

# The appliance on its embedded default: direct decoder, built-in track when
# the library is empty, web page on localhost. A machine without a sound card
# plays into the paced null output instead, and says so.
run: build
	@mkdir -p $(RUN_DIR)/data
	@if command -v aplay >/dev/null 2>&1 && aplay -l 2>/dev/null | grep -q '^card'; then \
		out=alsa; \
	else \
		out=null; echo "moh: no sound card found (aplay -l lists none): playing into the null output instead of alsa"; \
	fi; \
	echo "moh: web page on http://$(LISTEN)/ — the first-run setup code is in the log below"; \
	exec ./bin/mohd run --data $(RUN_DIR)/data --listen $(LISTEN) --backend direct --output $$out

# Install the Debian packages the tests need, only those that are missing.
deps:
	@./scripts/apt-need.sh $(DEB_NEEDS)

lint:
	@bad=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$bad" ]; then echo "gofmt needed:"; echo "$$bad"; exit 1; fi
	$(GO) vet ./...

test: deps lint test-go test-contention

# Screenshots of the browser test and other artifacts land in artifacts/.
test-go:
	MOH_ARTIFACTS=$(CURDIR)/artifacts $(GO) test -race -count=1 -timeout 30m ./...

# Playback under CPU hogs and an ingest, counting underruns and gaps: the
# product's timing, so without the race detector and after test-go, alone
# on the machine (60 s here; make bench runs it for 10 minutes). An
# underrun fails it unless the hypervisor held every CPU of the machine
# for longer than the write came late, which it says.
test-contention:
	$(GO) test -count=1 -timeout 10m -run '^TestPlaybackUnderContention$$' -v ./player/

bench: deps
	./scripts/bench.sh

# Static binaries for the small boxes, amd64 and arm64.
dist:
	@mkdir -p dist
	for arch in amd64 arm64; do \
		CGO_ENABLED=0 GOOS=linux GOARCH=$$arch $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o dist/mohd-linux-$$arch ./cmd/mohd || exit 1; \
		CGO_ENABLED=0 GOOS=linux GOARCH=$$arch $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o dist/mohctl-linux-$$arch ./cmd/mohctl || exit 1; \
	done
	@ls -l dist

clean:
	rm -rf bin dist $(RUN_DIR)

include image/Makefile.inc
