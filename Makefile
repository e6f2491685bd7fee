# Ledger — the commands the README promises. `make test` is what CI runs.
GO      ?= go
BIN     ?= bin/ledger
PKGS    ?= ./...

.PHONY: build run test bench lint clean

build:
	$(GO) build -o $(BIN) ./cmd/ledger

# A development server: embedded JetStream in a temp dir, unsealed, KV v2 at secret/.
run: build
	./$(BIN) server -dev

test:
	$(GO) test -race -count=1 -timeout 20m $(PKGS)

# Benchmarks print their figures as custom metrics; BENCHMARKS.md records them with the machine.
bench:
	$(GO) test -run '^$$' -bench . -benchtime 1x -timeout 30m $(PKGS)

lint:
	$(GO) vet $(PKGS)
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi

clean:
	rm -rf bin
