# Live checks of the deployment artifacts (tests/e2e), separate from `make test`.
#
#   make e2e        image, docker compose and the standalone overlay on a
#                   one-node Kubernetes, for real; needs root, ~35 min on a
#                   fresh machine, ~6 min with .hookstream/e2e/cache warm
#   make e2e-clean  stop whatever a broken run left (engine, cluster, rules)

.PHONY: e2e e2e-clean

e2e: venv ## Build the image, run compose and the k8s standalone overlay for real (root)
	tests/e2e/run.sh

e2e-clean: ## Stop the e2e engine and cluster, remove their interfaces and iptables rules
	tests/e2e/tooling/teardown.sh
