"""Saliency methods: grid/context saliency, gradient baselines, Extract & Aggregate."""
