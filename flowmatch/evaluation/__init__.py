"""Evaluation of trained flows: sample quality against held-out data, and image quality."""
