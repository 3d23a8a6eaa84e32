"""Learner snapshots: bit-identical continuation after a restore, and refusal of bad bytes.

Learners compile their programs per instance and per batch bucket (seconds each), so the tests
feed whole chunks of at most 8 messages (one bucket) and the Hypothesis properties reuse two
learners, reset by restoring a fresh learner's snapshot into them.
"""

from __future__ import annotations

import contextlib
import io
import json
import pickle
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from consumer.core.config import LearnerConfig
from consumer.core.layout import width_for, widths
from consumer.core.learner import Learner, Prediction
from consumer.core.snapshot import SnapshotError, restore, snapshot_bytes
from consumer.core.snapshot_model import variable_specs

Record = tuple[str | None, str]
SMALL = LearnerConfig(window=8, units=8, embedding_dim=4, loss_steps=2)
CHUNK = 8


def stream(count: int, keys: list[str | None], tokens: str, seed: int = 0) -> list[Record]:
    """A noisy periodic stream per key, interleaved at random."""
    rnd = random.Random(seed)
    phase = dict.fromkeys(keys, 0)
    out = []
    for _ in range(count):
        key = rnd.choice(keys)
        phase[key] += 1
        token = tokens[phase[key] % len(tokens)] if rnd.random() > 0.1 else rnd.choice(tokens)
        out.append((key, token))
    return out


def feed(learner: Learner, records: list[Record], chunks: list[int] | None = None) -> list[Prediction]:
    out: list[Prediction] = []
    sizes = iter(chunks or [])
    start = 0
    while start < len(records):
        size = next(sizes, CHUNK)
        out.extend(learner.learn_predict_many(records[start : start + size]))
        start += size
    return out


def state_of(learner: Learner) -> dict[str, Any]:
    """Everything observable that must survive a restore, beyond the predictions."""
    return {
        "scores": {
            name: (s.scored, s.hits, s.log_loss_sum, s.rolling_hit_rate(100), s.rolling_log_loss(1000))
            for name, s in learner.scores.items()
        },
        "model_step": learner.model_step,
        "messages": learner.messages,
        "evicted_keys": learner.evicted_keys,
        "vocab": (learner.vocab.new_tokens, learner.vocab.recycled, list(learner.vocab._ids)),
        "keys": list(learner.keys.states),
        "contexts": learner.count_model.contexts,
    }


def assert_continues_identically(config: LearnerConfig, before: list[Record], after: list[Record]) -> None:
    original = Learner(config)
    feed(original, before)
    data = snapshot_bytes(original)
    restored = restore(data, config)
    assert snapshot_bytes(restored) == data
    assert feed(restored, after) == feed(original, after)  # every Prediction field, floats exactly
    assert state_of(restored) == state_of(original)
    assert snapshot_bytes(restored) == snapshot_bytes(original)


def test_one_key_continues_bit_identically() -> None:
    records = stream(96, [None], "abcabd")
    assert_continues_identically(SMALL, records[:48], records[48:])


def test_many_keys_replay_recycling_and_eviction_continue_bit_identically() -> None:
    config = LearnerConfig(
        window=8, units=8, embedding_dim=4, loss_steps=2, replay=2, replay_buffer=16, capacity=3, max_keys=3
    )
    records = stream(128, ["a", "b", None, "d"], "abcdef", seed=1)
    assert_continues_identically(config, records[:64], records[64:])


def test_relaxed_mode_continues_bit_identically() -> None:
    records = stream(80, ["x", "y"], "abcab", seed=2)
    assert_continues_identically(
        LearnerConfig(window=8, units=8, loss_steps=4, mode="relaxed"), records[:40], records[40:]
    )


@pytest.mark.slow
def test_default_config_continues_bit_identically() -> None:
    # The default model takes a minute to compile here: the learner is restored into itself.
    config = LearnerConfig()
    records = stream(96, [None], "aabaacaab", seed=3)  # 96 > the default window of 64
    learner = Learner(config)
    feed(learner, records[:80])
    data = snapshot_bytes(learner)
    expected, state, final = feed(learner, records[80:]), state_of(learner), snapshot_bytes(learner)
    restore(data, config, into=learner)
    assert feed(learner, records[80:]) == expected
    assert state_of(learner) == state
    assert snapshot_bytes(learner) == final


# -- Hypothesis: restore equivalence over random streams ------------------------------------------
PROPERTY = LearnerConfig(
    window=4, units=4, embedding_dim=4, loss_steps=2, replay=1, replay_buffer=8, capacity=4
)


