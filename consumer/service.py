"""`lstm-consumer run`: the online-learning service on Kafka.

Contract. One learner per assigned input partition (each key keeps its own window in it).
Everything one poll returns for a partition goes to its learner in one call (of at most
--max-poll-records), and the calls of different partitions run in parallel on --workers
threads (`consumer.processing`); each valid record yields exactly one prediction on the output
topic, each invalid one a dead letter (`consumer.records`). What is produced and processed
between two commits is one `Checkpoint` (`consumer.checkpoint`, whose `commit()` lists the
commit order of each guarantee): under exactly_once (default) predictions, dead letters,
snapshots and input offsets commit in ONE Kafka transaction per --commit-interval-ms, so
nothing is lost or doubled.

This module is the outer loop: it compiles the model once, before joining the group, then runs
one `Session` (`consumer.session`: the clients, partitions and open checkpoint of a connection)
until stop. A recoverable failure (a broker lost, a hung call caught by `consumer.watchdog`)
drops the session and starts a new one after a backoff of 1 s doubling to 30 s, from 1 s again
once a session has committed something; the new session restores the learners from the state
topic. A refused snapshot or a fenced instance is fatal; so is a connection that
`lstm_stream.diagnose` finds cannot work as configured (a TLS certificate not trusted, or
refused): a `ConfigError`, exit 2.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping

from kafka.errors import KafkaError, ProducerFencedError

from consumer.clients import ConnectError, connect
from consumer.core.config import LearnerConfig
from consumer.core.learner import Learner
from consumer.health import Probe
from consumer.partition import Partition
from consumer.processing import Processor
from consumer.query import Publisher
from consumer.restore import FatalError, Restorer
from consumer.session import Session
from consumer.settings import RunSettings
from consumer.stats import Stats
from consumer.watchdog import WatchdogTimeoutError
from lstm_stream.diagnose import unless_misconfigured

__all__ = ["FatalError", "Service"]

log = logging.getLogger("consumer.service")


class Service:
    """Consume, learn, predict, commit; `run` until `stop` is set."""

    def __init__(
        self, settings: RunSettings, config: LearnerConfig, probe: Probe, stats: Stats, store: Publisher
    ) -> None:
        self.settings, self.config, self.probe, self.stats, self.store = settings, config, probe, stats, store
        self.stop = threading.Event()
        self.processor = Processor(settings, stats, settings.worker_count)
        self.restorer = Restorer(settings, config, self._new_learner)
        self.session: Session | None = None  # while connected
        self._warm = False

    def partitions(self) -> Mapping[int, Partition]:
        """The partitions held now (for the metrics, read on the HTTP thread): a copy."""
        session = self.session
        return dict(session.partitions) if session is not None else {}

    def run(self) -> None:
        """Process until `stop`; start a new session after a recoverable failure."""
        backoff = 1.0
        unless_misconfigured(self.settings)  # a certificate problem: exit 2 now, not after a timeout
        try:
            while not self.stop.is_set():
                try:
                    self._session()
                    return
                except ProducerFencedError:
                    raise FatalError(
                        f"another instance uses the transactional id {self.settings.transactional_id!r}: "
                        "give each instance its own --instance-id"
                    ) from None
                except ConnectError as exc:
                    found = unless_misconfigured(self.settings)  # or exit 2: retrying cannot help
                    log.error(
                        "cannot connect to Kafka at %s (check --bootstrap-servers, --security-protocol %s "
                        "and, with SASL, the mechanism and credentials); retrying in %.0f s: %s%s",
                        self.settings.bootstrap_servers,
                        self.settings.security_protocol,
                        backoff,
                        exc,
                        f" ({found.message})" if found is not None else "",
                    )
                except (WatchdogTimeoutError, KafkaError) as exc:
                    if self.session is not None and self.session.commits:
                        backoff = 1.0  # it worked until now: a new failure, not the last one again
                    log.error("Kafka session failed, restarting in %.0f s: %s", backoff, exc, exc_info=True)
                self.stats.restarted()
                self._drop_session()
                self.stop.wait(backoff)
                backoff = min(backoff * 2, 30.0)
        finally:
            self._drop_session()
            self.processor.close()

    def _session(self) -> None:
        clients = connect(self.settings)
        self.session = Session(
            clients, self.settings, self.probe, self.stats, self.processor, self.restorer, self.store
        )
        if not self._warm:  # after the clients connected (a bad address fails fast), before joining
            self._warm_up()
            self._warm = True
        self.session.run(self.stop)
        self.session = None

    def _drop_session(self) -> None:
        session, self.session = self.session, None
        if session is not None:
            session.teardown()

    def _new_learner(self) -> Learner:
        # Every call padded to the bucket of a full poll: one compiled program per process.
        return Learner(self.config, min_batch=self.settings.max_poll_records, top_k=self.settings.top_k)

    def _warm_up(self) -> None:
        """Compile the learner's program before joining the group, not while partitions wait."""
        started = time.monotonic()
        log.info("compiling the model (the first start on a machine takes a while)")
        self._new_learner().program.warm_up(self.settings.max_poll_records)
        log.info("model compiled in %.1f s", time.monotonic() - started)
