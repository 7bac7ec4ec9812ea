"""Every public class, function and method of ``ferlab`` has a docstring.

The rule the test applies:

* every module of the package is found from its files (``ferlab/engine`` has no ``__init__.py``, a
  namespace package that ``pkgutil.walk_packages`` would not enter) and imported, except ``__main__``
  modules (importing one runs the command) and modules whose own name starts with ``_``;
* a module's public names are those not starting with ``_`` whose object is a class or a function
  *defined in that module* (``obj.__module__`` is the module walked): names a module imports from
  elsewhere are checked where they are defined;
* a public class needs its own docstring (the text ``dataclass`` / ``NamedTuple`` generate from the
  signature does not count);
* a method, classmethod, staticmethod or property of a public class needs its own docstring when it is
  defined in the class body (``cls.__dict__``) and its name does not start with ``_`` (dunder methods
  such as ``__init__`` / ``__call__`` are documented by the class docstring). Overrides are not exempt:
  a ``forward`` or ``training_step`` states its own tensors' shapes.
"""
import dataclasses
import importlib
import inspect
import re
import sys
from pathlib import Path

import ferlab

PACKAGE = Path(ferlab.__file__).resolve().parent


def public_modules() -> list[str]:
    names = []
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        elif parts[-1] == "__main__" or parts[-1].startswith("_"):
            continue
        if any(p.startswith(("_", ".")) for p in parts[1:]):
            continue
        names.append(".".join(parts))
    return names


def own_doc(obj) -> str:
    """The docstring written for ``obj`` itself, not one inherited or generated."""
    if isinstance(obj, (staticmethod, classmethod)):
        obj = obj.__func__
    if isinstance(obj, property):
        obj = obj.fget
    if inspect.isclass(obj):
        doc = (obj.__dict__.get("__doc__") or "").strip()
        return "" if doc in generated_docs(obj) else doc
    return (getattr(obj, "__doc__", None) or "").strip()


def generated_docs(cls) -> set[str]:
    """The text ``dataclass`` and ``NamedTuple`` put in ``__doc__`` of a class that has none."""
    out = set()
    if dataclasses.is_dataclass(cls):
        try:
            out.add(cls.__name__ + str(inspect.signature(cls)).replace(" -> None", ""))
        except (TypeError, ValueError):
            pass
    if issubclass(cls, tuple) and hasattr(cls, "_fields"):
        out.add(f"{cls.__name__}({', '.join(cls._fields)})")
    return out


def is_method(member) -> bool:
    return (inspect.isfunction(member) or isinstance(member, (staticmethod, classmethod, property)))


def undocumented(module_name: str) -> list[str]:
    module = importlib.import_module(module_name)
    missing = []
    for name, obj in vars(module).items():
        if name.startswith("_") or not (inspect.isclass(obj) or inspect.isfunction(obj)):
            continue
        if getattr(obj, "__module__", None) != module_name:
            continue
        if not own_doc(obj):
            missing.append(f"{module_name}.{name}")
        if inspect.isclass(obj):
            for attr, member in vars(obj).items():
                if attr.startswith("_") or not is_method(member):
                    continue
                if not own_doc(member):
                    missing.append(f"{module_name}.{name}.{attr}")
    return missing


def test_every_module_is_walked():
    modules = public_modules()
    # a few modules of each layer, so that a broken walk does not pass with nothing checked
    for expected in ("ferlab.engine.trainer", "ferlab.engine.config", "ferlab.methods.base",
                     "ferlab.data.ferplus", "ferlab.cli.train"):
        assert expected in modules
    assert "ferlab.cli.__main__" not in modules


def test_every_public_name_has_a_docstring():
    missing = [name for module in public_modules() for name in undocumented(module)]
    assert not missing, f"{len(missing)} public names without a docstring:\n" + "\n".join(missing)


def test_the_check_sees_a_missing_docstring():
    """The rule itself: a method, a property, a function, a dataclass and a NamedTuple without
    docstrings are caught; a dataclass whose own docstring looks like a signature is not."""
    import types
    from typing import NamedTuple

    module = types.ModuleType("ferlab_probe")

    class Documented:
        """Has one."""

        def method(self):
            pass

        @property
        def value(self):
            return 1

        def __len__(self):
            return 0

    @dataclasses.dataclass
    class Plain:
        x: int = 0

    @dataclasses.dataclass
    class Box:
        """Box(x0, y0, x1, y1) in pixels (edges at integers)."""
        x0: float = 0.0

    class Pair(NamedTuple):
        a: int
        b: int

    def helper():
        pass

    for obj in (Documented, Plain, Box, Pair, helper):
        obj.__module__ = "ferlab_probe"
        setattr(module, obj.__name__, obj)
    sys.modules["ferlab_probe"] = module
    try:
        assert sorted(undocumented("ferlab_probe")) == [
            "ferlab_probe.Documented.method", "ferlab_probe.Documented.value",
            "ferlab_probe.Pair", "ferlab_probe.Plain", "ferlab_probe.helper"]
    finally:
        del sys.modules["ferlab_probe"]


def documented_attributes(cls) -> list[str]:
    """The names of the ``Attributes:`` section of ``cls``'s Google-style docstring, in order."""
    doc = inspect.cleandoc(cls.__doc__ or "")
    if "\nAttributes:\n" not in doc:
        return []
    section = doc.split("\nAttributes:\n", 1)[1]
    section = re.split(r"\n\S", section, maxsplit=1)[0]       # up to the next unindented line
    return re.findall(r"^    (\w+):", section, re.M)


def test_train_config_documents_every_field_in_order():
    from ferlab.engine.config import TrainConfig
    assert documented_attributes(TrainConfig) == [f.name for f in dataclasses.fields(TrainConfig)]
