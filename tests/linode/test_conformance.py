"""The provider conformance kit (lcai_testing.provider_contract) against the Linode provider on the API
simulator: every rule runs, the lost-reply rule with the simulator's "performed, reply lost" fault on each
create request, rows() and destroy() with every request failing, rows()' request count from the simulator's log."""

import pytest

from lcai_testing.provider_contract import ProviderContract

#: the create request of each of the provider's steps
CREATES = {"firewall": ("POST", "/networking/firewalls$"), "instance": ("POST", "/linode/instances$")}


class TestLinodeConformance(ProviderContract):
    @pytest.fixture
    def provider(self, sim):
        from lcai_linode.provider import LinodeProvider

        return LinodeProvider()

    @pytest.fixture
    def resources(self, sim):
        """Every instance tagged with the deployment id and its firewall (by label), from the simulator."""
        def live(dep):
            st = sim.state()
            return ([f"instance {i['id']}" for i in st["instances"] if f"lcai-id:{dep}" in i["tags"]]
                    + [f"firewall {f['id']}" for f in st["firewalls"] if f["label"] == f"lcai-fw-{dep}"])
        return live

    @pytest.fixture
    def lose_reply(self, sim):
        def lose(step):
            if step not in CREATES:
                return False
            method, path = CREATES[step]
            sim.fault(method=method, path=path, status=502, reason="Bad Gateway", when="after", times=1)
            return True
        return lose

    @pytest.fixture
    def unreachable(self, sim):
        """Every request fails with a 500 (the provider retries, then gives up)."""
        return lambda: sim.fault(method="*", path=".*", status=500, reason="Internal Server Error", times=10000)

    @pytest.fixture
    def request_count(self, sim):
        return lambda: len(sim.sim.state.requests)
