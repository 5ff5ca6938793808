# cunzheng — see README.md.
GO      ?= go
BIN     := bin/cunzheng
PKGS    := ./...
FUZZTIME ?= 5s

.PHONY: all build run test bench fuzz lint soak clean generate

all: build

build:
	$(GO) build -trimpath -o $(BIN) ./cmd/cunzheng

## run: start a local 4-institution network with a registered demo submitter (data kept in run/)
run: build
	./testnet/run.sh

## test: vet, format check, and every test with the race detector
test: lint
	$(GO) build -o $(BIN) ./cmd/cunzheng
	$(GO) test -race -timeout 14m $(PKGS)

## bench: the benchmarks named in the issues, with their reference figures
bench:
	$(GO) test -run '^$$' -bench . -benchtime 1x -timeout 30m ./testnet/
	$(GO) test -run '^$$' -bench AppendBlock -benchtime 300x ./chain/store/
	$(GO) test -run '^$$' -bench 'Hashing|DropToVerdict' -benchtime 3x ./api/web/

## generate: rebuild the committed WASM verifier and page assets (commit the result)
generate:
	$(GO) generate ./api/web

## fuzz: run every fuzz target for FUZZTIME each
fuzz:
	@set -e; for pkg in $$($(GO) list $(PKGS)); do \
	  for f in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz'); do \
	    echo "fuzz $$pkg $$f"; $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$pkg; \
	  done; \
	done

STATICCHECK ?= $(shell command -v staticcheck || echo $$($(GO) env GOPATH)/bin/staticcheck)

lint:
	$(GO) vet $(PKGS)
	@if [ -x "$(STATICCHECK)" ]; then echo "staticcheck"; $(STATICCHECK) $(PKGS); else echo "staticcheck not installed (go install honnef.co/go/tools/cmd/staticcheck@v0.8.2); skipped"; fi
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	  if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

## soak: long crash and load loops (not part of make test)
soak:
	CUNZHENG_SOAK=1 $(GO) test -run 'Crash|Soak' -timeout 60m -v ./testnet/

clean:
	rm -rf run bin
