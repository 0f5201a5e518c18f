# The two commands of the README: `make demo` and `make test`.
# Both create .venv and install the pinned dependencies on first use
# (quick and idempotent afterwards: a stamp records what was installed).

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
DEPS   := requirements.lock pyproject.toml setup.py src/cnnlab/fast/csrc/fused.cpp src/cnnlab/fast/isa.py
STAMP  := $(VENV)/.installed-$(shell cat $(DEPS) | cksum | cut -d' ' -f1)
RUNS   ?= runs

.PHONY: demo test test-no-kernels venv clean bench

venv: $(STAMP)

$(STAMP): $(DEPS)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.lock
	# -e . also compiles the C++ kernels (src/cnnlab/fast/csrc) against the installed torch where
	# a compiler is found, and says which were built; without one cnnlab runs on torch's ops
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	rm -f $(VENV)/.installed-*
	touch $@

# Train the lecture's model on the default data (full MNIST if found, else the
# bundled real-MNIST sample) and show where the run and its curves are.
demo: $(STAMP)
	$(VENV)/bin/cnnlab summary
	$(VENV)/bin/cnnlab train --out $(RUNS)
	$(VENV)/bin/cnnlab runs --out $(RUNS)

# CNNLAB_KERNELS=on: the kernels this CPU runs are tested even where cnnlab would not
# train on them by default (an AVX2-only CPU, where torch's own ops are faster)
test: $(STAMP)
	CNNLAB_KERNELS=on $(PY) -m pytest -p no:cacheprovider tests

# the same suite with the compiled kernels ignored: what a machine without a compiler runs
test-no-kernels: $(STAMP)
	CNNLAB_NO_KERNELS=1 $(PY) -m pytest -p no:cacheprovider tests

bench: $(STAMP)
	bash benchmarks/setup.sh && $(PY) benchmarks/epoch_time.py

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info src/cnnlab/fast/_kernels_*.so
