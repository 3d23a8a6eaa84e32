"""Shared pieces of the lstm-stream producer and consumer (no TensorFlow, no Prometheus)."""

__version__ = "0.1.0"
__all__ = ["__version__"]
