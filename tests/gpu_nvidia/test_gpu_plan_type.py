"""A template with gpu-nvidia on a machine without a GPU is refused by validate, plan and deploy (issue 25,
item 9): the instance would install a driver for no GPU and never start the app. The provider says which of
its types have a GPU (Linode: the g*-gpu-* plans, and the API's type at preflight; local: none)."""

import pytest

from lcai_core.cli import main
from lcai_testing import require_plugins

TPL = """\
name: gpu-app
capabilities:
  runtime: docker
  features:
    - gpu-nvidia
deploy:
  target: {target}
  linode:
    image: linode/ubuntu24.04
    type_default: {type}
    container:
      image: vllm/vllm-openai:v0.8.5
      internal_port: 8000
      external_port: 80
"""


@pytest.fixture(autouse=True)
def installed(lcai_config_dir):
    require_plugins("gpu-nvidia")
    from lcai_core.plugins import get_host

    for name in ("linode", "local"):
        if name not in get_host().providers:
            pytest.skip(f"provider {name} not installed: pip install -e plugins/lcai-{name}")


def run(capsys, *args):
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def write(path, target="linode", type_="g6-standard-2"):
    path.write_text(TPL.format(target=target, type=type_))
    return path


def test_validate_refuses_a_gpu_template_on_a_plan_without_gpu(capsys, tmp_path):
    f = write(tmp_path / "template.yml")
    code, _, err = run(capsys, "templates", "validate", f)
    assert code == 2, err
    assert (f"{f}:10: deploy.linode.type_default: capability 'gpu-nvidia' needs a GPU, and Linode type "
            "g6-standard-2 has none") in err
    assert "g2-gpu-rtx4000a1-s" in err and "Traceback" not in err
    for gpu_type in ("g2-gpu-rtx4000a1-s", "g1-gpu-rtx6000-1"):
        assert run(capsys, "templates", "validate", write(f, type_=gpu_type))[0] == 0
    # the local provider has no GPU at all, whatever the type
    code, _, err = run(capsys, "templates", "validate", write(f, target="local", type_="g2-gpu-rtx4000a1-s"))
    assert code == 2 and "needs a GPU, and a local VM has none" in err


def test_validate_reports_the_gpu_problem_with_the_others(capsys, tmp_path):
    f = tmp_path / "template.yml"
    f.write_text(TPL.format(target="linode", type="g6-standard-2").replace("internal_port: 8000",
                                                                          "internal_port: 99999"))
    code, _, err = run(capsys, "templates", "validate", f)
    assert code == 2 and "port must be 1-65535" in err and "needs a GPU" in err, err


def test_plan_refuses_the_type_default_and_a_type_override(capsys, tmp_path):
    d = tmp_path / "svc"
    d.mkdir()
    write(d / "deploy.yml")
    code, _, err = run(capsys, "plan", "-d", d)
    assert code == 2 and f"{d / 'deploy.yml'}:10: deploy.linode.type_default: capability 'gpu-nvidia' needs a GPU" \
        in err, err
    write(d / "deploy.yml", type_="g2-gpu-rtx4000a1-s")
    assert run(capsys, "plan", "-d", d)[0] == 0
    code, _, err = run(capsys, "plan", "-d", d, "--type", "g6-dedicated-4")
    assert code == 2 and "--type g6-dedicated-4: capability 'gpu-nvidia' needs a GPU, and Linode type " \
        "g6-dedicated-4 has none" in err, err
    assert not (d / "user-data.yaml").exists()
