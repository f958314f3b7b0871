# The browser the console's tests drive: Debian's headless Chromium and its driver.
#
#   make browser   apt-get install chromium chromium-driver (run as root; idempotent)
#
# Selenium is pointed at /usr/bin/chromium and /usr/bin/chromedriver: nothing is
# downloaded besides the two packages.

.PHONY: browser
browser: ## Install Debian's chromium and chromium-driver for the console's browser tests
	@test -x /usr/bin/chromium -a -x /usr/bin/chromedriver || { apt-get update -q && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
		chromium chromium-driver; }