@pytest.fixture(scope="module")
def learner_pair() -> tuple[Learner, Learner, bytes]:
    first, second = Learner(PROPERTY), Learner(PROPERTY)
    return first, second, snapshot_bytes(first)


records_st = st.lists(st.tuples(st.sampled_from(["k", "l", None]), st.sampled_from("abcdef")), max_size=40)
chunks_st = st.lists(st.integers(1, CHUNK), min_size=1, max_size=10)


@settings(max_examples=10, deadline=None)
@given(records=records_st, cut=st.integers(0, 40), chunks=chunks_st)
def test_restore_is_equivalent_on_random_streams(
    learner_pair: tuple[Learner, Learner, bytes], records: list[Record], cut: int, chunks: list[int]
) -> None:
    original, spare, fresh = learner_pair
    restore(fresh, PROPERTY, into=original)  # a fresh learner again, without compiling anew
    before, after = records[:cut], records[cut:]
    feed(original, before, chunks)
    restored = restore(snapshot_bytes(original), PROPERTY, into=spare)
    assert feed(restored, after, chunks) == feed(original, after, chunks)
    assert state_of(restored) == state_of(original)


def test_fresh_snapshot_restores_a_fresh_learner(learner_pair: tuple[Learner, Learner, bytes]) -> None:
    _, spare, fresh = learner_pair
    restore(fresh, PROPERTY, into=spare)
    assert snapshot_bytes(spare) == fresh


# -- refusal of bad bytes --------------------------------------------------------------------------
@pytest.fixture(scope="module")
def valid() -> bytes:
    learner = Learner(SMALL)
    feed(learner, stream(24, ["a", None], "abc"))
    return snapshot_bytes(learner)


def entries(data: bytes) -> dict[str, np.ndarray]:
    with np.load(io.BytesIO(data), allow_pickle=False) as npz:
        return {name: npz[name] for name in npz.files}


def rewrite(
    data: bytes, changes: dict[str, Any] | None = None, allow_pickle: bool = False, **more: Any
) -> bytes:
    arrays: dict[str, Any] = {**entries(data), **(changes or {}), **more}
    buffer = io.BytesIO()
    np.savez(buffer, allow_pickle=allow_pickle, **{k: v for k, v in arrays.items() if v is not None})
    return buffer.getvalue()


def with_header(data: bytes, change: Callable[[dict[str, Any]], None]) -> bytes:
    header = json.loads(entries(data)["header"].tobytes())
    change(header)
    return rewrite(data, header=np.frombuffer(json.dumps(header).encode(), np.uint8))


def refused(data: bytes, config: LearnerConfig = SMALL) -> str:
    with pytest.raises(SnapshotError) as caught:
        restore(data, config)
    return str(caught.value)


class Trap:
    """Unpickling it would record that code ran."""

    ran: bool = False

    def __reduce__(self) -> tuple[Callable[[], None], tuple[()]]:
        return (_spring, ())


def _spring() -> None:
    Trap.ran = True


def test_the_valid_snapshot_restores(valid: bytes) -> None:
    assert restore(valid, SMALL).messages == 24


@pytest.mark.parametrize("fraction", [0.0, 0.001, 0.1, 0.5, 0.9, 0.999])
def test_truncated_snapshot_is_refused(valid: bytes, fraction: float) -> None:
    refused(valid[: int(len(valid) * fraction)])


def test_snapshot_missing_its_last_byte_is_refused(valid: bytes) -> None:
    refused(valid[:-1])


@settings(max_examples=50, deadline=None)
@given(data=st.binary(max_size=2000), zip_magic=st.booleans())
def test_random_bytes_raise_only_snapshot_error(data: bytes, zip_magic: bool) -> None:
    refused(b"PK\x03\x04" + data if zip_magic else data)


def test_flipped_bytes_raise_only_snapshot_error(valid: bytes) -> None:
    rnd = random.Random(0)
    for _ in range(30):
        damaged = bytearray(valid)
        for _ in range(4):
            damaged[rnd.randrange(len(damaged))] ^= 1 << rnd.randrange(8)
        # A flip inside a float weight can go unnoticed; anything else must be refused.
        with contextlib.suppress(SnapshotError):
            restore(bytes(damaged), SMALL)


def test_pickle_payload_is_refused_without_running_it() -> None:
    message = refused(pickle.dumps(Trap()))
    assert not Trap.ran
    assert "not a snapshot" in message


