"""Figures and tables of the book, one module per part (matplotlib only).

* :mod:`gsutils.plots.common`: the class palette, the method palette and labels, the one
  saliency colormap (overlay, colourbar) and layer labels;
* :mod:`gsutils.plots.toy`: S1.1 (toy data, textures, the explorer);
* :mod:`gsutils.plots.context`: S1.3/S1.4 (CBD matrices, CBL, saliency galleries);
* :mod:`gsutils.plots.normgrad`: the NormGrad pointing game and Fig. 7;
* further modules for the later chapters.

Each function returns a :class:`matplotlib.figure.Figure` (or a table);
chapters display it. This layer sits above :mod:`gsutils.experiments` and may
import everything below it; nothing in the library imports it.
"""
