# Two commands: `make demo` and `make test`. Each sets up .venv itself.
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.spikegate-installed
JOBS   ?= 2

.PHONY: demo test setup bench fuzz clean

$(STAMP): pyproject.toml .ci/setup-env
	VENV=$(VENV) ./.ci/setup-env
	touch $(STAMP)

setup: $(STAMP)

demo: $(STAMP)
	$(PY) -m spikegate.demo --out demo_out

test: $(STAMP)
	$(PY) -m pytest -q -n $(JOBS) --dist loadgroup

bench: $(STAMP)
	$(PY) -m bench.run $(if $(QUICK),--quick,)
	$(if $(QUICK),,$(PY) -m bench.wide)

fuzz: $(STAMP)
	$(PY) -m spikegate.fuzz --count $(or $(N),100) --rtl $(or $(RTL),icarus)

clean:
	rm -rf demo_out build .pytest_cache
