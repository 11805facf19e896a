"""Tracking: the tracker protocol, the MLflow adapter and structured logs."""
