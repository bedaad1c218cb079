"""Segmentation U-Nets and multi-label classifiers."""
