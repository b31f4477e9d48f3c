"""The test-only ``test-registry`` capability renders user data that passes lcai's validators, and changes
nothing a template renders except its own forwarder unit, the socat package and the app's dependency on it."""

import pytest

from lcai_core.errors import ValidationError
from lcai_testing import render_text, require_plugins, require_validators, validate_many, written

FULL = """\
name: deps-test
capabilities:
  runtime: docker
  features:
    - docker-optimize
    - redis
    - postgresql
    - buildwatch
{extra}deploy:
  linode:
    image: {image}
    container:
      image: {ref}
      internal_port: 8080
      external_port: 8080
      health: {{type: http, path: /healthz, initial_delay_seconds: 5, interval_seconds: 2, max_retries: 60}}
"""
REF = "127.0.0.1:5055/lcai/deps-app:t1"
WITH = "    - {name: test-registry, config: {port: 5055}}\n"


def render(extra=WITH, image="linode/ubuntu24.04", **kw):
    return render_text(FULL.format(extra=extra, image=image, ref=REF), **kw)


def test_renders_valid_user_data_with_every_docker_feature(test_host):
    require_validators()
    require_plugins("redis", "postgresql", "buildwatch")
    r = render()
    files = written(r)
    unit = files["/etc/systemd/system/lcai-test-registry-forward.service"]["content"]
    assert "ExecStart=/usr/bin/socat TCP-LISTEN:5055,bind=127.0.0.1,reuseaddr,fork TCP:10.0.2.2:5055" in unit
    app = files["/etc/systemd/system/lcai-app.service"]["content"]
    requires = next(line for line in app.splitlines() if line.startswith("Requires="))
    assert "lcai-test-registry-forward.service" in requires.split()
    assert REF in app and "socat" in r.doc["packages"]
    assert "lcai-test-registry-forward.service" in r.units  # enabled and started with lcai's other units
    assert any("enable" in c and "lcai-test-registry-forward.service" in c for c in r.doc["runcmd"])
    without = render(extra="")
    assert validate_many([r.text, without.text]) == [[], []]


def test_only_adds_its_own_pieces(test_host):
    """The rendered user data is the template's own plus the forwarder: same files (daemon.json included)
    except that units which start with the app (the app, pulling its image) also order after the forwarder,
    same packages but socat, same env."""
    require_plugins("redis", "postgresql", "buildwatch")
    a, b = render(), render(extra="")
    fa, fb = written(a), written(b)
    assert set(fa) - set(fb) == {"/etc/systemd/system/lcai-test-registry-forward.service"}
    for path in fb:
        assert fa[path]["content"].replace(" lcai-test-registry-forward.service", "") == fb[path]["content"], path
        assert {**fa[path], "content": ""} == {**fb[path], "content": ""}, path
    assert [p for p in a.doc["packages"] if p != "socat"] == b.doc["packages"]
    assert a.env_names == b.env_names


def test_pull_retry_delay_shortens_the_pulls_backoff_with_a_drop_in(test_host):
    require_validators()
    r = render(extra="    - {name: test-registry, config: {port: 5055, pull_retry_delay: 2}}\n")
    from lcai_test_registry import PULL_DROP_IN

    assert written(r)[PULL_DROP_IN]["content"] == "[Service]\nEnvironment=LCAI_PULL_RETRY_DELAY=2\n"
    assert 'delay=${LCAI_PULL_RETRY_DELAY:-15}' in written(r)["/usr/local/lib/lcai/image-pull"]["content"]
    assert validate_many([r.text]) == [[]]


@pytest.mark.parametrize("config,msg", [
    ("{port: 0}", "config.port must be 1-65535"),
    ("{port: 5055, upstream: 'host.example'}", "config.upstream must be an IP address"),
    ("{}", "port"),
    ("{port: 5055, pull_retry_delay: -1}", "config.pull_retry_delay must be 0-3600 seconds"),
])
def test_bad_config_is_refused(test_host, config, msg):
    with pytest.raises(ValidationError, match=msg):
        render(extra=f"    - {{name: test-registry, config: {config}}}\n")


def test_not_registered_outside_the_tests():
    """Only the in-process test host knows it: lcai's default host (entry points) does not."""
    from lcai_core.plugins import Host

    assert Host().catalog.lookup("test-registry") is None
