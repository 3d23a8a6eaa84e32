"""`lstm-consumer run` end to end against the real broker: predictions, dead letters, state, shutdown."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.consumer_harness import (
    ConsumerProcess,
    committed_offsets,
    predictions_by_offset,
    produce,
    read_all,
    seed_tokens,
)

pytestmark = pytest.mark.integration


class Topics:
    """A fresh set of topics and a group for one test."""

    def __init__(
        self, make_topic: Callable[..., str], unique_name: Callable[[str], str], partitions: int = 1
    ):
        self.input = make_topic("in", partitions=partitions)
        self.output = make_topic("out", partitions=partitions)
        self.dead = make_topic("dlq", partitions=partitions)
        self.state = make_topic("state", partitions=partitions, config={"cleanup.policy": "compact"})
        self.group = unique_name("group")

    def args(self, *extra: str) -> list[str]:
        return [
            "--input-topic",
            self.input,
            "--output-topic",
            self.output,
            "--dead-letter-topic",
            self.dead,
            "--state-topic",
            self.state,
            "--group-id",
            self.group,
            "--instance-id",
            "test",
            *extra,
        ]


def test_seed_sequence_end_to_end(
    kafka_bootstrap: str, make_topic: Callable[..., str], unique_name: Callable[[str], str], tmp_path: Path
) -> None:
    topics = Topics(make_topic, unique_name)
    count = 2700
    produce(kafka_bootstrap, topics.input, (t.encode() for t in seed_tokens(count)))
    consumer = ConsumerProcess(kafka_bootstrap, tmp_path / "consumer.log", *topics.args())
    try:
        consumer.wait_ready()
        assert consumer.get("/healthz")[0] == 200
        records = read_all(kafka_bootstrap, topics.output, count, timeout_s=240)
        assert consumer.get("/metrics")[0] in (200, 404)
    finally:
        code = consumer.stop()
    assert code == 0, consumer.log()[-3000:]
    by_offset = predictions_by_offset(records)
    assert sorted(by_offset) == [(0, i) for i in range(count)]  # one prediction per input offset
    assert all(len(values) == 1 for values in by_offset.values())
    docs = [json.loads(by_offset[(0, i)][0]) for i in range(count)]
    assert set(docs[0]) >= {
        "key",
        "partition",
        "offset",
        "predicted",
        "probability",
        "model_step",
        "previous_hit",
    }
    assert docs[0]["previous_hit"] is None
    assert docs[0]["key"] is None
    assert {dict(r.headers).get("lstm-stream.instance") for r in records} == {b"test"}  # who made them
    last = [d["previous_hit"] for d in docs[-1000:]]
    assert sum(last) >= 990, f"hit rate over the last 1,000: {sum(last) / 10:.1f}%"
    tokens = seed_tokens(count + 1)
    assert all(d["predicted"] == tokens[i + 1] for i, d in enumerate(docs[-100:], start=count - 100))
    assert committed_offsets(kafka_bootstrap, topics.group, topics.input, [0]) == {0: count}
    assert "stopped" in consumer.log()


def test_bad_records_go_to_the_dead_letter_topic(
    kafka_bootstrap: str, make_topic: Callable[..., str], unique_name: Callable[[str], str], tmp_path: Path
) -> None:
    topics = Topics(make_topic, unique_name)
    values: list[bytes | None] = [
        b'{"token": "a"}',
        b"not json",
        b'{"token": "b"}',
        None,
        b'{"other": 1}',
        b'{"token": NaN}',
        b"\xff\xfe",
        b'{"token": "' + b"x" * 2000 + b'"}',
        b'{"token": [1]}',
        b'{"token": "a\\u0000b"}',
        b"[" * 10000 + b"]" * 10000,
        b'{"token": 7}',
    ]
    produce(kafka_bootstrap, topics.input, values, key=b"stream-1")
    consumer = ConsumerProcess(
        kafka_bootstrap, tmp_path / "consumer.log", *topics.args("--value-format", "json", "--window", "2")
    )
    try:
        predictions = read_all(kafka_bootstrap, topics.output, 3, timeout_s=180)
        dead = read_all(kafka_bootstrap, topics.dead, 9, timeout_s=60)
        assert consumer.proc.poll() is None, "bad records must not stop the consumer"
    finally:
        assert consumer.stop() == 0, consumer.log()[-3000:]
    docs = [json.loads(r.value) for r in predictions]
    assert [(d["offset"], d["key"]) for d in docs] == [(0, "stream-1"), (2, "stream-1"), (11, "stream-1")]
    reasons = {}
    for record in dead:
        headers = dict(record.headers)
        assert headers["lstm-stream.dead-letter.topic"] == topics.input.encode()
        assert record.key == b"stream-1"
        offset = int(headers["lstm-stream.dead-letter.offset"])
        assert record.value == values[offset]  # the original value, untouched
        reasons[offset] = headers["lstm-stream.dead-letter.reason"].decode()
    assert reasons == {
        1: "invalid_json",
        3: "empty",
        4: "missing_field",
        5: "invalid_json",
        6: "invalid_utf8",
        7: "oversized_value",
        8: "invalid_field",
        9: "control_characters",
        10: "oversized_value",
    }


def test_restart_restores_the_learner_and_continues(
    kafka_bootstrap: str, make_topic: Callable[..., str], unique_name: Callable[[str], str], tmp_path: Path
) -> None:
    topics = Topics(make_topic, unique_name)
    tokens = seed_tokens(1200)
    produce(kafka_bootstrap, topics.input, (t.encode() for t in tokens[:600]))
    first = ConsumerProcess(kafka_bootstrap, tmp_path / "first.log", *topics.args())
    try:
        read_all(kafka_bootstrap, topics.output, 600, timeout_s=180)
    finally:
        assert first.stop() == 0, first.log()[-3000:]
    produce(kafka_bootstrap, topics.input, (t.encode() for t in tokens[600:]))
    second = ConsumerProcess(kafka_bootstrap, tmp_path / "second.log", *topics.args())
    try:
        records = read_all(kafka_bootstrap, topics.output, 1200, timeout_s=180)
    finally:
        assert second.stop() == 0, second.log()[-3000:]
    assert "learner restored" in second.log()
    assert "offset=600" in second.log()
    docs = {json.loads(r.value)["offset"]: json.loads(r.value) for r in records}
    assert sorted(docs) == list(range(1200))
    assert len(records) == 1200
    # the restored learner continues: its first prediction is scored, its step counter goes on
    assert docs[600]["previous_hit"] is not None
    assert docs[600]["model_step"] == docs[599]["model_step"] + 1


def test_refused_snapshot_exits_clearly_and_reset_state_recovers(
    kafka_bootstrap: str, make_topic: Callable[..., str], unique_name: Callable[[str], str], tmp_path: Path
) -> None:
    topics = Topics(make_topic, unique_name)
    produce(kafka_bootstrap, topics.input, (t.encode() for t in seed_tokens(100)))
    state_key = f"{topics.group}/{topics.input}/0".encode()
    from kafka import KafkaProducer

    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap)
    headers = [("lstm-stream.offset", b"50"), ("lstm-stream.encoding", b"npz+zlib")]
    producer.send(topics.state, key=state_key, value=b"\x80\x04 not a snapshot", headers=headers, partition=0)
    producer.flush()
    producer.close()

    refused = ConsumerProcess(kafka_bootstrap, tmp_path / "refused.log", *topics.args())
    assert refused.wait(120) == 1
    assert "is refused: corrupt snapshot" in refused.log()
    assert "--reset-state" in refused.log()

    reset = ConsumerProcess(kafka_bootstrap, tmp_path / "reset.log", *topics.args("--reset-state"))
    try:
        records = read_all(kafka_bootstrap, topics.output, 100, timeout_s=180)
    finally:
        assert reset.stop() == 0, reset.log()[-3000:]
    assert sorted(json.loads(r.value)["offset"] for r in records) == list(range(100))
    again = ConsumerProcess(kafka_bootstrap, tmp_path / "again.log", *topics.args())  # the reset persisted
    try:
        again.wait_ready()
    finally:
        assert again.stop() == 0, again.log()[-3000:]
    assert "learner restored" in again.log()


def test_export_writes_a_keras_model_that_predicts_like_the_learner(
    kafka_bootstrap: str, make_topic: Callable[..., str], unique_name: Callable[[str], str], tmp_path: Path
) -> None:
    topics = Topics(make_topic, unique_name)
    tokens = seed_tokens(540)
    produce(kafka_bootstrap, topics.input, (t.encode() for t in tokens))
    consumer = ConsumerProcess(kafka_bootstrap, tmp_path / "consumer.log", *topics.args())
    try:
        records = read_all(kafka_bootstrap, topics.output, len(tokens), timeout_s=180)
    finally:
        assert consumer.stop() == 0
    last = max((json.loads(r.value) for r in records), key=lambda d: d["offset"])
    out = tmp_path / "model.keras"
    args = ["--group-id", topics.group, "--input-topic", topics.input, "--state-topic", topics.state]
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "consumer",
            "export",
            "--bootstrap-servers",
            kafka_bootstrap,
            *args,
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, result.stderr
    check = (
        "import json, sys, numpy as np, keras\n"
        f"model = keras.models.load_model({str(out)!r})\n"
        f"vocab = json.load(open({str(out) + '.vocab.json'!r}))['tokens']\n"
        "ids = {t: int(i) for i, t in vocab.items()}\n"
        "window = [ids[t] for t in sys.argv[1:]]\n"
        "probs = model.predict(np.array([window]), verbose=0)[0]\n"
        "print(vocab[str(3 + int(np.argmax(probs[3:])))])\n"  # a guess is a token: never NEW (id 2)
    )
    from consumer.core.config import LearnerConfig

    result = subprocess.run(
        [sys.executable, "-c", check, *tokens[-LearnerConfig().window :]],  # the model's input
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == last["lstm"]  # the export is the LSTM alone


def test_snapshot_export_inspect_and_import_move_a_learner_to_another_group(
    kafka_bootstrap: str, make_topic: Callable[..., str], unique_name: Callable[[str], str], tmp_path: Path
) -> None:
    """A backup of a partition's learner, read back as it was; the Keras export and the backup
    need no model option (the snapshot records them); an import is refused under other model
    settings and while the group has members, and a consumer of the new group continues the
    imported learner where the input's end was."""
    topics = Topics(make_topic, unique_name)
    tokens = seed_tokens(600)
    produce(kafka_bootstrap, topics.input, (t.encode() for t in tokens[:540]))
    units = ["--units", "24"]  # not the default (16)
    first = ConsumerProcess(kafka_bootstrap, tmp_path / "first.log", *topics.args(*units))
    try:
        read_all(kafka_bootstrap, topics.output, 540, timeout_s=180)
    finally:
        assert first.stop() == 0, first.log()[-3000:]

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "consumer", *args]
        return subprocess.run(command, capture_output=True, text=True, timeout=180)

    where = [
        "--bootstrap-servers",
        kafka_bootstrap,
        "--input-topic",
        topics.input,
        "--state-topic",
        topics.state,
    ]
    backup = tmp_path / "backup.lstm"
    exported = cli("snapshot", "export", str(backup), *where, "--group-id", topics.group)
    assert exported.returncode == 0, exported.stderr
    assert json.loads(exported.stdout)["offset"] == 540
    assert json.loads((tmp_path / "backup.lstm.json").read_text())["offset"] == 540
    inspected = cli("snapshot", "inspect", str(backup))
    assert inspected.returncode == 0, inspected.stderr
    figures = json.loads(inspected.stdout)
    assert (figures["messages"], figures["keys"], figures["config"]["units"]) == (540, 1, 24)
    keras_file = tmp_path / "model.keras"
    keras_export = cli("export", *where, "--group-id", topics.group, "--out", str(keras_file))
    assert keras_export.returncode == 0, keras_export.stderr
    assert keras_file.stat().st_size > 0

    other = unique_name("group")
    refused = cli("snapshot", "import", str(backup), *where, "--group-id", other)
    assert refused.returncode == 1
    assert "--units is 24 in the snapshot, 16 here" in refused.stderr
    imported = cli("snapshot", "import", str(backup), *where, "--group-id", other, *units)
    assert imported.returncode == 0, imported.stderr
    assert json.loads(imported.stdout)["offset"] == 540  # no offset of this group: the input's end
    produce(kafka_bootstrap, topics.input, (t.encode() for t in tokens[540:]))
    second = ConsumerProcess(
        kafka_bootstrap, tmp_path / "second.log", *topics.args(*units, "--group-id", other)
    )
    try:
        records = read_all(kafka_bootstrap, topics.output, 600, timeout_s=180)
        busy = cli("snapshot", "import", str(backup), *where, "--group-id", other, *units)
    finally:
        assert second.stop() == 0, second.log()[-3000:]
    assert busy.returncode == 1
    assert "has 1 member" in busy.stderr
    assert "learner restored" in second.log()
    assert "offset=540" in second.log()
    docs = {json.loads(r.value)["offset"]: json.loads(r.value) for r in records}
    assert sorted(docs) == list(range(600))  # the first group's 540, then the new group's 60
    assert docs[540]["previous_hit"] is not None  # the imported learner scores its first message
    assert docs[540]["model_step"] == docs[539]["model_step"] + 1
    assert sum(docs[o]["previous_hit"] for o in range(540, 600)) >= 55  # it had learned the seed


