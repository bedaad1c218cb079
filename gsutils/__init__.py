"""gsutils: grid saliency, Extract & Aggregate saliency, and the experiments of the book."""

__version__ = "0.1.0"
