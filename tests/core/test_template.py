"""The template model: strict types, located errors, did-you-mean, all problems in one pass."""

import textwrap

import pytest

from lcai_core.errors import ValidationError
from lcai_core.plugins import Host
from lcai_core.template import load_template_text

BASE = """\
name: demo
version: 1.0.0
capabilities:
  runtime: docker
deploy:
  linode:
    image: linode/ubuntu24.04
    container:
      image: nginx:1.27
      internal_port: 80
      external_port: 8080
"""


@pytest.fixture(scope="module")
def catalog():
    return Host().catalog


def problems(text, catalog=None):
    with pytest.raises(ValidationError) as e:
        load_template_text(textwrap.dedent(text), "deploy.yml", catalog)
    return e.value.lines()


def test_valid_minimal(catalog):
    t = load_template_text(BASE, "deploy.yml", catalog)
    assert t.container.internal_port == 80 and t.capabilities.runtime == "docker"


def test_quoted_port_is_not_coerced():
    out = problems(BASE.replace("internal_port: 80", 'internal_port: "8000"'))
    assert out == ["deploy.yml:10: deploy.linode.container.internal_port: expected an integer, got string '8000' "
                   "(remove the quotes)"]


def test_word_for_port():
    out = problems(BASE.replace("internal_port: 80", "internal_port: eighty"))
    assert out == ["deploy.yml:10: deploy.linode.container.internal_port: expected an integer, got string 'eighty'"]


def test_string_false_is_not_a_bool():
    text = BASE + "env:\n  optional:\n    - name: A\n      secret: \"false\"\n"
    assert problems(text) == ["deploy.yml:15: env.optional[0].secret: expected true or false, got string 'false'"]


def test_string_is_not_a_list():
    text = BASE.replace("runtime: docker", "runtime: docker\n  packages: prod")
    assert problems(text) == ["deploy.yml:5: capabilities.packages: expected a list, got string 'prod'"]


def test_yaml11_bool_for_string_gets_a_quote_hint():
    text = BASE.replace("      external_port: 8080", "      external_port: 8080\n      env:\n        DEBUG: yes")
    assert problems(text) == ["deploy.yml:13: deploy.linode.container.env.DEBUG: expected a string, got boolean true "
                              "(quote it to make it a string)"]


def test_unquoted_octal_permissions_explained():
    text = BASE + "setup:\n  files:\n    - path: /app/c.yml\n      permissions: 0644\n"
    assert problems(text) == ["deploy.yml:15: setup.files[0].permissions: expected a string, got integer 420 "
                              "(quote it to make it a string)"]


def test_unknown_key_did_you_mean():
    text = BASE.replace("internal_port: 80", "internal_prot: 80")
    assert problems(text) == ["deploy.yml:10: deploy.linode.container.internal_prot: unknown key 'internal_prot'; "
                              "did you mean 'internal_port'?"]


def test_all_errors_in_one_pass():
    text = (BASE.replace("internal_port: 80", "internal_port: eighty").replace("name: demo", "name: Demo!")
            .replace("version: 1.0.0", "version: 1.0.0\ncolour: red"))
    out = problems(text)
    # a type error does not hide a value the constraints refuse (the name) in the same pass (issue 25)
    assert len(out) == 3 and any("colour" in p for p in out) and any("internal_port" in p for p in out)
    assert "deploy.yml:1: name: must be 3-63 lowercase letters, digits and dashes, starting with a letter" in out
    # the checks between fields and beyond the schema run once the types are right; all reported together too
    out = problems(BASE.replace("name: demo", "name: Demo!").replace("8080", "70000")
                   .replace("image: nginx:1.27", "image: 'Not An Image'"))
    assert len(out) == 3
    assert "deploy.yml:1: name:" in out[0]
    assert "deploy.yml:11: deploy.linode.container.external_port: port must be 1-65535, got 70000" in out


def test_missing_required_key():
    assert problems("version: 1.0.0\n") == ["deploy.yml:1: name: required key is missing"]


def test_unknown_capability_lists_installed(catalog):
    out = problems(BASE.replace("runtime: docker", "runtime: docker\n  features: [dokker-optimize]"), catalog)
    assert len(out) == 1
    assert ("deploy.yml:5: capabilities.features[0]: unknown capability 'dokker-optimize'; "
            "did you mean 'docker-optimize'?") in out[0]
    assert "installed:" in out[0] and "python-3.11" in out[0]