def test_export_without_a_stored_learner_fails_clearly(
    kafka_bootstrap: str, make_topic: Callable[..., str]
) -> None:
    state = make_topic("state")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "consumer",
            "export",
            "--bootstrap-servers",
            kafka_bootstrap,
            "--state-topic",
            state,
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1
    assert "no stored learner for partition 0" in result.stderr


@pytest.mark.parametrize(
    ("argv", "named"),
    [
        (["--commit-interval-ms", "0"], "--commit-interval-ms"),
        (["--processing-guarantee", "twice"], "--processing-guarantee"),
        (["--output-topic", "sequence"], "--output-topic"),
        (["--bootstrap-servers", "nohost"], "--bootstrap-servers"),
        (["--http-port", "70000"], "--http-port"),
        (["--window", "0"], "--window"),
    ],
)
def test_bad_configuration_exits_2_naming_the_option(argv: list[str], named: str) -> None:
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "consumer", "run", *argv], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2, result.stderr
    assert named in result.stderr
    assert time.monotonic() - started < 30


def test_busy_http_port_exits_2(tmp_path: Path) -> None:
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "consumer", "run", "--http-port", str(port)],
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert result.returncode == 2, result.stderr
    assert "--http-host/--http-port" in result.stderr


def test_at_least_once_publishes_every_offset_and_commits(
    kafka_bootstrap: str, make_topic: Callable[..., str], unique_name: Callable[[str], str], tmp_path: Path
) -> None:
    topics = Topics(make_topic, unique_name)
    produce(kafka_bootstrap, topics.input, (t.encode() for t in seed_tokens(600)))
    args = topics.args("--processing-guarantee", "at_least_once", "--snapshot-interval-s", "1")
    consumer = ConsumerProcess(kafka_bootstrap, tmp_path / "consumer.log", *args)
    try:
        records = read_all(kafka_bootstrap, topics.output, 600, timeout_s=240)
    finally:
        assert consumer.stop() == 0, consumer.log()[-3000:]
    assert sorted(predictions_by_offset(records)) == [(0, i) for i in range(600)]
    assert committed_offsets(kafka_bootstrap, topics.group, topics.input, [0]) == {0: 600}
    assert "transactional id none" in consumer.log()


