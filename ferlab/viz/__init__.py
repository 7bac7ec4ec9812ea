"""Figures: class activation maps (``cam``), feature spaces (``embedding``), training / memorisation curves
(``plots``)."""