def test_object_array_is_refused_without_unpickling_it(valid: bytes) -> None:
    data = rewrite(valid, {"keys.seen": np.array([Trap(), Trap()], dtype=object)}, allow_pickle=True)
    message = refused(data)
    assert not Trap.ran
    assert "'keys.seen'" in message


def test_single_npy_array_is_refused() -> None:
    buffer = io.BytesIO()
    np.save(buffer, np.zeros(3))
    assert "not an .npz" in refused(buffer.getvalue())


def test_other_format_version_is_refused(valid: bytes) -> None:
    message = refused(with_header(valid, lambda h: h.update(version=1)))
    assert "version 1" in message


def test_other_format_name_is_refused(valid: bytes) -> None:
    assert "format" in refused(with_header(valid, lambda h: h.update(format="something-else")))


@pytest.mark.parametrize(
    ("config", "field"),
    [
        (LearnerConfig(window=9, units=8, embedding_dim=4, loss_steps=2), "--window"),
        (LearnerConfig(window=8, units=8, embedding_dim=4, loss_steps=2, capacity=300), "--capacity"),
        (LearnerConfig(window=8, units=8, embedding_dim=4, loss_steps=2, seed=1), "--seed"),
    ],
)
def test_snapshot_of_another_config_names_the_field(valid: bytes, config: LearnerConfig, field: str) -> None:
    message = refused(valid, config)
    assert field in message
    assert "another model configuration" in message


def test_free_fields_may_change_and_fewer_keys_evict_the_oldest(valid: bytes) -> None:
    config = LearnerConfig(window=8, units=8, embedding_dim=4, loss_steps=2, mode="relaxed", max_keys=1)
    learner = restore(valid, config)
    assert len(learner.keys) == 1
    assert learner.evicted_keys == 1


def test_into_a_learner_of_another_config_is_an_error(valid: bytes, learner_pair: Any) -> None:
    with pytest.raises(ValueError, match="another config"):
        restore(valid, SMALL, into=learner_pair[0])


@pytest.mark.parametrize(
    "changes",
    [
        {"model.weights.embedding": np.zeros((SMALL.vocab_size + 1, 4), np.float32)},
        {"model.weights.embedding": np.zeros((SMALL.vocab_size, 4), np.float64)},
        {"model.adam_step": np.zeros(1, np.float32)},
        {"model.mixer.weights": np.zeros((3, 3), np.float32)},
        {"keys.log_probs": np.zeros((2, 3, 2), np.float16)},
        {"keys.seen": np.zeros(3, np.int64)},
        {"replay.ids": np.zeros((1, 9), np.int32)},
        {"header": np.zeros(3, np.int32)},
    ],
    ids=["rows", "dtype", "scalar", "mixer", "probs", "keys", "replay", "header"],
)
def test_array_of_the_wrong_shape_or_dtype_is_refused(valid: bytes, changes: dict[str, Any]) -> None:
    (name,) = changes
    assert name in refused(rewrite(valid, changes))


def test_only_the_classes_in_use_are_stored(valid: bytes) -> None:
    log_probs = entries(valid)["keys.log_probs"]
    assert log_probs.shape == (2, 3, 1 + 3)  # 2 keys, 3 predictors: NEW, a, b, c


def test_ids_beyond_the_vocabulary_are_refused(valid: bytes) -> None:
    history = entries(valid)["keys.history_ids"].copy()
    history[1] = 99
    assert "history ids" in refused(rewrite(valid, {"keys.history_ids": history}))


def test_a_nan_weight_is_refused(valid: bytes) -> None:
    weights = entries(valid)["model.weights.kernel"].copy()
    weights[0, 0] = np.nan
    assert "finite" in refused(rewrite(valid, {"model.weights.kernel": weights}))


def test_inconsistent_counters_are_refused(valid: bytes) -> None:
    seen = entries(valid)["keys.seen"].copy()
    seen[0] = 1  # fewer messages than the key's history holds
    assert "history lengths" in refused(rewrite(valid, {"keys.seen": seen}))
    assert "next" in refused(with_header(valid, lambda h: h["replay"].update(next=3)))
    assert "new_tokens" in refused(with_header(valid, lambda h: h["vocab"].update(recycled=5)))


