"""Figures: class activation maps (``cam``) and training / memorisation curves (``plots``)."""
