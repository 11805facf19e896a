"""Models: encoder loading, criteria and evidence heads on a shared encoder."""