def test_bad_header_values_are_refused(valid: bytes) -> None:
    assert "keys" in refused(with_header(valid, lambda h: h["keys"].update(keys=[1, 2])))
    assert "distinct" in refused(with_header(valid, lambda h: h["keys"].update(keys=["a", "a"])))
    assert "rng" in refused(
        with_header(valid, lambda h: h["replay"].update(rng={"bit_generator": "MT19937"}))
    )
    assert "messages" in refused(with_header(valid, lambda h: h.update(messages=-1)))
    assert "novelty_weight" in refused(with_header(valid, lambda h: h.update(novelty_weight=1.5)))
    assert "hits" in refused(with_header(valid, lambda h: h["score_lstm"].update(hits=10**6)))


def test_baseline_table_is_checked(valid: bytes) -> None:
    counts = entries(valid)["baseline.counts"].copy()
    counts[0] = 0  # a follower never seen
    assert "positive" in refused(rewrite(valid, {"baseline.counts": counts}))
    lengths = entries(valid)["baseline.context_lengths"].copy()
    lengths[0] = 5  # not an order the model counts
    assert "contexts must hold" in refused(rewrite(valid, {"baseline.context_lengths": lengths}))


def test_extra_and_missing_entries_are_refused(valid: bytes) -> None:
    assert "unexpected entries ['extra']" in refused(rewrite(valid, extra=np.zeros(1)))
    assert "'keys.seen' is missing" in refused(rewrite(valid, {"keys.seen": None}))


def test_snapshot_holds_only_numbers(valid: bytes) -> None:
    assert all(array.dtype.kind in "biuf" for array in entries(valid).values())


def test_a_pending_outlier_and_the_readings_continue_bit_identically() -> None:
    """Outliers being read (`consumer.core.repair`) survive a restore: the snapshot is cut while
    one is pending, after the readings have a history."""
    config = LearnerConfig(
        window=8, units=8, embedding_dim=4, loss_steps=2, context_order=6, baseline_order=2
    )
    records: list[Record] = [("k", "aab"[i % 3]) for i in range(120)]
    for at in (60, 75, 90, 101):
        records.insert(at, ("k", f"x{at}"))  # foreign tokens, inserted
    cut = 102  # just after the last one: its readings are still open
    original = Learner(config)
    feed(original, records[:cut])
    assert original.keys.states["k"].outlier is not None
    assert sum(original.readings.wins) >= 2
    data = snapshot_bytes(original)
    restored = restore(data, config)
    assert restored.keys.states["k"].outlier == original.keys.states["k"].outlier
    assert restored.readings.wins == original.readings.wins
    assert feed(restored, records[cut:]) == feed(original, records[cut:])
    assert snapshot_bytes(restored) == snapshot_bytes(original)


def full_model(data: bytes) -> dict[str, np.ndarray]:
    """The model's arrays at their full size, as snapshots before version 6 saved them."""
    state = restore(data, SMALL).program.get_state()
    return {name: array for (name, _), array in zip(variable_specs(SMALL), state, strict=True)}


def inputs_of_orders(*orders: int) -> list[int]:
    """The mixer's inputs (0: the LSTM) that read the count model's `orders`."""
    return [1 + SMALL.mixed_rows.index(SMALL.count_orders.index(order) + 1) for order in orders]


def test_a_version_2_snapshot_restores_with_no_outlier_pending_and_a_new_overall_vector(valid: bytes) -> None:
    def as_version_2(header: dict[str, Any]) -> None:
        header.update(version=2)
        header.pop("model_width")
        header.pop("outlier_readings")
        header.pop("novelty_weight")
        header["vocab"].pop("grown")

    old = {
        k: v
        for k, v in entries(with_header(valid, as_version_2)).items()
        if ".outlier_" not in k
        and ".birth_" not in k
        and k not in ("vocab.sightings", "vocab.last_seen", "keys.new_mix")
    } | full_model(valid)
    kept = {k: v for k, v in old.items() if k != "model.mixer.overall"}
    for name in ("model.mixer.weights", "model.mixer.shared"):
        kept[name] = np.delete(kept[name], inputs_of_orders(1, 3), axis=-1)  # not in version 2's mixer
    buffer = io.BytesIO()
    np.savez(buffer, allow_pickle=False, **kept)
    learner = restore(buffer.getvalue(), SMALL)
    assert learner.readings.wins == [0, 0, 0]
    assert all(state.outlier is None for state in learner.keys.states.values())
    overall = learner.program.get_state()[-1]
    assert overall.tolist() == [0.0] * (len(overall) - 1) + [1.0]  # on the longest count order


