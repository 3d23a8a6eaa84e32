"""lstm-producer: publishes token sequences to Kafka. Never imports TensorFlow."""

from lstm_stream import __version__

__all__ = ["__version__"]
