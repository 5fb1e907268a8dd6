"""Training loop, evaluation, metrics, inference and checkpoints."""
