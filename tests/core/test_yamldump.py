"""The cloud-config is emitted by libyaml when PyYAML has it; the pure-Python emitter is the fallback. Both
must give the same bytes: the rendered user data (and its hash, which redeploy compares) must not depend on how
PyYAML was built."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from lcai_core.cloudinit import yamldump
from lcai_testing import every_capability, render_text

ROOT = Path(__file__).resolve().parents[2]
TEMPLATES = sorted(p.parent.name for p in ROOT.glob("templates/*/template.yml"))
ENV = {"VLLM_API_KEY": "sk-test", "EMBEDDINGS_API_KEY": "k"}

needs_libyaml = pytest.mark.skipif(not getattr(yaml, "__with_libyaml__", False),
                                   reason="PyYAML without libyaml: only the pure-Python emitter exists "
                                          "(pip install --force-reinstall pyyaml from a wheel)")


def _render_with(dumper: type, text: str, monkeypatch) -> str:
    monkeypatch.setattr(yamldump, "DUMPER", dumper)
    return render_text(text, dotenv=ENV).text


@needs_libyaml
def test_libyaml_is_used_when_present():
    assert yamldump.DUMPER is not yamldump.PyDumper
    assert issubclass(yamldump.DUMPER, yaml.CSafeDumper)


@needs_libyaml
@pytest.mark.parametrize("image", ["linode/ubuntu24.04", "linode/ubuntu22.04", "linode/debian12"])
@pytest.mark.parametrize("name", TEMPLATES)
def test_bundled_templates_render_the_same_bytes_with_both_emitters(name, image, monkeypatch):
    text = (ROOT / "templates" / name / "template.yml").read_text()
    text = re.sub(r"(?m)^(\s+image: )linode/\S+$", rf"\g<1>{image}", text)
    try:
        fast = _render_with(yamldump.DUMPER, text, monkeypatch)
    except Exception as e:  # a template that does not support this image is refused by both
        with pytest.raises(type(e)):
            _render_with(yamldump.PyDumper, text, monkeypatch)
        return
    assert fast == _render_with(yamldump.PyDumper, text, monkeypatch)


@needs_libyaml
def test_every_capability_together_renders_the_same_bytes(monkeypatch):
    from lcai_core import cloudinit

    monkeypatch.setattr(cloudinit.Rendered, "check_size", lambda self: None)  # over Linode's limit: bytes still count
    env = """      env: {GREETING: "héllo: wörld # not a comment", EMPTY: "", QUOTE: "'\\""}\n"""
    text = every_capability().replace("      health:", env + "      health:")
    assert env in text
    assert _render_with(yamldump.DUMPER, text, monkeypatch) == _render_with(yamldump.PyDumper, text, monkeypatch)


_scalar = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=40)
_same = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)).filter(yamldump._emits_the_same),
                max_size=40)
_key = st.from_regex(r"[a-z][a-z0-9_]{0,15}", fullmatch=True)  # cloud-config's keys; values are anything
_doc = st.recursive(
    st.one_of(_scalar, st.integers(), st.booleans(), st.none()),
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(_key, inner, max_size=4),
                            st.lists(_scalar, max_size=4).map(yamldump.Flow)),
    max_leaves=12)


@needs_libyaml
@settings(max_examples=int(os.environ.get("LCAI_YAML_EXAMPLES", "300")), deadline=None)
@given(st.dictionaries(_key, _doc, max_size=5))
def test_both_emitters_agree_on_generated_documents(doc):
    """Strings of any kind (quotes, colons, unicode, line breaks, trailing spaces), nested lists and maps, and
    flow-style commands: the same text from both emitters, and it loads back to the same document."""
    text = yamldump.dump_yaml(doc)
    assert text == yamldump.dump_yaml(doc, dumper=yamldump.PyDumper)
    assert yaml.safe_load(text) == yaml.safe_load(yamldump.dump_yaml(doc, dumper=yamldump.PyDumper))


@needs_libyaml
@settings(max_examples=int(os.environ.get("LCAI_YAML_EXAMPLES", "300")), deadline=None)
@given(st.lists(_same, max_size=6))
def test_libyaml_itself_agrees_on_the_characters_it_is_used_for(values):
    """Where dump_yaml takes libyaml (no character outside ``_SAME``), libyaml's own output is the pure-Python one."""
    doc = {"a": values, "b": yamldump.Flow(values), "c": dict(zip(("k", "l", "m"), values))}
    assert yamldump._emits_the_same(doc)
    assert yamldump.dump_yaml(doc, dumper=yamldump.DUMPER) == yamldump.dump_yaml(doc, dumper=yamldump.PyDumper)


@pytest.mark.parametrize("content", [f"echo launch {ch} done" for ch in ("\x85", "\u2028", "\ufeff", "\U0001f680",
                                                                        "\x00", "\r")]
                         + ["\n", "#!/bin/sh\necho hi\n\n"])
def test_what_the_emitters_differ_on_falls_back_to_pure_python(content):
    doc = {"write_files": [{"content": content, "path": "/x"}], "runcmd": [yamldump.Flow(["sh", "/x"])]}
    assert not yamldump._emits_the_same(doc)
    assert yamldump.dump_yaml(doc) == yamldump.dump_yaml(doc, dumper=yamldump.PyDumper)
