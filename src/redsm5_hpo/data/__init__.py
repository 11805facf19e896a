"""Data: sources (hub / local CSV / sample), posts with labels and evidence, splits, encoding."""
