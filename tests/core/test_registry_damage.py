"""A damaged registry.json is one line naming the file and what is wrong, exit 1, and the file is untouched
(issue 21, small crashes: schema "3", null, a non-dict record gave "internal error")."""

import json

import pytest

from lcai_core.cli import main


@pytest.mark.parametrize("content,words", [
    ({"schema": "3", "deployments": {}}, '"schema" is \'3\''),
    ({"schema": None, "deployments": {}}, '"schema" is None'),
    ({"schema": 2, "deployments": {"abcd1234": None}}, "deployment 'abcd1234' is NoneType"),
    ({"schema": 2, "deployments": {"abcd1234": ["x"]}}, "deployment 'abcd1234' is list"),
    (None, "unexpected format"),
])
def test_damaged_registry_is_one_line_and_kept(lcai_config_dir, capsys, content, words):
    lcai_config_dir.mkdir(parents=True, exist_ok=True)
    path = lcai_config_dir / "registry.json"
    path.write_text(json.dumps(content))
    before = path.read_bytes()
    for args in (["status", "--all"], ["destroy", "abcd1234", "--yes"]):
        code = main(args)
        err = capsys.readouterr().err
        lines = [x for x in err.splitlines() if x.startswith("error:")]
        assert code == 1 and len(lines) == 1 and words in lines[0] and "internal error" not in err, err
    assert path.read_bytes() == before


@pytest.mark.parametrize("record,words", [
    ({"provider": "nowhere", "status": "running"}, "it has no \"deployment_id\""),
    ({"deployment_id": "zzzz9999", "provider": "nowhere"}, "\"deployment_id\" is 'zzzz9999', not the key"),
    ({"deployment_id": "abcd1234", "provider": "nowhere", "created_at": 5}, "\"created_at\" is 5, not text"),
    ({"deployment_id": "abcd1234", "provider": 3}, "\"provider\" is 3, not text"),
    ({"deployment_id": "abcd1234", "provider": "nowhere", "provider_state": "x"}, "\"provider_state\" is str"),
    ({"deployment_id": "abcd1234", "provider": "nowhere", "replicas": "3"}, "\"replicas\" is '3', not a number"),
])
def test_a_record_of_the_wrong_shape_is_one_line_naming_the_field(lcai_config_dir, capsys, record, words):
    """A record core cannot read (no id, a number where text goes) is named with its field, not 'internal error'
    (a KeyError, an AttributeError on created_at); the file is left as it is."""
    lcai_config_dir.mkdir(parents=True, exist_ok=True)
    path = lcai_config_dir / "registry.json"
    path.write_text(json.dumps({"schema": 2, "deployments": {"abcd1234": record}}))
    before = path.read_bytes()
    for args in (["status", "--all"], ["status", "abcd1234"], ["destroy", "abcd1234", "--yes"]):
        code = main(args)
        err = capsys.readouterr().err
        lines = [x for x in err.splitlines() if x.startswith("error:")]
        assert code == 1 and len(lines) == 1 and "internal error" not in err, err
        assert f"registry.json: deployment 'abcd1234': {words}" in lines[0] and "not changed" in lines[0], err
    assert path.read_bytes() == before
