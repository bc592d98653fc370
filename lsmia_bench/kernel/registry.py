"""Typed registries by name: built-ins as lazy ``module:attr`` strings, plug-ins by entry point
or by a ``path/to/file.py:ClassName`` reference."""

from __future__ import annotations

import ast
import difflib
import importlib
import importlib.util
import sys
from collections.abc import Iterator
from importlib.metadata import entry_points
from pathlib import Path
from typing import Generic, TypeVar

from lsmia_bench.kernel.errors import UserError

T = TypeVar("T")


class Registry(Generic[T]):
    """Maps names to classes (or callables) of one kind.

    Nothing is imported until a name is looked up, so listing names is cheap and a broken
    plug-in only fails when it is used, with a message that names it. ``base`` may be given as
    ``"module:Class"`` so that defining a registry imports nothing heavy (PyTorch).
    """

    def __init__(
        self,
        kind: str,
        base: type | str | None = None,
        builtins: dict[str, str] | None = None,
        entry_point_group: str | None = None,
    ) -> None:
        self.kind = kind
        self.base = base
        self._lazy: dict[str, str] = dict(builtins or {})
        self._loaded: dict[str, T] = {}
        self.entry_point_group = entry_point_group

    def register(self, name: str, obj: T) -> T:
        if name in self._lazy or name in self._loaded:
            raise ValueError(f"{self.kind} {name!r} is already registered")
        self._check(name, obj)
        self._loaded[name] = obj
        return obj

    def _plugin_entry_points(self) -> dict[str, str]:
        if not self.entry_point_group:
            return {}
        return {ep.name: ep.value for ep in entry_points(group=self.entry_point_group)}

    def names(self) -> list[str]:
        """Registered names: built-ins, registered objects and entry points. File references
        loaded so far are cached under their path but are not names (they would otherwise
        show up in ``list`` and in every registry-wide test after the first use)."""
        loaded = {name for name in self._loaded if not is_path_reference(name)}
        found = set(self._lazy) | loaded | set(self._plugin_entry_points())
        return sorted(found)

    def __contains__(self, name: str) -> bool:
        return is_path_reference(name) or name in self.names()

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def get(self, name: str, field: str | None = None) -> T:
        field = field or self.kind
        if name in self._loaded:
            return self._loaded[name]
        if is_path_reference(name):
            obj = load_path_reference(name, field)
        else:
            target = self._lazy.get(name) or self._plugin_entry_points().get(name)
            if target is None:
                raise UserError(field, name, self._unknown_fix(name),
                                problem=f"unknown {self.kind}")
            obj = import_reference(target, field, plugin=name)
        self._check(name, obj, field)
        self._loaded[name] = obj
        return obj

    def summary(self, name: str) -> str:
        """A component's one-line ``summary`` (see :meth:`metadata`)."""
        return self.metadata(name, "summary")

    def metadata(self, name: str, attribute: str) -> str:
        """A string class attribute of a component (``summary``, ``threat_model``), read from
        its source file when the class states it as a literal (nothing imported: ``lsmia-bench
        list`` and the leaderboard start no PyTorch), else from the loaded class; "" when the
        class has no such attribute."""
        target = self._lazy.get(name) or self._plugin_entry_points().get(name)
        if name not in self._loaded and target is not None:
            found = static_class_attribute(target, attribute)
            if found is not None:
                return found
        return str(getattr(self.get(name), attribute, ""))

    def _unknown_fix(self, name: str) -> str:
        close = difflib.get_close_matches(name, self.names(), n=1)
        hint = f"Did you mean {close[0]!r}? " if close else ""
        return f"{hint}Known {self.kind}s: {', '.join(self.names())}."

    def _check(self, name: str, obj: object, field: str | None = None) -> None:
        if self.base is None:
            return
        if isinstance(self.base, str):
            self.base = import_reference(self.base, field or self.kind, plugin=self.base)
        if not (isinstance(obj, type) and issubclass(obj, self.base)):
            raise UserError(
                field or self.kind,
                name,
                f"A {self.kind} must be a subclass of {self.base.__module__}.{self.base.__name__}.",
                problem=f"{obj!r} is not a {self.kind} class",
            )


