"""What `lcai templates validate` finds that it used to let through (issue 25, items 7 and 9): a ``${NAME}``
nothing declares, every problem of a file in one pass (a type error no longer hides a range error), and port
clashes (the app on SSH's 22, two capabilities on one port). Each problem is file:line: field: message, exit 2."""

import pytest

from lcai_core.cli import main
from lcai_core.errors import ValidationError
from lcai_testing import render_text, require_plugins

BASE = """\
name: demo
capabilities:
  runtime: docker
  features: [{features}]
deploy:
  linode:
    container:
      image: nginx:1.27
      internal_port: {internal}
{more}env:
  optional:
    - name: MODEL
      default: some/model
"""


def tpl(features="", internal=8000, more=""):
    return BASE.format(features=features, internal=internal, more=more)


@pytest.fixture
def validate(capsys, tmp_path, lcai_config_dir):
    def run(text):
        f = tmp_path / "template.yml"
        f.write_text(text)
        code = main(["templates", "validate", str(f)])
        out, err = capsys.readouterr()
        return code, err.replace(str(f), "template.yml"), out
    return run


def test_an_undeclared_reference_is_refused_with_its_line(validate):
    more = "      command: serve --model ${MODEL} --x ${NOPE}\n      env:\n        A: \"${MODLE}\"\n"
    code, err, _ = validate(tpl(more=more))
    assert code == 2, err
    assert ("error: template.yml:10: deploy.linode.container.command: references ${NOPE}, which the template does not "
            "declare: add it under env.required or env.optional") in err
    assert ("error: template.yml:12: deploy.linode.container.env.A: references ${MODLE}, which the template does not "
            "declare: add it under env.required or env.optional; did you mean 'MODEL'?") in err
    assert "${MODEL}," not in err  # declared (with a default)


def test_references_to_declared_container_env_and_escaped_names_pass(validate):
    more = "      command: serve --a ${A} --model ${MODEL} --literal $${NOT_A_REF}\n      env:\n        A: x\n"
    code, err, out = validate(tpl(more=more))
    assert code == 0 and out.startswith("ok: "), err


def test_a_capability_provided_name_is_declared_by_the_capability(validate):
    require_plugins("redis")
    more = "      env:\n        BROKER: \"${REDIS_URL}\"\n"
    code, err, _ = validate(tpl(features="redis", more=more))
    assert code == 0, err
    code, err, _ = validate(tpl(more=more))  # without redis nothing provides it
    assert code == 2 and "env.BROKER: references ${REDIS_URL}, which the template does not declare" in err


@pytest.mark.parametrize("plugin,name", [("redis", "REDIS_URL"), ("postgresql", "DATABASE_URL")])
def test_provides_env_is_what_the_capability_puts_in_the_environment(plugin, name):
    require_plugins(plugin)
    from lcai_core.plugins import get_host

    cap = get_host().catalog.lookup(plugin)[0].capability
    r = render_text(tpl(features=plugin).split("env:\n  optional")[0])
    assert cap.provides_env == (name,) and set(r.env) == {name}


def test_a_type_error_does_not_hide_a_range_error(validate):
    text = tpl(internal='"8000"', more="      health:\n        max_retries: 0\n").replace("name: demo", "name: X!")
    code, err, _ = validate(text)
    assert code == 2
    assert "template.yml:1: name: must be 3-63 lowercase letters" in err
    assert "template.yml:9: deploy.linode.container.internal_port: expected an integer, got string '8000'" in err
    assert "template.yml:11: deploy.linode.container.health.max_retries: must be between 1 and 100000, got 0" in err
    # a rule between fields is not misled by the wrong type (internal_port is set, as a string)
    assert "state the port to check" not in err and len(err.strip().splitlines()) == 4  # 3 errors + the hint


@pytest.mark.parametrize("internal,more,field", [
    (22, "", "internal_port"),  # docker publishes it on 127.0.0.1:22 without external_port
    (8000, "      external_port: 22\n", "external_port"),
])
def test_the_app_on_ssh_port_is_refused(validate, internal, more, field):
    code, err, _ = validate(tpl(internal=internal, more=more))
    assert code == 2
    assert (f"deploy.linode.container.{field}: port 22 is SSH's (sshd listens on it on every instance); pick "
            "another port for the app") in err


def test_container_port_22_behind_another_public_port_is_fine(validate):
    code, err, _ = validate(tpl(internal=22, more="      external_port: 8080\n"))
    assert code == 0, err


def test_two_capabilities_on_one_port_are_refused(validate):
    require_plugins("redis", "buildwatch")
    code, err, _ = validate(tpl(features="redis, {name: buildwatch, config: {port: 6379}}"))
    assert code == 2
    assert ("template.yml:4: capabilities.features[1]: config.port 6379 clashes with capability 'redis' (its "
            "config.port)") in err
    code, err, _ = validate(tpl(features="redis, {name: buildwatch, config: {port: 9090}}"))
    assert code == 0, err


def test_a_capability_on_the_apps_port_is_refused_for_every_capability():
    require_plugins("postgresql")
    with pytest.raises(ValidationError) as e:
        render_text(tpl(features="{name: postgresql, config: {port: 8000}}", internal=8000))
    assert "capabilities.features[0]: config.port 8000 clashes with the app's port" in str(e.value)