def test_partitions_move_between_instances_without_loss_or_duplicates(
    kafka_bootstrap: str, make_topic: Callable[..., str], unique_name: Callable[[str], str], tmp_path: Path
) -> None:
    topics = Topics(make_topic, unique_name, partitions=2)
    per_partition = 600
    for partition in (0, 1):
        values = (t.encode() for t in seed_tokens(per_partition))
        produce(kafka_bootstrap, topics.input, values, key=f"k{partition}".encode(), partition=partition)
    first = ConsumerProcess(kafka_bootstrap, tmp_path / "a.log", *topics.args("--max-poll-records", "50"))
    second_args = [*topics.args("--max-poll-records", "50")]
    second_args[second_args.index("--instance-id") + 1] = "test-b"
    second = None
    try:
        first.wait_ready()
        read_all(kafka_bootstrap, topics.output, 100, timeout_s=180)  # the first has made progress
        second = ConsumerProcess(kafka_bootstrap, tmp_path / "b.log", *second_args)
        second.wait_ready()
        time.sleep(2)
        assert first.stop() == 0, first.log()[-3000:]  # its partitions move to the second
        records = read_all(kafka_bootstrap, topics.output, 2 * per_partition, timeout_s=300)
    finally:
        first.stop()
        if second is not None:
            assert second.stop() == 0, second.log()[-3000:]
    by_offset = predictions_by_offset(records)
    expected = [(p, i) for p in (0, 1) for i in range(per_partition)]
    assert sorted(by_offset) == expected
    assert all(len(values) == 1 for values in by_offset.values())
    assert {dict(r.headers)["lstm-stream.instance"] for r in records} <= {b"test", b"test-b"}
    assert "partitions revoked" in first.log()
    assert "learner restored" in second.log()


