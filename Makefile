# The two commands: `make run` and `make test`. Both set up what they need and are idempotent.
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
# The stamp changes with pyproject.toml, so a changed dependency list reinstalls.
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml | sha1sum | cut -c1-12)

.PHONY: install run test lint typecheck clean browser

install: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	# torch is pinned to the CPU build (2.13.0); an unpinned torch would pull a multi-GB CUDA build.
	$(BIN)/pip install --disable-pip-version-check -q -e '.[dev]'
	@rm -f $(VENV)/.installed-*
	@touch $@

run: install
	$(BIN)/salon up

test: install lint browser
	$(BIN)/pytest

# The console's browser tests drive Debian's chromium (`playwright install` cannot download here),
# with a CJK font so the screenshots show Chinese text.
browser:
	@command -v chromium >/dev/null || (apt-get update && apt-get install -y chromium)
	@fc-list :lang=zh 2>/dev/null | grep -q . || apt-get install -y fonts-wqy-microhei || (apt-get update && apt-get install -y fonts-wqy-microhei)

lint: install
	$(BIN)/ruff check shared embeddings services tests
	$(BIN)/ruff format --check shared embeddings services tests
	$(BIN)/mypy shared embeddings services

clean:
	rm -rf var .pytest_cache .mypy_cache .ruff_cache
