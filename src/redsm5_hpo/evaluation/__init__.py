"""Evaluation: pure metrics, prediction decoding and the JSON reports."""