def static_class_attribute(target: str, attribute: str) -> str | None:
    """The string literal assigned to ``attribute`` in the body of the class that
    ``package.module:Class`` names, found without importing the module or its packages; None
    when the source cannot be found or does not assign a literal there (inherited, computed)."""
    module_name, _, class_name = target.partition(":")
    try:
        path = _module_source(module_name)
        tree = ast.parse(Path(path).read_bytes()) if path else None
    except (OSError, SyntaxError, ValueError, ImportError):
        return None
    for node in tree.body if tree else ():
        if isinstance(node, ast.ClassDef) and node.name == class_name:
            for item in node.body:
                targets = item.targets if isinstance(item, ast.Assign) else (
                    [item.target] if isinstance(item, ast.AnnAssign) else [])
                if any(isinstance(t, ast.Name) and t.id == attribute for t in targets):
                    value = item.value
                    if isinstance(value, ast.Constant) and isinstance(value.value, str):
                        return value.value
                    return None
    return None


def _module_source(module_name: str) -> str | None:
    """The source file of a module, asking the import system's finders directly so that no
    parent package runs (``importlib.util.find_spec`` would import the parents)."""
    if module_name in sys.modules:
        return getattr(sys.modules[module_name], "__file__", None)
    search: list[str] | None = None
    spec = None
    for depth in range(1, module_name.count(".") + 2):
        name = ".".join(module_name.split(".")[:depth])
        spec = None
        for finder in sys.meta_path:
            find = getattr(finder, "find_spec", None)
            spec = find(name, search) if find else None
            if spec is not None:
                break
        if spec is None:
            return None
        search = list(spec.submodule_search_locations or [])
    origin = spec.origin if spec is not None else None
    return origin if origin and origin.endswith(".py") else None


def is_path_reference(name: str) -> bool:
    return ".py:" in name


def import_reference(target: str, field: str, plugin: str) -> object:
    """Import ``package.module:attr``; any failure becomes a UserError naming the plug-in."""
    module_name, _, attr = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # a plug-in may fail to import in any way
        raise UserError(
            field, plugin, "Fix the import error in the plug-in or reinstall its package.",
            problem=f"importing {module_name!r} failed ({type(exc).__name__}: {exc})",
        ) from None
    try:
        return getattr(module, attr)
    except AttributeError:
        raise UserError(
            field, plugin, f"Check the name after ':' in {target!r}.",
            problem=f"module {module_name!r} has no attribute {attr!r}",
        ) from None


def load_path_reference(reference: str, field: str) -> object:
    """Load ``path/to/file.py:ClassName`` (absolute, or relative to the working directory)."""
    path_text, _, attr = reference.rpartition(":")
    path = Path(path_text).expanduser().resolve()
    if not path.is_file():
        raise UserError(field, reference,
                        "Give an existing Python file as path/to/file.py:ClassName.",
                        problem=f"file {str(path)!r} does not exist")
    module_name = f"lsmia_plugin_{abs(hash(str(path)))}"
    if module_name in sys.modules:
        module = sys.modules[module_name]
    else:
        try:
            source = path.read_bytes().decode("utf-8")
        except UnicodeDecodeError:
            raise UserError(field, reference, "Save the plug-in file as UTF-8.",
                            problem="file is not UTF-8 text") from None
        spec = importlib.util.spec_from_file_location(module_name, path)
        assert spec is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module
        try:
            exec(compile(source, str(path), "exec"), module.__dict__)
        except Exception as exc:
            del sys.modules[module_name]
            raise UserError(field, reference, "Fix the error in the plug-in file.",
                            problem=f"loading it failed ({type(exc).__name__}: {exc})") from None
    if not hasattr(module, attr):
        raise UserError(field, reference, f"Define class {attr!r} in {path.name}.",
                        problem=f"{path.name} has no attribute {attr!r}")
    return getattr(module, attr)
