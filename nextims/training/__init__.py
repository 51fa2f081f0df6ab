"""The training loop and what it needs (devices, seeding, batches, checkpoints)."""
