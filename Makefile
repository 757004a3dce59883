# Code generation runs offline from registries: tools pinned in tools/go.mod
# (Go module proxy), google/api protos from the npm package google-proto-files,
# buf/validate from the Go module github.com/bufbuild/protovalidate.
# The console's browser tests inject axe-core (npm) into each page: its
# axe.min.js is committed like generated code, beside its SHA-256.
GOOGLE_PROTO_FILES_VERSION := 6.0.1
AXE_CORE_VERSION := 4.14.1
AXE := internal/console/testdata/browser/axe.min.js
PROTOVALIDATE_VERSION := v1.2.2
DEPS := .build/protodeps
BUF := go tool -modfile=tools/go.mod buf

.PHONY: generate lint protodeps axe test clean

generate: protodeps axe
	$(BUF) lint
	rm -rf api/tranche
	$(BUF) generate --template buf.gen.yaml proto
	mv api/tranche.swagger.json api/openapi.json

protodeps: $(DEPS)/.stamp

$(DEPS)/.stamp: Makefile
	rm -rf $(DEPS) && mkdir -p $(DEPS)/google/api $(DEPS)/buf/validate .build/npm
	cd .build/npm && npm pack --silent google-proto-files@$(GOOGLE_PROTO_FILES_VERSION) >/dev/null
	tar -xzf .build/npm/google-proto-files-$(GOOGLE_PROTO_FILES_VERSION).tgz -C .build/npm
	cp .build/npm/package/google/api/annotations.proto .build/npm/package/google/api/http.proto $(DEPS)/google/api/
	dir=$$(cd tools && go mod download -json github.com/bufbuild/protovalidate@$(PROTOVALIDATE_VERSION) | sed -n 's/.*"Dir": "\(.*\)".*/\1/p'); \
		cp $$dir/proto/protovalidate/buf/validate/validate.proto $(DEPS)/buf/validate/
	chmod -R u+w $(DEPS)
	touch $@

axe: $(AXE)

$(AXE): Makefile
	rm -rf .build/npm/axe-core && mkdir -p .build/npm/axe-core $(dir $(AXE))
	cd .build/npm/axe-core && npm pack --silent axe-core@$(AXE_CORE_VERSION) >/dev/null
	tar -xzf .build/npm/axe-core/axe-core-$(AXE_CORE_VERSION).tgz -C .build/npm/axe-core
	cp .build/npm/axe-core/package/axe.min.js $@
	cd $(dir $(AXE)) && sha256sum axe.min.js > axe.min.js.sha256
	echo "axe-core $(AXE_CORE_VERSION)" > $(dir $(AXE))axe.min.js.version

lint: protodeps
	$(BUF) lint

test:
	go test -race -shuffle=on ./...

clean:
	rm -rf .build
