"""Settings of lstm-consumer's commands besides the model's (`consumer.core.config.LearnerConfig`).

Every field is a flag and an environment variable with the prefix ``LSTM_CONSUMER_``. This
module stays light: `lstm-consumer --help` must not import TensorFlow.

>>> from lstm_stream.settings import load
>>> load(EvaluateSettings, PREFIX, ["--chunk", "64", "--json"], env={})
EvaluateSettings(chunk=64, json=True, plot='', quiet=False)
>>> load(EvaluateSettings, PREFIX, [], env={"LSTM_CONSUMER_CHUNK": "0"})
Traceback (most recent call last):
...
lstm_stream.settings.ConfigError: --chunk (env LSTM_CONSUMER_CHUNK): must be >= 1, got 0
"""

from __future__ import annotations

from dataclasses import dataclass

from lstm_stream.settings import at_least, option

__all__ = ["PREFIX", "EvaluateSettings"]

PREFIX = "LSTM_CONSUMER_"
EVALUATE = "evaluate"


@dataclass(frozen=True)
class EvaluateSettings:
    """How `lstm-consumer evaluate` replays a file and reports."""

    chunk: int = option(
        512,
        "messages per learner call (strict mode's results do not depend on it)",
        check=at_least(1),
        group=EVALUATE,
    )
    json: bool = option(False, "print one JSON object of results on stdout", group=EVALUATE)
    plot: str = option("", "write a PNG of the rolling hit rates to this path", group=EVALUATE)
    quiet: bool = option(False, "no progress bar and no summary on stderr", group=EVALUATE)
