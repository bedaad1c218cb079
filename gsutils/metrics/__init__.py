"""Metrics: segmentation IoU, context bias (CBD, CBL), the pointing game."""
