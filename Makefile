# lstm-stream: every target sets up what it needs (virtualenv, Kafka) itself.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
DIST   ?= dist
# Where the benchmarks write their result files (bench/record.py); scripts/figures renders them.
RESULTS ?= docs/benchmarks

.PHONY: help venv lint format test compose-test images dist demo soak-crash soak-load soak-cluster bench bench-learner bench-consumer bench-quality bench-anomalies bench-query bench-feedback kafka-up kafka-down kafka-status lock figures clean

help:
	@echo "make test         lint + the whole test suite against a real Kafka broker (what CI runs)"
	@echo "make compose-test the docker-compose stack for real: up, scale, learn, scrape, restart, down (~5 min; CI runs it)"
	@echo "make images       the stack's base images: pulled, or stand-ins built where no registry answers"
	@echo "make dist         the wheel into dist/ (pip install dist/lstm_stream-*.whl; [consumer] for the consumer)"
	@echo "make demo         the whole pipeline as local processes"
	@echo "make lint         ruff + mypy"
	@echo "make soak-crash   the crash test at full size: 20,000 messages, 10 SIGKILLs (~10 min)"
	@echo "make soak-load    the load test at full size: 1,000,000 messages over 1,000 keys (~25 min)"
	@echo "make soak-cluster the 3-broker failover test at full size: 30,000 messages, 9 leader kills (~10 min)"
	@echo "make bench        the learner, producer and consumer benchmarks in one go, JSON lines (~15 min)"
	@echo "make bench-consumer  bench/consumer.py: the service end to end, 1 and 2 partitions, 1,000 keys (~4 min)"
	@echo "make bench-learner  bench/learner.py: the core's speed beside the seed's loop, capacities 64-1024 (~10 min)"
	@echo "make bench-quality  bench/quality.py: every kind of stream, 3 generator seeds each, full size (~15 min)"
	@echo "make bench-anomalies  bench/anomalies.py: the seed with 1% injected foreign tokens, every way, precision/recall (~10 min)"
	@echo "make bench-query  bench/query.py: GET /v1/streams/{key}/next at 200/s while the consumer learns, beside none (~5 min)"
	@echo "make bench-feedback  bench/feedback.py: marks POSTed on anomalies at 200 msgs/s, POST to committed (~2 min)"
	@echo "make figures      docs/benchmarks.md and README's figures from docs/benchmarks/*.json (after a bench target)"
	@echo "make lock         requirements/*.lock from pyproject.toml's ranges (exact versions, hashes, every platform)"
	@echo "make kafka-up     start the local broker (scripts/kafka up); kafka-down, kafka-status"

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml requirements/dev.lock scripts/venv
	PYTHON=$(PYTHON) VENV=$(VENV) scripts/venv
	@touch $@

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	for script in scripts/images scripts/compose-test scripts/other-pythons scripts/resolve-platform scripts/figures; do $(BIN)/mypy --no-error-summary $$script || exit 1; done

format: venv
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

test: venv
	VENV=$(VENV) scripts/test

# Needs a Docker engine (and docker compose or docker-compose); the base images come from
# scripts/images: the real ones where they can be pulled, stand-ins where they cannot.
compose-test: venv
	$(BIN)/python scripts/compose-test

images:
	scripts/images

dist: venv
	rm -rf $(DIST)
	$(BIN)/python -m pip wheel --quiet --no-deps --wheel-dir $(DIST) .
	@ls $(DIST)/*.whl

demo: venv
	VENV=$(VENV) scripts/demo

# The crash test at the size issue 8 asks for (CI runs it with 8,000 messages and 5 kills).
soak-crash: venv
	CRASH_MESSAGES=$${CRASH_MESSAGES:-20000} CRASH_KILLS=$${CRASH_KILLS:-10} VENV=$(VENV) \
		scripts/test tests/test_consumer_crash.py -s -q --timeout=3600

soak-load: venv
	LOAD_MESSAGES=$${LOAD_MESSAGES:-1000000} LOAD_SAMPLE_S=$${LOAD_SAMPLE_S:-10} VENV=$(VENV) \
		scripts/test tests/test_load.py -s -q --timeout=10800

# The three-broker failover test at full size (CI runs it with 6,000 messages and 3 kills).
soak-cluster: venv
	CLUSTER_MESSAGES=$${CLUSTER_MESSAGES:-30000} CLUSTER_ROUNDS=$${CLUSTER_ROUNDS:-3} VENV=$(VENV) \
		scripts/test tests/test_cluster.py -s -q --timeout=3600

bench-learner: venv
	$(BIN)/python bench/learner.py --capacities 64,128,256,512,1024 --record $(RESULTS)/learner.json

bench-consumer: venv
	$(BIN)/python bench/consumer.py --partitions 1 --record $(RESULTS)/consumer-1p.json
	$(BIN)/python bench/consumer.py --partitions 2 --record $(RESULTS)/consumer-2p.json

bench: bench-learner bench-consumer
	$(BIN)/python bench/producer.py --record $(RESULTS)/producer.json

bench-quality: venv
	$(BIN)/python bench/quality.py --record $(RESULTS)/quality.json

bench-anomalies: venv
	$(BIN)/python bench/anomalies.py --record $(RESULTS)/anomalies.json

bench-query: venv
	$(BIN)/python bench/query.py --record $(RESULTS)/query.json

bench-feedback: venv
	$(BIN)/python bench/feedback.py --record $(RESULTS)/feedback.json

# docs/benchmarks.md and README's figures block, from the result files the bench targets write.
figures: venv
	$(BIN)/python scripts/figures --write

kafka-up:
	scripts/kafka up

kafka-down:
	scripts/kafka down

kafka-status:
	scripts/kafka status

# The lock files (exact versions and hashes of every package, direct and transitive, for every
# platform and supported Python at once) after a change to the ranges in pyproject.toml: the
# versions already locked are kept where the ranges allow; `make lock UPGRADE=--upgrade` takes the
# newest. requirements/producer.lock: the producer's image; consumer.lock: the consumer's image;
# dev.lock: make venv, CI and the tests (every extra).
LOCK_FLAGS = --universal --generate-hashes --python-version 3.11 --quiet
LOCK := $(BIN)/uv pip compile pyproject.toml $(LOCK_FLAGS) --custom-compile-command "make lock" $(UPGRADE)
lock: venv
	$(LOCK) -o requirements/producer.lock
	$(LOCK) --extra consumer -o requirements/consumer.lock
	$(LOCK) --extra consumer --extra plot --extra dev -o requirements/dev.lock

clean:
	rm -rf $(VENV) build dist *.egg-info .mypy_cache .ruff_cache .pytest_cache .hypothesis