def test_a_version_3_snapshot_restores_with_every_first_sighting_staying_new() -> None:
    learner = Learner(SMALL)
    feed(learner, [*stream(24, ["a", None], "abc"), ("a", "once")])
    data = snapshot_bytes(learner)

    def as_version_3(header: dict[str, Any]) -> None:
        header.update(version=3)
        header.pop("model_width")
        header.pop("novelty_weight")
        header["baseline"].pop("births")
        header["vocab"].pop("grown")

    old = {
        k: v
        for k, v in entries(with_header(data, as_version_3)).items()
        if ".birth_" not in k and k not in ("vocab.sightings", "vocab.last_seen", "keys.new_mix")
    } | full_model(data)
    # Version 3's mixer had no input for the count model's orders 1 and 3.
    new_inputs = inputs_of_orders(1, 3)
    for name in ("model.mixer.weights", "model.mixer.shared", "model.mixer.overall"):
        old[name] = np.delete(old[name], new_inputs, axis=-1)
    buffer = io.BytesIO()
    np.savez(buffer, allow_pickle=False, **old)
    once = int(learner.vocab.assigned_at[learner.vocab.tokens.index("once")])
    assert list(restore(data, SMALL).count_model.births) == [once]  # the token seen once waits
    restored = restore(buffer.getvalue(), SMALL)
    assert restored.count_model.births == {}
    mixer = restored.program.get_state()[-5:]  # weights, shared, updates, shared_updates, overall
    for array, name in zip((mixer[0], mixer[1], mixer[4]), ("weights", "shared", "overall"), strict=True):
        assert not np.asarray(array)[..., new_inputs].any()
        kept = np.delete(np.asarray(array), new_inputs, axis=-1)
        assert np.array_equal(kept, old[f"model.mixer.{name}"])


def test_a_version_4_snapshot_restores_with_the_mixer_as_it_was() -> None:
    """Version 4's mixer had no input for the count model's order 1: it starts at 0, and every
    other weight is kept, so the mixture is the one version 4 made."""
    learner = Learner(SMALL)
    records = stream(40, ["a", "b"], "abcab")
    feed(learner, records)
    data = snapshot_bytes(learner)
    new_input = inputs_of_orders(1)

    def as_version_4(header: dict[str, Any]) -> None:
        header.update(version=4)
        header.pop("model_width")
        header.pop("novelty_weight")

    old = {k: v for k, v in entries(with_header(data, as_version_4)).items() if k != "keys.new_mix"}
    old |= full_model(data)
    for name in ("model.mixer.weights", "model.mixer.shared", "model.mixer.overall"):
        old[name] = np.delete(old[name], new_input, axis=-1)
    buffer = io.BytesIO()
    np.savez(buffer, allow_pickle=False, **old)
    restored = restore(buffer.getvalue(), SMALL)
    mixer = restored.program.get_state()[-5:]
    for array, name in zip((mixer[0], mixer[1], mixer[4]), ("weights", "shared", "overall"), strict=True):
        assert not np.asarray(array)[..., new_input].any()
        assert np.array_equal(np.delete(np.asarray(array), new_input, axis=-1), old[f"model.mixer.{name}"])
    assert len(feed(restored, records[:10])) == 10  # and it learns on


def test_a_growing_vocabulary_continues_bit_identically() -> None:
    from tests.test_learner import first_step

    config = LearnerConfig(
        window=8, units=8, embedding_dim=4, loss_steps=2, replay=2, replay_buffer=16, capacity=8, max_keys=3
    )
    with first_step(2):  # limits 2, 4, 8: it grows across the snapshot
        records = stream(160, ["a", None], "abcdefghij", seed=4)
        learner = Learner(config)
        feed(learner, records[:12])
        assert learner.vocab.limit == 4
        assert_continues_identically(config, records[:12], records[12:])
        feed(learner, records[12:])
        assert learner.vocab.limit == 8


def test_save_and_load_a_file_continue_bit_identically(tmp_path: Path) -> None:
    from consumer.core.snapshot import load, recorded_config, save

    learner = Learner(SMALL)
    records = stream(80, ["a", "b"], "abcab")
    feed(learner, records[:50])
    path = tmp_path / "learner.lstm"
    save(learner, path)
    assert [p.name for p in tmp_path.iterdir()] == ["learner.lstm"]  # no partial file left
    assert recorded_config(path.read_bytes()) == SMALL.model_fields()
    loaded = load(path)
    assert loaded.config == SMALL
    assert loaded.predict("a") == learner.predict("a")
    assert feed(loaded, records[50:]) == feed(learner, records[50:])
    path.write_bytes(b"not a snapshot")
    with pytest.raises(SnapshotError):
        load(path)


