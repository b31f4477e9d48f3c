"""BuildWatch agent: events parsed and classified per second, and resident memory after 100 000 events
(targets: >= 5 000 events/s, <= 30 MB). Runs the agent's real pipeline (JSON parse, de-duplication, JSON-lines
log, detection) in a fresh process, without Docker or HTTP.

  python bench/buildwatch.py [--events 100000]     # runs the agent as shipped in the user data
"""

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CHILD = r"""
import json, resource, sys, tempfile, time
import importlib.util
# load the agent file standalone, as it runs on the instance (no lcai_core, no pluggy in the process)
spec = importlib.util.spec_from_file_location("build_watcher", sys.argv[2])
mod = importlib.util.module_from_spec(spec)
spec.loader.exec_module(mod)
Agent = mod.Agent
BASE = 1_767_000_000
def event(action, t, name="app", cid="0" * 64, **attrs):
    at = {"name": name, "image": "nginx:1.27", **{k: str(v) for k, v in attrs.items()}}
    return {"status": action, "id": cid, "Type": "container", "Action": action, "Actor": {"ID": cid, "Attributes": at},
            "scope": "local", "time": int(t), "timeNano": int(t * 1e9)}

n = int(sys.argv[1])
actions = ["start", "exec_create: sh", "exec_start: sh", "health_status: healthy", "die", "exec_die"]
def lines():  # generated on the fly: the benchmark must not hold the stream in memory itself
    for i in range(n):
        a = actions[i % len(actions)]
        extra = {"exitCode": i % 3} if a in ("die", "exec_die") else {}
        name = "app" if i % 4 else "sidecar"
        yield (json.dumps(event(a, BASE + i * 0.01, name=name, cid=f"{i // 6:064x}", **extra)) + "\n").encode()
def rss_mb():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
before = rss_mb()
agent = Agent({"log_dir": tempfile.mkdtemp(), "state_dir": tempfile.mkdtemp(), "port": 0})
t0 = time.perf_counter()
for line in lines():
    agent.handle_line(line)
dt = time.perf_counter() - t0
import gc; gc.collect()
print(json.dumps({"events": n, "seconds": dt, "per_s": n / dt, "rss_mb": rss_mb(), "rss_before_mb": before,
                  "in_memory": len(agent.store.events), "issues": len(agent.store.issues),
                  "seen": agent.store.counts["events"]}))
"""


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=100_000)
    n = ap.parse_args().events
    # the agent exactly as shipped in the user data (stripped, one-space indents), as it runs on the instance
    sys.path.insert(0, str(ROOT / "plugins" / "lcai-buildwatch" / "src"))
    from lcai_buildwatch.capability import shipped_agent_source

    with tempfile.TemporaryDirectory() as d:
        agent_file = Path(d) / "build-watcher.py"
        agent_file.write_text(shipped_agent_source())
        r = subprocess.run([sys.executable, "-c", CHILD, str(n), str(agent_file)], capture_output=True, text=True,
                           check=True)
    d = json.loads(r.stdout)
    print(f"events processed        {d['seen']:>10,} (of {d['events']:,} generated)")
    print(f"throughput              {d['per_s']:>10,.0f} events/s   (target >= 5,000)")
    print(f"resident memory after   {d['rss_mb']:>10.1f} MB         (target <= 30 MB; "
          f"{d['rss_before_mb']:.1f} MB before the agent; history bounded to "
          f"{d['in_memory']:,} events)")


if __name__ == "__main__":
    main()
