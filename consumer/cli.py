"""Command line of lstm-consumer: parsing and dispatch; every option also an environment variable.

Exit codes: 0 done; 1 a failure (a result could not be written, a stored learner refused, no
stored learner to export); 2 bad usage or configuration (bad option value, unreadable file,
unusable address); 130 interrupted. TensorFlow is imported only by a command that needs
it, so `--help` stays fast.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys

from consumer.core.compile_cache import enable as enable_compile_cache
from consumer.core.config import LearnerConfig
from consumer.settings import PREFIX, EvaluateSettings, ExportSettings, RunSettings, SnapshotSettings
from consumer.tf_import import import_tensorflow_quietly
from lstm_stream import __version__
from lstm_stream.settings import ConfigError, add_arguments, from_namespace, unknown_variables

__all__ = ["build_parser", "main"]

PROG = "lstm-consumer"
EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 1, 2, 130

MAIN_EPILOG = f"""\
Every option is also an environment variable: {PREFIX}<OPTION> (e.g. {PREFIX}WINDOW).
Flags win over the environment. `lstm-consumer COMMAND --help` lists a command's options.

exit codes: 0 done; 1 a failure; 2 bad usage or configuration"""

RUN_HELP = "learn from the input topic and publish a prediction per message (the service)"
RUN_EPILOG = """\
input records: key = stream id (null: the default stream); value = the UTF-8 token, or with
--value-format json the value at --value-field, a dotted path into the JSON (event.type), and
with --key-field the stream id from the value too (user.id). Strings are tokens as they are,
numbers in their shortest form (7.0 is 7), true/false as words. Invalid records go to the
dead-letter topic with headers lstm-stream.dead-letter.{reason,detail,topic,partition,offset}.
prediction records: key = the stream id; value = JSON with key, partition, offset (of the input
record), predicted, probability (the published guess: the LSTM and the count model mixed),
model_step, previous_hit, baseline, lstm, lstm_probability (each input's own guess). Read them
read_committed.

examples:
  lstm-consumer run --bootstrap-servers 127.0.0.1:9092 --group-id demo
  lstm-consumer run --value-format json --value-field event.type --key-field user.id
  LSTM_CONSUMER_PROCESSING_GUARANTEE=at_least_once lstm-consumer run --http-port 9400"""

EXPORT_HELP = "write a partition's current model from the state topic as a Keras file"
EXPORT_EPILOG = """\
example:
  lstm-consumer export --group-id demo --partition 0 --out model.keras
The model's settings are those the stored learner records: no model option is needed."""

SNAPSHOT_HELP = "back up a partition's learner to a file, import one, or inspect one"
SNAPSHOT_EPILOG = """\
examples:
  lstm-consumer snapshot export backup.lstm --group-id demo --partition 0
  lstm-consumer snapshot inspect backup.lstm
  lstm-consumer snapshot import backup.lstm --group-id demo --partition 0
  lstm-consumer evaluate history.tsv --save trained.lstm --units 64
  lstm-consumer snapshot import trained.lstm --group-id new --units 64
export writes FILE and FILE.json (the input offset the learner continues from). import checks
that FILE restores under the model options given (those the group runs with), refuses while
the group has members unless --force, and continues from --offset, else FILE.json's offset,
else the group's committed offset, else the partition's end."""

EVALUATE_HELP = "replay a token file through the learner offline and report its hit rates"
EVALUATE_EPILOG = """\
input: one token per line (whitespace stripped, blank lines skipped) for the default stream,
or KEY<TAB>TOKEN lines for several streams; FILE - reads standard input.

--json prints one object on stdout: messages, predictions (scored), hit_rate,
rolling_hit_rate_100/_1000, log_loss, msgs_to_99 (first message at which 99 of the last 100
scored predictions hit), hit_rate_after_99 for the published predictions; the same with the
prefixes lstm_ (the LSTM alone) and baseline_ (order-N counts); msgs_per_s, vocabulary,
new_tokens, recycled_tokens, max_rss_mb (peak), rss_mb (at the end), model_step, mode, config, ...

examples:
  lstm-consumer evaluate tokens.txt --window 16 --json
  printf 'a\\nb\\na\\nb\\n' | lstm-consumer evaluate - --window 1
  LSTM_CONSUMER_MODE=relaxed lstm-consumer evaluate events.tsv --plot hit-rate.png"""


def build_parser() -> argparse.ArgumentParser:
    raw = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Learn token sequences online from Kafka and publish next-token predictions.",
        epilog=MAIN_EPILOG,
        formatter_class=raw,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    evaluate = commands.add_parser(
        "evaluate", help=EVALUATE_HELP, description=EVALUATE_HELP, epilog=EVALUATE_EPILOG, formatter_class=raw
    )
    evaluate.add_argument("file", metavar="FILE", help="the tokens to replay (- for standard input)")
    add_arguments(evaluate, EvaluateSettings, PREFIX)
    add_arguments(evaluate, LearnerConfig, PREFIX)
    run = commands.add_parser(
        "run", help=RUN_HELP, description=RUN_HELP, epilog=RUN_EPILOG, formatter_class=raw
    )
    add_arguments(run, RunSettings, PREFIX)
    add_arguments(run, LearnerConfig, PREFIX)
    export = commands.add_parser(
        "export", help=EXPORT_HELP, description=EXPORT_HELP, epilog=EXPORT_EPILOG, formatter_class=raw
    )
    add_arguments(export, ExportSettings, PREFIX)
    snapshot = commands.add_parser(
        "snapshot", help=SNAPSHOT_HELP, description=SNAPSHOT_HELP, epilog=SNAPSHOT_EPILOG, formatter_class=raw
    )
    actions = snapshot.add_subparsers(dest="action", metavar="ACTION", required=True)
    inspect = actions.add_parser("inspect", help="what a snapshot file holds, as JSON (no broker)")
    inspect.add_argument("file", metavar="FILE", help="a snapshot file (snapshot export, evaluate --save)")
    backup = actions.add_parser("export", help="a partition's stored learner to FILE (and FILE.json)")
    backup.add_argument("file", metavar="FILE", help="where to write the snapshot")
    add_arguments(backup, SnapshotSettings, PREFIX)
    load = actions.add_parser("import", help="FILE as a partition's learner on the state topic")
    load.add_argument("file", metavar="FILE", help="a snapshot file (snapshot export, evaluate --save)")
    add_arguments(load, SnapshotSettings, PREFIX)
    add_arguments(load, LearnerConfig, PREFIX)
    return parser


def _prepare_tensorflow(config: LearnerConfig, debug: bool, keras: bool = False) -> None:
    """Before TensorFlow's first import: its C++ start-up lines only at DEBUG (an explicit
    TF_CPP_MIN_LOG_LEVEL wins), and the persistent compile cache. Without `keras`, TensorFlow's
    eager import of Keras's optimizers is skipped (1.6 s and 50 MB of every start): with
    TF_USE_LEGACY_KERAS it looks for `tf_keras`, which is not installed, and moves on. The
    learner never uses `tf.keras`; `export` (which builds a Keras model) keeps it."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "0" if debug else "3")
    if not keras:
        os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
    enable_compile_cache(config.compile_cache_dir)
    if os.environ["TF_CPP_MIN_LOG_LEVEL"] != "0":
        # Some of TensorFlow's lines come before it reads the level: see consumer/tf_import.py.
        import_tensorflow_quietly()


def _evaluate(ns: argparse.Namespace) -> int:
    config = from_namespace(LearnerConfig, PREFIX, ns)
    settings = from_namespace(EvaluateSettings, PREFIX, ns)
    _prepare_tensorflow(config, debug=False)
    from consumer.evaluate import run

    return run(ns.file, settings, config)


def _run(ns: argparse.Namespace) -> int:
    config = from_namespace(LearnerConfig, PREFIX, ns)
    settings = from_namespace(RunSettings, PREFIX, ns)
    _prepare_tensorflow(config, debug=settings.log_level == "DEBUG")
    from consumer.app import run

    return run(settings, config)


def _export(ns: argparse.Namespace) -> int:
    config = from_namespace(LearnerConfig, PREFIX, ns)
    settings = from_namespace(ExportSettings, PREFIX, ns)
    _prepare_tensorflow(config, debug=False, keras=True)
    logging.basicConfig(level=logging.WARNING, format="lstm-consumer: %(message)s")
    from consumer.export import export

    return export(settings, config)


def _snapshot(ns: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.WARNING, format="lstm-consumer: %(message)s")
    if ns.action == "inspect":
        from consumer.backup import inspect
        from consumer.core.snapshot_read import SnapshotError

        try:
            print(json.dumps(inspect(ns.file), indent=1))
        except SnapshotError as exc:
            return _fail(f"{ns.file}: {exc}", EXIT_FAILED)
        return 0
    from kafka.errors import KafkaError

    from consumer.core.snapshot_read import SnapshotError

    settings = from_namespace(SnapshotSettings, PREFIX, ns)
    try:
        if ns.action == "export":
            from consumer.backup import export_file

            return export_file(settings, ns.file)
        config = from_namespace(LearnerConfig, PREFIX, ns)
        _prepare_tensorflow(config, debug=False)
        from consumer.backup import import_file

        return import_file(settings, config, ns.file)
    except (KafkaError, SnapshotError) as exc:
        return _fail(f"snapshot {ns.action}: {exc}", EXIT_FAILED)


COMMANDS = {"evaluate": _evaluate, "run": _run, "export": _export, "snapshot": _snapshot}


def _fail(message: str, code: int) -> int:
    print(f"{PROG}: error: {message}", file=sys.stderr)
    return code


def main(argv: list[str] | None = None) -> int:
    known = (RunSettings, LearnerConfig, EvaluateSettings, ExportSettings, SnapshotSettings)
    for line in unknown_variables(PREFIX, known):
        print(f"{PROG}: warning: {line}", file=sys.stderr)
    ns = build_parser().parse_args(argv)
    try:
        return COMMANDS[ns.command](ns)
    except ConfigError as exc:
        return _fail(str(exc), EXIT_USAGE)
    except OSError as exc:  # a result (the plot, the model) could not be written
        return _fail(str(exc), EXIT_FAILED)
    except KeyboardInterrupt:
        return _fail("interrupted", EXIT_INTERRUPTED)
