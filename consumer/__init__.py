"""lstm-consumer: learns each stream's next token online and publishes predictions."""

from lstm_stream import __version__

__all__ = ["__version__"]
