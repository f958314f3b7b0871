# Deployment artifacts: the tools that check them, and the checks.
#
#   make deploy-tools   kustomize, docker compose, promtool, Kubernetes schemas
#   make deploy-check   pytest tests/deploy
#
# Tools are pinned and land in .hookstream/bin; promtool comes from Debian's
# prometheus package (run as root). The Go tools build with the `go` on PATH
# (1.21 or newer, which fetches the toolchain their modules ask for).

DEPLOY_PYTHON       := $(CURDIR)/.venv/bin/python
DEPLOY_HOME         := $(CURDIR)/.hookstream
DEPLOY_BIN          := $(DEPLOY_HOME)/bin
KUSTOMIZE_VERSION   := v5.8.1
COMPOSE_VERSION     := v2.40.3
GO_BOOTSTRAP        := 1.24.9

DEPLOY_GO := $(shell command -v go)
DEPLOY_GOENV := GOTOOLCHAIN=auto GOFLAGS=-buildvcs=false

.PHONY: deploy-tools deploy-check deploy-apt

deploy-tools: deploy-apt $(DEPLOY_BIN)/kustomize $(DEPLOY_BIN)/docker-compose ## Install what tests/deploy needs (idempotent)

deploy-check: ## Check docker-compose.yml, the k8s overlays, the alerts and the dashboard
	PATH="$(DEPLOY_BIN):$$PATH" $(DEPLOY_PYTHON) -m pytest tests/deploy

# Versioned binaries, linked under their plain name: bumping a version rebuilds.
$(DEPLOY_BIN)/kustomize: $(DEPLOY_BIN)/kustomize-$(KUSTOMIZE_VERSION)
	ln -sf $(notdir $<) $@

$(DEPLOY_BIN)/kustomize-$(KUSTOMIZE_VERSION): | go-present
	mkdir -p $(DEPLOY_BIN)
	gobin=$$(mktemp -d) \
	&& $(DEPLOY_GOENV) GOBIN="$$gobin" \
		$(DEPLOY_GO) install sigs.k8s.io/kustomize/kustomize/v5@$(KUSTOMIZE_VERSION) \
	&& mv "$$gobin/kustomize" $@ && rmdir "$$gobin"

# The docker compose CLI plugin, which also runs standalone as `docker-compose`.
# Its go.mod has exclude directives, so `go install pkg@version` refuses it:
# download the module, then build inside it.
$(DEPLOY_BIN)/docker-compose: $(DEPLOY_BIN)/docker-compose-$(COMPOSE_VERSION)
	ln -sf $(notdir $<) $@

$(DEPLOY_BIN)/docker-compose-$(COMPOSE_VERSION): | go-present
	mkdir -p $(DEPLOY_BIN)
	dir=$$($(DEPLOY_GOENV) $(DEPLOY_GO) mod download -json github.com/docker/compose/v2@$(COMPOSE_VERSION) \
		| python3 -c 'import json, sys; print(json.load(sys.stdin)["Dir"])') \
	&& cd "$$dir" && $(DEPLOY_GOENV) $(DEPLOY_GO) build -trimpath -o $@ \
		-ldflags "-s -w -X github.com/docker/compose/v2/internal.Version=$(COMPOSE_VERSION)" ./cmd

# promtool, from Debian's prometheus package.
deploy-apt:
	@command -v promtool >/dev/null || { apt-get update -q && DEBIAN_FRONTEND=noninteractive \
		apt-get install -y -q --no-install-recommends prometheus; }

.PHONY: go-present
go-present:
	@test -n "$(DEPLOY_GO)" || { echo "Go 1.21+ is needed to build kustomize and docker compose" >&2; exit 1; }
