# Code generation runs offline from registries: tools pinned in tools/go.mod
# (Go module proxy), google/api protos from the npm package google-proto-files,
# buf/validate from the Go module github.com/bufbuild/protovalidate.
GOOGLE_PROTO_FILES_VERSION := 6.0.1
PROTOVALIDATE_VERSION := v1.2.2
DEPS := .build/protodeps
BUF := go tool -modfile=tools/go.mod buf

.PHONY: generate lint protodeps test clean

generate: protodeps
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

lint: protodeps
	$(BUF) lint

test:
	go test -race -shuffle=on ./...

clean:
	rm -rf .build
