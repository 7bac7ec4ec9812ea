"""Figures: training / memorisation curves (``plots``)."""
