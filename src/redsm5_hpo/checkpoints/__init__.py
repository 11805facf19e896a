"""Checkpoints: atomic hashed store, retention policy."""
