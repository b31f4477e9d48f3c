"""Hostile and broken YAML gets one clear, located LcaiError — fast — and never another exception."""

import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lcai_core.errors import LcaiError, ValidationError
from lcai_core.template import load_template_text
from lcai_core.yamlfile import MAX_BYTES, load_text


def first(e: ValidationError) -> str:
    return str(e.problems[0])


def test_empty_file():
    with pytest.raises(ValidationError) as e:
        load_template_text("", "t.yml")
    assert first(e.value) == "t.yml: file is empty"
    with pytest.raises(ValidationError):
        load_template_text("# only a comment\n", "t.yml")


def test_non_mapping_top_level():
    with pytest.raises(ValidationError) as e:
        load_template_text("- a\n- b\n", "t.yml")
    assert "top level must be a mapping" in first(e.value)


def test_syntax_error_has_line_and_column():
    with pytest.raises(ValidationError) as e:
        load_template_text("name: x\ndeploy:\n  linode: [unclosed\n", "t.yml")
    msg = first(e.value)
    assert msg.startswith("t.yml:") and "YAML syntax error, column" in msg


def test_duplicate_key_is_an_error_naming_both_lines():
    with pytest.raises(ValidationError) as e:
        load_text("name: a\nversion: 1.0.0\nname: b\n", "t.yml")
    assert first(e.value) == "t.yml:3: name: duplicate key (first at line 1)"


@pytest.mark.parametrize("text", ["?\n", "8000: x\n", "[a]: 1\n", "name: x\ndeploy:\n  true: 1\n"])
def test_non_string_keys(text):
    with pytest.raises(ValidationError) as e:
        load_text(text, "t.yml")
    assert "keys must be strings" in first(e.value)


def test_multiple_documents():
    with pytest.raises(ValidationError) as e:
        load_text("a: 1\n---\nb: 2\n", "t.yml")
    assert "more than one YAML document" in first(e.value)


def test_alias_bomb_is_refused_fast():
    bomb = "a: &a [x, x, x, x, x, x, x, x, x, x]\n"
    prev = "a"
    for i in range(1, 12):
        bomb += f"l{i}: &l{i} [" + ", ".join([f"*{prev}"] * 10) + "]\n"
        prev = f"l{i}"
    t0 = time.perf_counter()
    with pytest.raises(ValidationError) as e:
        load_text(bomb, "bomb.yml")
    assert time.perf_counter() - t0 < 2.0
    assert "alias bomb" in first(e.value)


def test_recursive_alias():
    with pytest.raises(ValidationError) as e:
        load_text("a: &a [1, *a]\n", "t.yml")
    assert "recursive YAML alias" in first(e.value)


def test_huge_file_refused_before_parsing():
    with pytest.raises(ValidationError) as e:
        load_text(b"a: " + b"x" * (MAX_BYTES + 10), "big.yml")
    assert "the limit is 1024 KiB" in first(e.value)


def test_binary_and_bad_utf8():
    with pytest.raises(ValidationError) as e:
        load_text(b"name: \xff\xfe\n", "t.yml")
    assert "not valid UTF-8" in first(e.value)
    with pytest.raises(ValidationError) as e:
        load_text("a: 1\x00\n", "t.yml")
    assert "NUL" in first(e.value)


def test_deep_nesting():
    with pytest.raises(LcaiError):
        load_text("a: " + "[" * 5000 + "]" * 5000, "t.yml")


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=400))
def test_random_bytes_only_raise_lcai_error(data):
    try:
        load_template_text(data.decode("utf-8", "replace"), "fuzz.yml")
    except LcaiError:
        pass


yaml_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=20,
)
keys = st.sampled_from(["name", "version", "capabilities", "deploy", "setup", "env", "guidance", "runtime",
                        "features", "linode", "container", "health", "image", "internal_port", "files", "x"])


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(keys, st.recursive(yaml_values, lambda c: st.dictionaries(keys, c, max_size=4), max_leaves=15),
                       max_size=6))
def test_random_yaml_structures_only_raise_lcai_error(doc):
    import yaml

    text = yaml.safe_dump(doc)
    try:
        load_template_text(text, "fuzz.yml")
    except LcaiError as e:
        assert str(e)
