"""The settings of `lstm-consumer evaluate` besides the model's: how it replays and reports.

Flags and environment variables (prefix ``LSTM_CONSUMER_``), as every command's.

>>> from lstm_stream.settings import load
>>> settings = load(EvaluateSettings, "LSTM_CONSUMER_", ["--chunk", "64", "--json"], env={})
>>> settings  # doctest: +NORMALIZE_WHITESPACE
EvaluateSettings(chunk=64, json=True, anomaly_top_g=1, anomaly_from=0, anomaly_segment=0,
                 feedback_first=0, plot='', save='', quiet=False)
>>> load(EvaluateSettings, "LSTM_CONSUMER_", [], env={"LSTM_CONSUMER_CHUNK": "0"})
Traceback (most recent call last):
...
lstm_stream.settings.ConfigError: --chunk (env LSTM_CONSUMER_CHUNK): must be >= 1, got 0
"""

from __future__ import annotations

from dataclasses import dataclass

from lstm_stream.settings import at_least, option

__all__ = ["EvaluateSettings"]

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
    anomaly_top_g: int = option(
        1,
        "the anomaly figures' G: a token not among its key's previous G most likely is an anomaly",
        check=at_least(1),
        group=EVALUATE,
    )
    anomaly_from: int = option(
        0,
        "count anomalies from this message on (the ones before are the learning)",
        check=at_least(0),
        group=EVALUATE,
    )
    anomaly_segment: int = option(
        0,
        "also report the anomaly figures (alarms per 1,000 messages; with labels precision and recall)"
        " over consecutive segments of this many counted messages (0: not)",
        check=at_least(0),
        group=EVALUATE,
    )
    feedback_first: int = option(
        0,
        "replay a reader of the alerts from the labels: the first N false alarms of each transition"
        " (context, token) are marked normal, as `POST .../feedback` would (0: no marks)",
        check=at_least(0),
        group=EVALUATE,
    )
    plot: str = option(
        "", "write a PNG of the rolling hit rates to this path (needs the [plot] extra)", group=EVALUATE
    )
    save: str = option(
        "",
        "write the learner, as the replay left it, to this file (a snapshot: load it in Python with "
        "consumer.core.snapshot.load)",
        group=EVALUATE,
    )
    quiet: bool = option(False, "no progress bar and no summary on stderr", group=EVALUATE)
