"""The learner core: pure computation (TensorFlow and NumPy), never Kafka nor Prometheus."""
