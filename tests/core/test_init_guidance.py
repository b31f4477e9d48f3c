"""`init` of a template without a README writes its guidance (summary, examples) into the directory's README;
a capability listed twice is one clear error (issue 21, from the original design)."""

from lcai_core.cli import main

TEMPLATE = """name: guided
description: A guided service
deploy:
  linode:
    container: {image: nginx:1.27, internal_port: 80, external_port: 8080}
guidance:
  summary: Call it with curl.
  examples:
    - {description: Health check, command: 'curl http://{host}/health'}
"""


def test_init_without_a_readme_writes_the_guidance(tmp_path, lcai_config_dir, capsys):
    tpl = tmp_path / "guided"
    tpl.mkdir()
    (tpl / "template.yml").write_text(TEMPLATE)
    d = tmp_path / "deploy"
    assert main(["init", str(tpl), "-d", str(d)]) == 0, capsys.readouterr().err
    readme = (d / "README.md").read_text()
    assert "# guided" in readme and "A guided service" in readme and "Call it with curl." in readme
    assert "Health check" in readme and "curl http://{host}/health" in readme


def test_a_capability_listed_twice_is_one_error(tmp_path, capsys, lcai_config_dir):
    f = tmp_path / "t.yml"
    f.write_text("name: web\ncapabilities:\n  features:\n    - docker-optimize\n    - name: docker-optimize\n"
                 "      config: {max_concurrent_downloads: 4}\ndeploy:\n  linode:\n"
                 "    container: {image: nginx:1.27, internal_port: 80, external_port: 8080}\n")
    assert main(["templates", "validate", str(f)]) == 2
    errors = [x for x in capsys.readouterr().err.splitlines() if x.startswith("error:")]
    assert len(errors) == 1 and "listed twice" in errors[0], errors
