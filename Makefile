# Set-up and everyday commands. `make run` runs the demo, `make test` runs the whole test suite;
# both create .venv with the ROS 2 kilted wheels and everything else from PyPI on first use.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
ROS_WHEELS := ros-rclpy ros-sensor-msgs ros-std-msgs ros-diagnostic-msgs ros-rmw-fastrtps-cpp
BUILD_TOOLS := colcon-common-extensions 'setuptools<80' wheel ros-ament-package catkin-pkg pytest mypy
PY_DEPS := numpy rosbags matplotlib opencv-python-headless
# the ROS 2 linters the lint tests run, with the flake8 plugins a ROS install brings (ROS Humble's versions)
LINT_DEPS := ament-lint-flake8 ament-lint-pep257 flake8==4.0.1 flake8-builtins==1.5.3 flake8-comprehensions==3.8.0 \
	flake8-docstrings==1.6.0 flake8-import-order==0.18.1 flake8-quotes==3.3.1 pydocstyle==6.3.0
# every shell that runs ROS code needs the wheels' ament index
ROS_ENV := . $(BIN)/activate && export AMENT_PREFIX_PATH=$$VIRTUAL_ENV &&
# the demos run in a ROS domain of their own (a random ROS_DOMAIN_ID), never mixing with other ROS traffic
DEMO_ENV := $(ROS_ENV) export ROS_DOMAIN_ID=$$($(BIN)/python -c 'import random; print(random.randint(1, 100))') && \
	echo "ROS_DOMAIN_ID=$$ROS_DOMAIN_ID" &&
COLCON_DIRS := --build-base build --install-base install

.PHONY: run test build bench sim sweep replay evaluate clean

# the demo: 4 simulated cameras at 30 FPS (640x480) on a GPU; without one (no pycuda or no CUDA device) a load
# that the numpy reference engine carries on a CPU, said in the first line
run: $(VENV)/.ready
	@if $(BIN)/python -c 'import pycuda.driver as d; d.init(); assert d.Device.count() > 0' 2>/dev/null; then \
		echo 'make run: a CUDA GPU: 4 cameras at 30 FPS, 640x480, for 15 s'; \
		$(DEMO_ENV) $(BIN)/s3dnn-perception --cameras 4 --fps 30 --seconds 15 --engine auto; \
	else \
		echo 'make run: no CUDA GPU (pycuda or a device missing): the CPU reference engine with a load it carries,' \
			'2 cameras at 5 FPS, 320x240, for 15 s'; \
		$(DEMO_ENV) $(BIN)/s3dnn-perception --cameras 2 --fps 5 --width 320 --height 240 --seconds 15 \
			--engine reference; \
	fi

sim: $(VENV)/.ready
	$(BIN)/s3dnn-sim --cameras 24 --fps 30 --deadline-ms 50 --seconds 5 --gpu t4

# the package into install/, the scheduler's per-frame modules compiled by mypyc beside their sources
build: $(VENV)/.ready
	$(ROS_ENV) colcon build --symlink-install $(COLCON_DIRS)

test: build
	$(ROS_ENV) colcon test $(COLCON_DIRS) --return-code-on-test-failure --event-handlers console_direct+
	$(ROS_ENV) colcon test-result --test-result-base build --verbose

# every policy at 8 to 40 cameras on the modelled T4: a table, and the plot in build/sweep-t4.png
sweep: $(VENV)/.ready
	mkdir -p build
	$(BIN)/s3dnn-sim --sweep-cameras 8,16,24,32,40 --fps 30 --deadline-ms 50 --seconds 2 --gpu t4 \
		--plot build/sweep-t4.png

# a 10 s recording of 4 simulated cameras, written once, replayed into the node under each main policy
replay: $(VENV)/.ready
	test -d build/four_cams || $(BIN)/s3dnn-make-bag build/four_cams --cameras 4 --fps 30 --seconds 10
	$(DEMO_ENV) s3dnn-replay build/four_cams --policy s3dnn --engine auto
	$(DEMO_ENV) s3dnn-replay build/four_cams --policy streams --engine auto

# a recording of the photographs matplotlib ships (one camera, replayed as EVAL_SCALE cameras), evaluated under
# the three main policies at two loads; the report with its plots is build/evaluate/report/report.md. The defaults
# suit a CPU (reference engine); on a GPU e.g. make evaluate EVAL_FPS=30 EVAL_SCALE=16 EVAL_DEADLINE_MS=50
EVAL_FPS ?= 5
EVAL_SCALE ?= 2
EVAL_DEADLINE_MS ?= 1000
evaluate: $(VENV)/.ready
	rm -rf build/evaluate && mkdir -p build/evaluate/photos
	$(BIN)/python -c "import matplotlib, pathlib, shutil; d = pathlib.Path(matplotlib.get_data_path(), 'sample_data'); \
		[shutil.copy(d / n, 'build/evaluate/photos') for n in ('grace_hopper.jpg', 'Minduka_Present_Blue_Pack.png')]"
	$(BIN)/s3dnn-make-bag build/evaluate/bag --images build/evaluate/photos --fps $(EVAL_FPS) --seconds 4
	$(DEMO_ENV) s3dnn-evaluate build/evaluate/bag --policies s3dnn,streams,sequential --rates 1,2 \
		--cameras-scale $(EVAL_SCALE) --deadline-ms $(EVAL_DEADLINE_MS) --engine auto --report build/evaluate/report

bench: $(VENV)/.ready
	$(BIN)/python bench/scheduler_cost.py

$(VENV)/.ready: setup.py package.xml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else "Python >= 3.10 is needed (found " + sys.version.split()[0] + "); set PYTHON=python3.x")'
	@$(PYTHON) -m venv $(VENV) || { echo "could not create a venv: on Debian/Ubuntu run 'sudo apt install python3-venv'"; exit 1; }
	@touch $(VENV)/COLCON_IGNORE  # the wheels ship package.xml files colcon must not build
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q $(ROS_WHEELS) $(BUILD_TOOLS) $(PY_DEPS) $(LINT_DEPS)
	$(BIN)/pip install -q --no-deps --no-build-isolation -e .  # mypy, just installed, compiles the scheduler
	@touch $@

clean:
	rm -rf build install log $(VENV) *.egg-info
