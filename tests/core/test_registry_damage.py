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
