"""falconet.codegen: the contract between the code generators and the code they write."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from falconet import codegen, fields
from falconet.engine import Engine

HOSTILE_NAME = "Evil\nimport os  # rule\r\nos.system('x')"


def _engine(tmp_path: Path, name: str = HOSTILE_NAME) -> Engine:
    rules = tmp_path / "r.yaml"
    rules.write_text(
        "- rule: " + json.dumps(name) + "\n"
        "  desc: d\n"
        "  condition: ka.verb=create and ka.target.resource=pods and ka.user.name=bob\n"
        "  output: o %ka.user.name\n"
        "  priority: WARNING\n"
        "  source: k8s_audit\n"
    )
    return Engine.from_paths([rules], hostname="h")


def test_rule_names_are_notes_in_the_listing_never_code(tmp_path: Path) -> None:
    engine = _engine(tmp_path)
    listing = engine._index.listing
    assert "Evil" not in listing.source()  # what is compiled holds no rule text
    rendered = engine.explain()
    assert len(rendered.split("\n")) == len(listing.lines)  # a name cannot add or break lines
    notes = [line for line in rendered.split("\n") if "Evil" in line]
    assert notes, rendered
    assert all(line.split("  # ", 1)[0] in listing.lines for line in notes)
    assert "\\n" in notes[0] and "\n" not in notes[0]


def test_explain_names_each_rule_beside_its_return(tmp_path: Path) -> None:
    engine = _engine(tmp_path, name="Pod By Bob")
    lines = engine.explain().splitlines()
    assert any(line.strip().startswith("return 0  # rule 'Pod By Bob'") for line in lines)
    assert any("# events: create/pods" in line for line in lines)


def test_generated_code_has_only_the_listed_builtins() -> None:
    module, hit = codegen.compile_module(
        "def f():\n    return open\ndef g():\n    return type(len('ab'))", {}, filename="<t>"
    )
    assert not hit
    assert module["g"]() is int
    with pytest.raises(NameError):
        module["f"]()


def test_the_code_cache_returns_the_same_code_for_the_same_source(tmp_path: Path) -> None:
    source = "def f():\n    return k1 + 1"
    first, hit1 = codegen.compile_module(source, {"k1": 1}, filename="<t>", cache_dir=tmp_path)
    second, hit2 = codegen.compile_module(source, {"k1": 41}, filename="<t>", cache_dir=tmp_path)
    other, hit3 = codegen.compile_module(
        source + "0", {"k1": 1}, filename="<t>", cache_dir=tmp_path
    )
    assert (hit1, hit2, hit3) == (False, True, False)
    assert (first["f"](), second["f"](), other["f"]()) == (2, 42, 11)


@pytest.mark.parametrize("param", sorted(codegen.HOT_PATHS))
def test_hot_fields_are_read_where_the_registry_reads_them(param: str) -> None:
    path = codegen.HOT_PATHS[param]
    names = [key for key, value in codegen.HOT_FIELDS.items() if value == param]
    assert names, f"no field is passed as {param}"
    for name, arg in names:
        definition = fields.lookup(name)
        assert definition is not None
        read = definition.inline_read(arg)
        assert read is not None and read.plain == path, (name, arg)
    assert codegen.BUCKET_PARAMS[2:] == ("verb", "res", "stage", "user")
