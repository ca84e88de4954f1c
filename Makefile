# Two entry points that work on a fresh machine: `make demo` and `make test`.
# Each makes its own virtual environment; torch is installed first (the pinned CPU build) when the
# environment has none, so pip never resolves a torch with gigabytes of CUDA packages.
PYTHON ?= python3
TORCH_PIN ?= torch==2.13.0
# torchvision is only needed by the reference models the parity tests compare with (timm);
# pinned to the release that matches TORCH_PIN so pip does not replace torch. A failed install
# stops `make test`: the parity tests must run, not skip.
TORCHVISION_PIN ?= torchvision==0.28.0
DEMO_ENV := .venv
TEST_ENV := .venv-test
OUT ?= out/demo

.PHONY: demo studio test test-older-kernels clean

$(DEMO_ENV)/.ready: setup.cfg pyproject.toml constraints.txt
	$(PYTHON) -m venv $(DEMO_ENV)
	$(DEMO_ENV)/bin/python -c "import torch" 2>/dev/null || $(DEMO_ENV)/bin/pip install -q $(TORCH_PIN)
	$(DEMO_ENV)/bin/pip install -q -c constraints.txt -e .
	touch $@

$(TEST_ENV)/.ready: setup.cfg pyproject.toml constraints.txt
	$(PYTHON) -m venv $(TEST_ENV)
	$(TEST_ENV)/bin/python -c "import torch" 2>/dev/null || $(TEST_ENV)/bin/pip install -q $(TORCH_PIN)
	$(TEST_ENV)/bin/pip install -q -c constraints.txt -e ".[test,onnx]"
	$(TEST_ENV)/bin/pip install -q -c constraints.txt "$(TORCHVISION_PIN)" timm || { echo "error: installing $(TORCHVISION_PIN) and timm failed; the parity tests against timm / transformers' EdgeTAM need them (a silent skip would hide a broken reference)" >&2; exit 1; }
	touch $@

demo: $(DEMO_ENV)/.ready
	$(DEMO_ENV)/bin/python -m edgetam_hf demo --out $(OUT)

# The studio's web stack (the `studio` extra) goes into the demo's environment.
$(DEMO_ENV)/.studio-ready: $(DEMO_ENV)/.ready
	$(DEMO_ENV)/bin/pip install -q -c constraints.txt -e ".[studio]"
	touch $@

studio: $(DEMO_ENV)/.studio-ready
	$(DEMO_ENV)/bin/python -m edgetam_hf studio

test: $(TEST_ENV)/.ready
	$(TEST_ENV)/bin/python -m pytest -q

# The default tier (no fixtures) again on the kernels of an older CPU than this one, without the
# slow tests that compare no two computation paths (CI runs it).
test-older-kernels: $(TEST_ENV)/.ready
	EDGETAM_FIXTURES= .ci/older-kernels $(TEST_ENV)/bin/python -m pytest -q -m "not slow"

clean:
	rm -rf $(DEMO_ENV) $(TEST_ENV) out
