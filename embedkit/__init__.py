"""embedkit: contrastive-learning losses, hard-negative mining and retrieval checks on exported embeddings."""

__version__ = "0.1.0"