def test_predict_reads_the_pending_prediction_and_learns_nothing() -> None:
    learner = Learner(SMALL, top_k=3)
    out = feed(learner, stream(60, ["a"], "abc"))
    before = snapshot_bytes(learner)
    top = learner.predict("a", k=3)
    assert [token for token, _ in top] == [token for token, _ in out[-1].top]
    for (_, p), (_, q) in zip(top, out[-1].top, strict=True):
        assert p == pytest.approx(q, rel=0.01)  # kept as float16 logs
    assert learner.predict("a", k=1) == top[:1]
    assert learner.predict("nobody") == []
    assert snapshot_bytes(learner) == before


def test_the_model_is_saved_only_as_wide_as_the_vocabulary_in_use_and_restored_whole(valid: bytes) -> None:
    learner = restore(valid, SMALL)
    width = width_for(learner.vocab.end, SMALL.vocab_size)
    assert width < SMALL.vocab_size  # a few tokens of a larger capacity
    saved = entries(valid)
    assert saved["model.weights.embedding"].shape == (width, SMALL.embedding_dim)
    assert saved["model.weights.dense_kernel"].shape == (SMALL.units, width)
    assert saved["model.mixer.weights"].shape[0] == width
    # Past the width the state is a new program's, bit for bit, as the learner that saved it holds.
    original = Learner(SMALL)
    feed(original, stream(24, ["a", None], "abc"))
    for got, want in zip(learner.program.get_state(), original.program.get_state(), strict=True):
        assert np.array_equal(got, want)


def test_a_version_5_snapshot_with_the_whole_arrays_continues_bit_identically(valid: bytes) -> None:
    def as_version_5(header: dict[str, Any]) -> None:
        header.update(version=5)
        header.pop("model_width")

    old = rewrite(with_header(valid, as_version_5), full_model(valid))
    more = stream(12, ["a", None], "abc")
    assert feed(restore(old, SMALL), more) == feed(restore(valid, SMALL), more)


@pytest.mark.parametrize("width", [None, "8", 7, 1 << 20, "narrow"])
def test_a_model_width_that_is_no_compiled_width_or_too_narrow_is_refused(width: Any) -> None:
    learner = Learner(SMALL)
    feed(learner, [("k", f"t{i}") for i in range(12)])  # 12 tokens: wider than the narrowest width
    narrowest = widths(SMALL.vocab_size)[0]
    assert width_for(learner.vocab.end, SMALL.vocab_size) > narrowest

    def change(header: dict[str, Any]) -> None:
        header["model_width"] = narrowest if width == "narrow" else width

    with pytest.raises(SnapshotError, match="model_width"):
        restore(with_header(snapshot_bytes(learner), change), SMALL)


# -- anomaly marks (consumer.core.feedback) ----------------------------------------------------------
def test_anomaly_marks_survive_a_restore() -> None:
    learner = Learner(SMALL)
    feed(learner, stream(24, ["a", None], "abc"))
    book = learner.feedback
    assert book.judge(100, "a", ("a", "b"), "x", by_rank=True)
    assert book.judge(101, None, ("^", "c"), "y", by_rank=True)
    book.mark(100, "a", normal=True)
    book.mark(101, None, normal=False)
    copy = restore(snapshot_bytes(learner), SMALL)
    assert copy.feedback.save() == book.save()
    assert not copy.feedback.judge(102, "b", ("a", "b"), "x", by_rank=True)  # allowed
    assert copy.feedback.judge(103, "b", ("^", "c"), "y", by_rank=False)  # confirmed


@pytest.mark.parametrize(
    ("field", "value"),
    [("normal", [["a", "b"]]), ("confirmed", [[1, 2, 3]]), ("flagged", [["ref", "k", "a", "b", "c"]])],
)
def test_a_corrupt_feedback_part_is_refused(valid: bytes, field: str, value: Any) -> None:
    def corrupt(header: dict[str, Any]) -> None:
        header["feedback"][field] = value

    assert f"feedback: {field}" in refused(with_header(valid, corrupt))


def test_a_version_6_snapshot_restores_with_no_marks(valid: bytes) -> None:
    def as_version_6(header: dict[str, Any]) -> None:
        header.update(version=6)
        header.pop("feedback")

    learner = restore(with_header(valid, as_version_6), SMALL)
    assert learner.feedback.save() == Learner(SMALL).feedback.save()
