"""Command line of lstm-producer: one subcommand per source, every option also an env variable.

Exit codes: 0 every message delivered; 1 a message failed or Kafka could not be used;
2 bad usage or configuration (unknown option, bad spec, unreadable file); 130 a second Ctrl-C.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Iterator
from dataclasses import dataclass

from lstm_stream import __version__
from lstm_stream.settings import ConfigError, add_arguments, from_namespace, unknown_variables
from producer.progress import summary
from producer.publisher import Publisher, PublishError
from producer.settings import PREFIX, FileSettings, PatternSettings, ProducerSettings
from producer.sources import (
    PartitionedSource,
    Record,
    Source,
    file_source,
    pattern_records,
    stdin_source,
)

__all__ = ["COMMANDS", "build_parser", "load_settings", "main", "open_source"]

PROG = "lstm-producer"
EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 1, 2, 130

MAIN_EPILOG = f"""\
Every option is also an environment variable: {PREFIX}<OPTION> (e.g. {PREFIX}BOOTSTRAP_SERVERS).
Flags win over the environment. `lstm-producer SOURCE --help` lists a source's options.

exit codes: 0 all delivered (also after SIGTERM/SIGINT); 1 a message failed or Kafka could not
be used; 2 bad usage or configuration (bad option, spec, file or column)"""

PATTERN_EPILOG = """\
spec grammar: comma-separated items; an item is a token or a (group), optionally followed by *N
(N >= 1 repeats). Tokens contain no whitespace nor , * ( ). The unit repeats forever.
  --spec "4*6,8,4*5,8,4*6,8,4*6,28"    the default: the seed's 27-token unit
  --spec "(1*2,2)*2,1*2,3"             1 1 2 1 1 2 1 1 3

examples:
  lstm-producer pattern --rate 100 --keys 4 --noise 0.05 --create-topic --partitions 4
  lstm-producer pattern --count 10000 --spec "a,b*2,c" --key demo"""

FILE_EPILOG = """\
examples:
  lstm-producer file tokens.txt --rate 50           one token per line (blank lines skipped)
  lstm-producer file events.csv --csv --column action --key-column user"""

STDIN_EPILOG = """\
example:
  tail -F app.log | cut -d' ' -f5 | lstm-producer stdin --key app --topic events"""


@dataclass(frozen=True)
class Command:
    settings: type[ProducerSettings]
    help: str
    epilog: str


COMMANDS = {
    "pattern": Command(PatternSettings, "a repeating pattern (the seed's by default)", PATTERN_EPILOG),
    "file": Command(FileSettings, "tokens of a text file, or a CSV column", FILE_EPILOG),
    "stdin": Command(ProducerSettings, "tokens of standard input, line by line", STDIN_EPILOG),
}


def build_parser() -> argparse.ArgumentParser:
    raw = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(
        prog=PROG, description="Publish token sequences to Kafka.", epilog=MAIN_EPILOG, formatter_class=raw
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sources = parser.add_subparsers(dest="source", metavar="SOURCE", required=True)
    for name, command in COMMANDS.items():
        sub = sources.add_parser(
            name, help=command.help, description=command.help, epilog=command.epilog, formatter_class=raw
        )
        if name == "file":
            sub.add_argument("path_arg", nargs="?", metavar="PATH", help="the file to read")
        add_arguments(sub, command.settings, PREFIX)
    return parser


def load_settings(ns: argparse.Namespace) -> ProducerSettings:
    """The source's settings from parsed flags, then the environment, then defaults."""
    if getattr(ns, "path_arg", None) is not None:
        if isinstance(getattr(ns, "path", None), str):
            raise ConfigError("PATH and --path: give only one")
        ns.path = ns.path_arg
    return from_namespace(COMMANDS[ns.source].settings, PREFIX, ns)


@contextlib.contextmanager
def open_source(settings: ProducerSettings) -> Iterator[Source | PartitionedSource]:
    """The records the settings ask for; a `ConfigError` if a file or column cannot be used."""
    key = settings.message_key()
    if isinstance(settings, PatternSettings):
        pattern = settings

        def records(partitions: int) -> Iterator[Record]:
            unit, keys, noise, seed = pattern.unit(), pattern.keys, pattern.noise, pattern.seed
            return pattern_records(unit, keys=keys, key=key, noise=noise, seed=seed, partitions=partitions)

        yield PartitionedSource(records)
    elif isinstance(settings, FileSettings):
        column, key_column = settings.column, settings.key_column
        with file_source(
            settings.path, key=key, column=column, key_column=key_column, count_total=not settings.quiet
        ) as source:
            yield source
    else:
        yield stdin_source(key=key)


def _fail(message: str, code: int) -> int:
    print(f"{PROG}: error: {message}", file=sys.stderr)
    return code


def main(argv: list[str] | None = None) -> int:
    for line in unknown_variables(PREFIX, (PatternSettings, FileSettings)):
        print(f"{PROG}: warning: {line}", file=sys.stderr)
    ns = build_parser().parse_args(argv)
    try:
        settings = load_settings(ns)
        with open_source(settings) as source:
            stats = Publisher(settings).run(source)
    except ConfigError as exc:
        return _fail(str(exc), EXIT_USAGE)
    except PublishError as exc:
        return _fail(str(exc), EXIT_FAILED)
    except KeyboardInterrupt:  # a second Ctrl-C: the first one's flush was cut short
        return _fail("interrupted", EXIT_INTERRUPTED)
    if stats.error:
        _fail(stats.error, EXIT_FAILED)
    if not settings.quiet or not stats.ok:
        print(summary(stats), file=sys.stderr)
    return 0 if stats.ok else EXIT_FAILED
