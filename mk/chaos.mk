# The fault suite (docs/reliability.md): its own broker on free ports, the real pipeline,
# faults injected, a ledger of accepted against delivered events.
#
#   make chaos                    reduced size (CI: a few minutes)
#   make chaos CHAOS_SIZE=full    20k-event burst, 10 kills, 30 s outage, 15-min soak
#   HOOKSTREAM_CHAOS_GUARANTEE=exactly_once make chaos   the same under exactly_once

CHAOS_SIZE ?= reduced

.PHONY: chaos
chaos: venv ## Run the fault suite (CHAOS_SIZE=reduced|full); figures in .hookstream/chaos/
	rm -f .hookstream/chaos/*-$(CHAOS_SIZE).json
	HOOKSTREAM_CHAOS_SIZE=$(CHAOS_SIZE) $(BIN)/pytest -q -p no:randomly tests/chaos; \
	  status=$$?; \
	  for f in .hookstream/chaos/*-$(CHAOS_SIZE)*.json; do \
	    [ -e "$$f" ] && echo "== $$f" && cat "$$f"; \
	  done; \
	  exit $$status
