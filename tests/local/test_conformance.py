"""The provider conformance kit (lcai_testing.provider_contract) against the local provider, with the fake qemu
of conftest.py (it daemonizes like qemu and answers SSH's banner). The rules that create a VM directory need
qemu-img and xorriso (real ones: the disk overlay and the NoCloud seed) and skip without them, naming the apt
package; the rules that create nothing (C1, C3, C4, C11, C16, C20) run everywhere. C14, C25, C30 and C31
skip: the provider has no remote to lose and sends no request whose reply could be lost, or to count."""

import os

import pytest

from lcai_testing.provider_contract import ProviderContract


class TestLocalConformance(ProviderContract):
    @pytest.fixture
    def provider(self, tmp_path, monkeypatch):
        from lcai_core.plugins import reset_host
        from lcai_local.provider import LocalProvider

        monkeypatch.setenv("LCAI_LOCAL_DIR", str(tmp_path / "local"))
        monkeypatch.setenv("LCAI_LOCAL_CACHE", str(tmp_path / "cache"))
        monkeypatch.setenv("LCAI_LOCAL_ACCEL", "tcg")
        monkeypatch.setenv("LCAI_LOCAL_POLL_SECONDS", "0.1")
        reset_host()
        return LocalProvider()

    @pytest.fixture
    def can_create(self, fake_qemu, tiny_image):
        """qemu-img, xorriso and ssh-keygen (tiny_image skips without them), the fake qemu, a tiny image."""

    @pytest.fixture
    def spec_overrides(self):
        return {"image": "linode/debian12", "app_ports": (8000,), "external_port": 8000}

    @pytest.fixture
    def resources(self, provider):
        """The deployment's VM directory and a live qemu whose pidfile is in it."""
        from lcai_local import vm as V
        from lcai_local.paths import vm_dir

        def live(dep):
            d = vm_dir(dep)
            out = [f"vm directory {d}"] if os.path.isdir(d) else []
            return out + (["qemu"] if V.pid_alive(V.read_pid(d), d) else [])
        return live

    @pytest.fixture
    def wait_seconds(self):
        return 20.0
