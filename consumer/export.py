"""`lstm-consumer export`: a partition's current model, from the state topic, as a Keras file.

The model is the learner's LSTM in plain Keras layers: ``Embedding -> LSTM -> Dense(softmax)``
over the ids of a window of `--window` tokens (0 pads a short window, 1 marks the start of a
stream, 2 is NEW: a token not in the vocabulary). Ids the learner never predicts (padding,
begin-of-stream, ids not in use) get a dense bias of -1e9, so the exported softmax equals the
learner's masked one. ``OUT.vocab.json`` maps ids to tokens. The mixture with the count model
(what the service publishes) is not part of the export: it is the LSTM alone.

>>> config = LearnerConfig(window=3, units=2, embedding_dim=2, capacity=4)
>>> model = keras_model(Learner(config))
>>> model.input_shape, model.output_shape
((None, 3), (None, 7))
"""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path

import keras
import numpy as np
from kafka.errors import KafkaError

from consumer.core.config import LearnerConfig
from consumer.core.learner import Learner
from consumer.core.network import Params
from consumer.core.snapshot import recorded_config, restore
from consumer.core.snapshot_read import SnapshotError
from consumer.core.vocab import BOS_ID, NEW_ID, PAD_ID
from consumer.settings import ExportSettings
from consumer.state import read_states

__all__ = ["export", "keras_model"]

log = logging.getLogger("consumer.export")
MASKED = -1e9


def keras_model(learner: Learner) -> keras.Model:
    """The learner's current network as a Keras model (weights copied, masking in the bias)."""
    cfg = learner.config
    params = Params(*learner.program.get_state()[: len(Params._fields)])
    ids = keras.Input((cfg.window,), dtype="int32", name="token_ids")
    x = keras.layers.Embedding(cfg.vocab_size, cfg.embedding_dim, name="embedding")(ids)
    x = keras.layers.LSTM(cfg.units, name="lstm")(x)
    probs = keras.layers.Dense(cfg.vocab_size, activation="softmax", name="next_token")(x)
    model = keras.Model(ids, probs, name="lstm_stream")
    bias = np.full(cfg.vocab_size, MASKED, np.float32)
    ids_in_use = np.arange(cfg.vocab_size)
    usable = (ids_in_use >= NEW_ID) & (ids_in_use < learner.vocab.end)
    bias[usable] = params.dense_bias[usable]
    model.get_layer("embedding").set_weights([params.embedding])
    model.get_layer("lstm").set_weights([params.kernel, params.recurrent_kernel, params.bias])
    model.get_layer("next_token").set_weights([params.dense_kernel, bias])
    return model


def export(settings: ExportSettings, config: LearnerConfig) -> int:
    """Write the model of `settings.partition`; exit code 1 when the state topic has none."""
    try:
        stored = read_states(settings, [settings.partition], settings.client_kwargs(), settings.timeout_s)
    except KafkaError as exc:
        log.error("cannot read the state topic %s: %s", settings.state_topic, exc)
        return 1
    state = stored.get(settings.partition)
    if state is None:
        log.error(
            "no stored learner for partition %d of %s (group %s) in %s",
            settings.partition,
            settings.input_topic,
            settings.group_id,
            settings.state_topic,
        )
        return 1
    try:
        data = state.snapshot()
        learner = restore(data, dataclasses.replace(config, **recorded_config(data)))
    except SnapshotError as exc:
        log.error("partition %d: the stored learner is refused: %s", settings.partition, exc)
        return 1
    out = Path(settings.out)
    keras_model(learner).save(out)
    tokens = {str(i): t for i, t in enumerate(learner.vocab.tokens) if t is not None}
    vocab = {"pad": PAD_ID, "begin": BOS_ID, "new": NEW_ID, "tokens": tokens}
    out.with_name(out.name + ".vocab.json").write_text(json.dumps(vocab, indent=1, ensure_ascii=False) + "\n")
    print(
        f"wrote {out} and {out.name}.vocab.json: partition {settings.partition}, "
        f"{learner.messages} messages learned, model step {learner.model_step}, offset {state.offset}"
    )
    return 0
