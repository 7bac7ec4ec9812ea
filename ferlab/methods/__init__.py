from . import baseline, dmue, eac, lanet, ldlva, rul  # noqa: F401  (registers)
from .base import Method, build_method, list_methods, method_class, register_method

__all__ = ["Method", "build_method", "list_methods", "method_class", "register_method"]
