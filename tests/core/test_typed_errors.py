"""What a command adds to an error is decided by the error's type, never by words in its text: a
``TrackedError`` already says the deployment stays tracked (nothing added), any other ``LcaiError`` after the
deployment exists gets the "it is tracked" hint; a template naming a first-party capability that is not
installed (a ``MissingPlugin`` problem) gets the install hint."""

import pytest

from lcai_core.flow.apply import tracked as _tracked
from lcai_core.errors import LcaiError, MissingPlugin, TrackedError, ValidationError


def test_an_error_that_only_mentions_untracked_resources_still_gets_the_tracked_hint():
    e = _tracked(LcaiError("instance 12 failed to boot", hint="untracked volumes may remain"), "dep00001")
    assert e.hint == ("untracked volumes may remain; deployment dep00001 is tracked: `lcai status dep00001`; "
                      "run `lcai deploy` again to retry (it rebuilds the machine)")


def test_a_tracked_error_is_left_as_it_is():
    e = _tracked(TrackedError("timed out", hint="the deployment is tracked: lcai status dep00001"), "dep00001")
    assert e.hint == "the deployment is tracked: lcai status dep00001"


def test_a_missing_first_party_capability_gets_the_install_hint(tmp_path, monkeypatch):
    from lcai_core.plugins import get_host
    from lcai_core.template import load_template

    monkeypatch.setenv("LCAI_DISABLE_PLUGINS", "lcai-redis")
    d = tmp_path / "svc"
    d.mkdir()
    (d / "deploy.yml").write_text("name: web\ncapabilities:\n  runtime: docker\n  features: [redis]\n"
                                  "deploy:\n  linode:\n    container:\n      image: nginx:1.27\n"
                                  "      internal_port: 80\n")
    with pytest.raises(ValidationError) as info:
        load_template(d / "deploy.yml", catalog=get_host().catalog)
    assert isinstance(info.value.problems[0], MissingPlugin) and info.value.problems[0].dist == "lcai-redis"
    assert info.value.hint == "install the plugin named above, then check with: lcai plugins"
