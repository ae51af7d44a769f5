# c4d_ros developer entry points. Both targets set everything up from scratch on a fresh machine.
#   make test   create .venv, install the pinned environment, run the test suite
#   make demo   create .venv, install, generate a synthetic dynamic scene, replay it and print metrics
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.c4d-deps-stamp
PYTEST_MARKERS ?= not slow and not gpu and not weights
DEMO_OUT ?= demo_out

.PHONY: test demo setup bench clean config

setup: $(STAMP)

$(STAMP): requirements-dev.txt setup.py setup.cfg
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --disable-pip-version-check -q -r requirements-dev.txt
	$(PY) -m pip install --disable-pip-version-check -q --no-deps --no-build-isolation -e .
	@# the real Humble rclpy sources, read (never imported) by the node signature test; kept off sys.path
	$(PY) -m pip install --disable-pip-version-check -q --no-deps --upgrade \
	  --target $(VENV)/share/rclpy_intellisense rclpy-intellisense==1.2.0
	@touch $(STAMP)

test: $(STAMP)
	$(PY) -m pytest -q -m "$(PYTEST_MARKERS)" -p no:cacheprovider

demo: $(STAMP)
	$(PY) -m c4d_ros.demo --out $(DEMO_OUT)

bench: $(STAMP)
	$(PY) -m bench.run_all --json bench_results.json

clean:
	rm -rf $(VENV) build install log *.egg-info $(DEMO_OUT)

# regenerate config/c4d.yaml from C4DConfig + the ROS-only parameters (a test checks it is up to date)
config: $(STAMP)
	$(PY) -c "from c4d_ros.params import render_yaml; print(render_yaml(), end='')" > config/c4d.yaml
