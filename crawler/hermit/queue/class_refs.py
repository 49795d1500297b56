"""Classes named in queue entries: ``module:qualname``, found without running code.

:func:`resolve_class` looks a name up only in modules this worker has already
imported, or, given a spider, in a module of the spider's own top-level package
(imported on demand: the project's own code). It never imports any other module,
walks module and class ``__dict__``s instead of calling ``getattr`` (so no module
``__getattr__``, property or descriptor runs), refuses dunder names, and returns
the object only if it is a class the caller's *allowed* predicate accepts. Nothing
it finds is called.
"""

from __future__ import annotations

import importlib
import logging
import sys
from collections.abc import Callable
from types import MappingProxyType, ModuleType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from scrapy import Spider

logger = logging.getLogger(__name__)


class ClassRefError(ValueError):
    """A class name that can't be written or resolved (the message says why)."""


_REFS: dict[type, str] = {}


def class_ref(cls: type) -> str:
    """``module:qualname`` of *cls*, checked to lead back to it; ClassRefError if not."""
    ref = _REFS.get(cls)
    if ref is not None:
        return ref
    if "<locals>" in cls.__qualname__:
        raise ClassRefError(
            "a class defined inside a function, which other workers can't find: define it at module level")
    ref = f"{cls.__module__}:{cls.__qualname__}"
    if _lookup(ref, None) is not cls:
        raise ClassRefError(f"{ref} leads to another object")
    _REFS[cls] = ref
    return ref


def resolve_class(ref: Any, spider: Spider | None, allowed: Callable[[type], bool], kinds: str) -> type:
    """The class *ref* names if it is one *allowed* accepts; ClassRefError otherwise.

    *kinds* says what is accepted, for the message ("a Request class").
    """
    if not isinstance(ref, str):
        raise ClassRefError(f"class reference {ref!r} is not a string")
    found = _lookup(ref, spider)
    if not (isinstance(found, type) and allowed(found)):
        raise ClassRefError(f"{ref!r} is not {kinds}; it is never loaded from queue data")
    return found


def _lookup(ref: str, spider: Spider | None) -> Any:
    module_name, _, qualname = ref.partition(":")
    if not module_name or not qualname:
        raise ClassRefError(f"{ref!r} is not a module:qualname class reference")
    module = sys.modules.get(module_name)
    if module is None:
        project = type(spider).__module__.split(".")[0] if spider is not None else None
        if project is None or module_name.split(".")[0] != project:
            raise ClassRefError(
                f"{ref!r}: module {module_name!r} is not imported in this worker, and queue data never "
                "imports modules (import it from your spider's module)"
            )
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            raise ClassRefError(f"{ref!r}: {exc}") from None
    found: Any = module
    for part in qualname.split("."):
        if part.startswith("__"):
            raise ClassRefError(f"{ref!r} names a special attribute")
        if not isinstance(found, (ModuleType, type)):
            raise ClassRefError(f"{ref!r}: {part!r} is not in a module or class")
        namespace = vars(found)
        if not isinstance(namespace, (dict, MappingProxyType)) or part not in namespace:
            raise ClassRefError(f"{ref!r}: no {part!r} in {module_name}")
        found = namespace[part]
    return found
