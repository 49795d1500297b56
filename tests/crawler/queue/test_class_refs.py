"""Classes named in queue entries are found without importing or calling anything else."""

from __future__ import annotations

import sys

import pytest

from hermit.queue.class_refs import ClassRefError, class_ref, resolve_class


class Outer:
    class Inner:
        pass


INSTANCE = Outer()


def test_a_class_ref_leads_back_to_its_class():
    assert class_ref(Outer.Inner) == f"{__name__}:Outer.Inner"
    assert resolve_class(class_ref(Outer.Inner), None, lambda cls: True, "a class") is Outer.Inner


@pytest.mark.parametrize("ref, reason", [
    (f"{__name__}:INSTANCE.__class__", "special attribute"),
    (f"{__name__}:INSTANCE.Inner", "is not in a module or class"),
    (f"{__name__}:Outer.Missing", "no 'Missing'"),
    (f"{__name__}:sys", "is not a class"),
    (42, "not a string"),
])
def test_refs_that_lead_elsewhere_are_refused(ref, reason):
    with pytest.raises(ClassRefError, match=reason):
        resolve_class(ref, None, lambda cls: True, "a class")


def test_a_class_defined_in_a_function_has_no_ref():
    class Local:
        pass

    with pytest.raises(ClassRefError, match="define it at module level"):
        class_ref(Local)


def test_a_module_not_yet_imported_is_never_imported(tmp_path, monkeypatch):
    marker = tmp_path / "imported"
    (tmp_path / "hermit_never_imported.py").write_text(
        f"open({str(marker)!r}, 'w').close()\n"
        "import dataclasses\n@dataclasses.dataclass\nclass Item:\n    a: int = 0\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ClassRefError, match="'hermit_never_imported' is not imported in this worker"):
        resolve_class("hermit_never_imported:Item", None, lambda cls: True, "a class")
    assert not marker.exists() and "hermit_never_imported" not in sys.modules


def test_a_module_of_the_spiders_own_package_is_imported(tmp_path, monkeypatch):
    package = tmp_path / "shopproj"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "spiders.py").write_text("import scrapy\nclass ShopSpider(scrapy.Spider):\n    name = 'shop'\n")
    (package / "items.py").write_text("import dataclasses\n@dataclasses.dataclass\nclass Row:\n    a: int = 0\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    from shopproj.spiders import ShopSpider  # type: ignore[import-not-found]

    try:
        assert "shopproj.items" not in sys.modules
        row = resolve_class("shopproj.items:Row", ShopSpider(), lambda cls: True, "a class")
        assert row.__module__ == "shopproj.items" and row.__name__ == "Row"
    finally:
        for name in [n for n in sys.modules if n.split(".")[0] == "shopproj"]:
            del sys.modules[name]
