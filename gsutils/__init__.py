"""gsutils: grid saliency, Extract & Aggregate saliency, and the experiments of the book."""

__version__ = "0.1.0"


def __getattr__(name: str):
    """``gsutils.explain`` (imported on first use, so ``import gsutils`` stays light)."""
    if name == "explain":
        from gsutils.saliency.explain import explain

        return explain
    raise AttributeError(f"module 'gsutils' has no attribute {name!r}")
