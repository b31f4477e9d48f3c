"""Rendering without a deployment directory, exactly as ``lcai plan`` and ``deploy`` do, and what tests read
from the result; installing a distribution as a user would."""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any


def require_plugins(*capabilities: str) -> None:
    """Skip (locally) or fail (CI=true) unless these capabilities are installed."""
    import pytest
    from lcai_core.plugins import get_host

    missing = [c for c in capabilities if get_host().catalog.lookup(c) is None]
    if missing:
        msg = f"capabilities not installed: {', '.join(missing)}"
        if os.environ.get("CI"):
            pytest.fail(msg)
        pytest.skip(msg)


_EVERY_CAPABILITY = """name: everything
capabilities:
  runtime: docker
  features: [docker-optimize, gpu-nvidia, redis, postgresql, python-3.11, buildwatch]
  packages: [ffmpeg]
deploy:
  linode:
    image: linode/ubuntu22.04
    container:
      image: vllm/vllm-openai:v0.8.5
      internal_port: 8000
      external_port: 80
      health: {type: http, path: /health}
"""


def every_capability() -> str:
    """A template with every first-party capability at once (over Linode's size limit with BuildWatch's agent
    inside: render it with ``Rendered.check_size`` switched off)."""
    return _EVERY_CAPABILITY


def render_text(template_yaml: str, dotenv: dict | None = None, host: Any = None, deployment_id: str = "t3stdepl",
                secret_seed: bytes = b"lcai-test-seed", file: str = "template.yml", **ctx_overrides: Any) -> Any:
    """Render a template given as text, exactly as plan/deploy do (same loader, catalog, context, build)."""
    from lcai_core.plugins import get_host
    from lcai_core.project import context_for, render
    from lcai_core.template import load_template_text

    host = host or get_host()
    tpl = load_template_text(template_yaml, file, host.catalog)
    resolved = host.catalog.resolve(tpl)
    ctx = context_for(tpl, resolved, deployment_id, secret_seed, **ctx_overrides)
    _env, rendered = render(tpl, resolved, ctx, dict(dotenv or {}))
    return rendered


def written(rendered: Any) -> dict[str, dict]:
    """The rendered write_files by path."""
    return {w["path"]: w for w in rendered.doc["write_files"]}


def app_env(rendered: Any) -> dict[str, str]:
    """The app's env file as a dict: docker's literal NAME=value, or systemd's NAME="escaped" (native)."""
    files = written(rendered)
    systemd_format = "EnvironmentFile=/etc/lcai/app.env" in files["/etc/systemd/system/lcai-app.service"]["content"]
    out = {}
    for line in files["/etc/lcai/app.env"]["content"].splitlines():
        k, v = line.split("=", 1)
        if systemd_format:
            v = v[1:-1].replace('\\"', '"').replace("\\\\", "\\")
        out[k] = v
    return out


def install_distribution(project: Any, target: Any) -> None:
    """``pip install`` a project directory (its pyproject.toml; no dependencies, no build isolation) into the
    directory ``target``, as a user would: put ``target`` on ``sys.path`` and lcai finds its entry points in the
    installed metadata. For tests of plugins and of the guides' examples."""
    r = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                        "--disable-pip-version-check", "--target", str(target), str(project)],
                       capture_output=True, text=True, timeout=300)
    if r.returncode != 0:
        raise RuntimeError(f"pip install {project} failed: {r.stderr.strip()[-2000:]}")