def test_uninstalled_first_party_plugin_names_the_package(monkeypatch):
    monkeypatch.setenv("LCAI_DISABLE_PLUGINS", "redis")
    cat = Host().catalog
    out = problems(BASE.replace("runtime: docker", "runtime: docker\n  features: [redis]"), cat)
    assert out == [
        "deploy.yml:5: capabilities.features[0]: capability 'redis' is not installed (pip install lcai-redis)"]


def test_capability_config_is_strict_and_located(catalog):
    text = BASE.replace("runtime: docker", "runtime: docker\n  features:\n    - name: docker-optimize\n"
                        "      config:\n        max_concurent_downloads: 5\n        log_max_files: '3'")
    out = problems(text, catalog)
    assert "deploy.yml:8: capabilities.features[0].config.max_concurent_downloads: unknown key " \
           "'max_concurent_downloads'; did you mean 'max_concurrent_downloads'?" in out
    assert any(p.startswith("deploy.yml:9: capabilities.features[0].config.log_max_files: expected an integer")
               for p in out)


def test_feature_that_is_a_runtime(catalog):
    out = problems(BASE.replace("runtime: docker", "runtime: docker\n  features: [native]"), catalog)
    assert "is a runtime" in out[0]


@pytest.mark.parametrize("snippet,expected", [
    ("      volumes: ['/data']", "expected HOST:CONTAINER"),
    ("      volumes: ['data:/data']", "must be an absolute path"),
    ("      volumes: ['/proc:/host-proc']", "reserved"),
    ("      env:\n        1BAD: x", "not a valid environment variable name"),
    ("      health: {type: exec}", "exec health checks need a command"),
    ("      health: {type: http, path: health}", "must start with '/'"),
    ("      health: {type: http, port: 9999}", "is not published"),
    ("      health: {type: grpc}", "health.type"),
    ("      command: 'python -c \"unterminated'", "cannot split into arguments"),
])
def test_container_semantic_checks(snippet, expected):
    out = problems(BASE + snippet + "\n")
    assert any(expected in p for p in out), out


@pytest.mark.parametrize("path,expected", [
    ("app/x", "must be an absolute path"),
    ("/app/../etc/passwd", "must not contain '..'"),
    ("/etc/lcai/app.env", "reserved"),
    ("/app//x", "normalised"),
])
def test_setup_file_paths(path, expected):
    out = problems(BASE + f"setup:\n  files:\n    - path: '{path}'\n")
    assert any(expected in p for p in out), out


def test_reserved_and_short_tags():
    out = problems(BASE.replace("    image: linode/ubuntu24.04",
                                "    image: linode/ubuntu24.04\n    tags: [ai, lcai-id:x]"))
    assert len(out) == 2 and "3-50 characters" in out[0] and "reserved" in out[1]


def test_env_declared_twice_and_required_default():
    out = problems(BASE + "env:\n  required:\n    - name: A\n      default: x\n  optional:\n    - name: A\n")
    assert any("declared twice" in p for p in out) and any("required variable has no default" in p for p in out)


@pytest.mark.parametrize("snippet,expected", [
    ("      post_start_timeout_seconds: 0\n", "deploy.yml:12: deploy.linode.container.post_start_timeout_seconds: "
                                              "must be between 1 and 86400"),
    ("      health: {type: tcp, max_restarts: 0}\n", "deploy.yml:12: deploy.linode.container.health.max_restarts: "
                                                    "must be between 1 and 1000, got 0"),
    ("      sandbox: false\n", "deploy.yml:12: deploy.linode.container.sandbox: applies to the native runtime only "
                               "(containers are isolated by Docker)"),
])
def test_hardening_fields_are_checked(snippet, expected):
    assert problems(BASE + snippet) == [expected]


def test_setup_timeout_is_checked():
    assert problems(BASE + "setup:\n  timeout_seconds: 100000\n") == [
        "deploy.yml:13: setup.timeout_seconds: must be between 1 and 86400"]


def test_secret_in_command_is_refused_and_others_are_not():
    env = "env:\n  required:\n    - name: KEY\n      secret: true\n  optional:\n    - name: MODEL\n"
    out = problems(BASE + "      command: serve --key ${KEY} --model ${MODEL}\n" + env)
    assert len(out) == 1 and out[0].startswith(
        "deploy.yml:12: deploy.linode.container.command: uses the secret variable ${KEY}: a command line is visible")
    load_template_text(BASE + "      command: serve --model ${MODEL} --lit $${KEY}\n" + env, "deploy.yml")
