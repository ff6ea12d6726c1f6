"""ragft: a reproducible RAG-vs-fine-tuning experiment pipeline (DVC + Hydra + MLflow)."""

from ragft.env import apply_offline_env

apply_offline_env()

__version__ = "0.1.0"