class _Opens:
    """Unpickling this creates a file: the proof a pickle payload was executed."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple[object, tuple[str, str]]:
        return (open, (str(self.path), "w"))


@pytest.mark.parametrize("payload", ["other_configuration", "wrong_shapes", "pickle"])
def test_a_stored_learner_is_refused_and_never_executed(
    kafka_bootstrap: str,
    make_topic: Callable[..., str],
    unique_name: Callable[[str], str],
    tmp_path: Path,
    payload: str,
) -> None:
    import io

    import numpy as np
    from kafka import KafkaProducer

    from consumer.core.config import LearnerConfig
    from consumer.core.learner import Learner
    from consumer.core.snapshot import snapshot_bytes
    from consumer.state import encode_state, state_headers

    topics = Topics(make_topic, unique_name)
    produce(kafka_bootstrap, topics.input, (t.encode() for t in seed_tokens(50)))
    marker = tmp_path / "executed"
    if payload == "pickle":
        buffer = io.BytesIO()
        np.savez(buffer, header=np.array([_Opens(marker)], dtype=object))
        data = buffer.getvalue()
        expected = "is refused: corrupt snapshot"
    elif payload == "wrong_shapes":  # this configuration's fingerprint, an embedding one row short
        from tests.test_snapshot import entries, rewrite

        data = snapshot_bytes(Learner(LearnerConfig()))
        embedding = entries(data)["model.weights.embedding"]
        short: dict[str, Any] = {"model.weights.embedding": embedding[:-1]}
        data = rewrite(data, **short)
        rows = len(embedding) - 1  # saved as wide as the vocabulary in use
        expected = f"is refused: corrupt snapshot: entry 'model.weights.embedding' is float32 ({rows}, 8)"
    else:
        data = snapshot_bytes(Learner(LearnerConfig(window=8, units=4, loss_steps=1)))  # all three differ
        expected = "another model configuration: --loss-steps is 1 in the snapshot, 64 here"
    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap)
    key = f"{topics.group}/{topics.input}/0".encode()
    producer.send(topics.state, key=key, value=encode_state(data), headers=state_headers(10), partition=0)
    producer.flush()
    producer.close()
    refused = ConsumerProcess(kafka_bootstrap, tmp_path / "refused.log", *topics.args())
    assert refused.wait(180) == 1, refused.log()[-3000:]
    assert expected in refused.log()
    assert "--reset-state" in refused.log()
    assert not marker.exists()
