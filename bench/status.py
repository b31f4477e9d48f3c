"""`lcai status` against the simulator: API requests and wall time for 10, 100, 500 deployments (target:
<= 2 requests for 200), the time from `deploy` start to the create call, and the requests for 200 deployments
with 3 replicas each behind NodeBalancers (the lists, then one per NodeBalancer for its live node states, read
8 at a time).

  python bench/status.py
"""

import contextlib
import io
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    from lcai_core.cli import main as lcai
    from lcai_core.plugins import reset_host
    from lcai_core.registry import Registry
    from lcai_linode.provider import deployment_tags
    from lcai_testing.linode.simulator import Simulator

    tmp = Path(tempfile.mkdtemp(prefix="lcai-bench-"))
    sim = Simulator(provision_s=0.0, boot_s=0.0, serve_health=False).start()
    os.environ.update(LCAI_LINODE_API_URL=sim.url, LINODE_TOKEN="sim-token", LCAI_CONFIG_DIR=str(tmp / "cfg"),
                      HOME=str(tmp), LCAI_POLL_INTERVAL="0.01", LCAI_RETRY_DELAY="0")
    reset_host()
    st = sim.state
    reg = Registry()

    def add(n: int) -> None:
        records = {}
        with st.lock:
            for _ in range(n):
                iid = st.next_id
                st.next_id += 1
                dep = f"b{iid:07d}"[-8:]
                st.instances[iid] = {"id": iid, "label": f"lcai-bench-{dep}", "status": "running",
                                     "tags": deployment_tags(dep, "bench", "default"), "ipv4": ["127.0.1.1"],
                                     "region": "us-ord", "type": "g6-standard-2", "created": "2026-01-01T00:00:00",
                                     "_t0": 0.0, "_user_data": None}
                records[dep] = {"deployment_id": dep, "app": "bench", "env": "default", "linode_id": iid,
                                "status": "running", "region": "us-ord", "type": "g6-standard-2",
                                "created_at": "2026-01-01T00:00:00Z"}
        reg.transform(lambda deps: deps.update(records))

    total = 0
    print(f"{'deployments':>11} {'requests':>9} {'wall (median of 5)':>19}")
    for n in (10, 100, 200, 500):
        add(n - total)
        total = n
        times, reqs = [], []
        for _ in range(5):
            st.requests.clear()
            t0 = time.perf_counter()
            with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
                assert lcai(["status"]) == 0
            times.append(time.perf_counter() - t0)
            reqs.append(len(st.requests))
        print(f"{n:>11} {max(reqs):>9} {statistics.median(times) * 1000:>16.1f} ms")

    # time from deploy start to the create call (preflight, registry, firewall, lookup)
    svc = tmp / "svc"
    svc.mkdir()
    (svc / "deploy.yml").write_text("name: bench-app\ndeploy:\n  linode:\n    container:\n      image: nginx:1.27\n"
                                    "      internal_port: 80\n      external_port: 8080\n")
    samples = []
    for _ in range(5):
        st.requests.clear()
        (svc / ".linode" / "pending.json").unlink(missing_ok=True)
        t0 = time.time()
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            assert lcai(["deploy", "-d", str(svc), "--yes", "--new"]) == 0  # a create every time
        create = next(r for r in st.requests if r["method"] == "POST" and r["path"] == "/linode/instances")
        samples.append((create["time"] - t0, sum(1 for r in st.requests if r["time"] <= create["time"])))
    med = statistics.median(s[0] for s in samples)
    print(f"deploy start -> create call: {med * 1000:.0f} ms median of 5 (in-process, warm), "
          f"{samples[0][1]} API requests up to and including it")
    replicated(st, reg, lcai)
    sim.stop()


def replicated(st, reg, lcai) -> None:
    """`lcai status` of 200 deployments with 3 replicas each behind a NodeBalancer (docs/scaling.md)."""
    from lcai_linode.provider import deployment_tags

    reg.transform(lambda deps: deps.clear())
    with st.lock:
        st.instances.clear()
        records = {}
        for d in range(200):
            dep = f"r{d:07d}"
            tags = deployment_tags(dep, "bench", "default")
            reps = []
            for k in (1, 2, 3):
                iid = st.new_id()
                priv = f"192.168.{128 + d // 80}.{(d % 80) * 3 + k}"
                st.instances[iid] = {"id": iid, "label": f"lcai-bench-default-{dep}-{k}", "status": "running",
                                     "tags": tags, "ipv4": ["127.0.1.1", priv], "region": "us-ord",
                                     "type": "g6-standard-2", "created": "2026-01-01T00:00:00", "_t0": 0.0,
                                     "_user_data": None, "_private": priv}
                reps.append({"k": k, "linode_id": iid, "private_ip": priv, "public_ip": "127.0.1.1"})
            nid = st.new_id()
            st.nodebalancers[nid] = {"id": nid, "label": f"lcai-nb-{dep}", "region": "us-ord", "ipv4": "127.0.2.1",
                                     "hostname": "", "ipv6": None, "client_conn_throttle": 0, "tags": tags,
                                     "created": "2026-01-01T00:00:00", "updated": "2026-01-01T00:00:00",
                                     "transfer": {}, "_configs": {}, "_source_ip": "192.168.255.1"}
            records[dep] = {"deployment_id": dep, "app": "bench", "env": "default", "provider": "linode",
                            "status": "running", "region": "us-ord", "type": "g6-standard-2", "replicas": 3,
                            "created_at": "2026-01-01T00:00:00Z", "address": "127.0.2.1",
                            "provider_state": {"nodebalancer_id": nid, "replicas": reps}}
    reg.transform(lambda deps: deps.update(records))
    times, reqs = [], []
    for _ in range(5):
        st.requests.clear()
        t0 = time.perf_counter()
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            assert lcai(["status"]) == 0
        times.append(time.perf_counter() - t0)
        reqs.append(len(st.requests))
    import re

    paths = sorted({re.sub(r"/\d+", "/{id}", r["path"]) for r in st.requests})
    print(f"200 deployments x 3 replicas: {max(reqs)} requests ({', '.join(paths)}; 600 instances = 2 pages of "
          f"500), {statistics.median(times) * 1000:.1f} ms median of 5")


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    main()
