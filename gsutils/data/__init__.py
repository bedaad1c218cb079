"""Datasets: textured MNIST, multi-object scenes, native-format loaders."""
