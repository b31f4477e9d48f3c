"""Start-up and render benchmarks (issue: core performance). Prints figures; asserts nothing.

  python bench/startup.py [--runs N]

- wall time of `lcai --help` and `lcai templates list` as a ratio to `python -c "import click"` (median of N runs;
  target <= 1.5x)
- render time of the largest bundled template and of the largest capability combination (median; target <= 20 ms)
- llm-api's user data, with BuildWatch's agent from the package index (as installed from PyPI) and inside the user
  data (a source checkout): gzip bytes (target <= 8 KiB, half of Linode's 16 KiB) and base64 characters (Linode's
  API limit: about 16 KiB encoded), and the files that take most of it
"""

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def median_wall(cmd: list[str], runs: int) -> float:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=15)
    runs = ap.parse_args().runs
    py = sys.executable
    base = median_wall([py, "-c", "import click"], runs)
    print(f"baseline  python -c 'import click'   {base * 1000:7.1f} ms  (median of {runs})")
    for label, args in (("lcai --help", ["--help"]), ("lcai templates list", ["templates", "list"]),
                        ("lcai --version", ["--version"])):
        t = median_wall([str(Path(py).parent / "lcai"), *args], runs)
        print(f"{label:<34} {t * 1000:7.1f} ms  ratio {t / base:4.2f}x  (target <= 1.50x)")

    sys.path.insert(0, str(ROOT))
    from lcai_core import cloudinit
    from lcai_testing import render_text

    # report sizes even over the limits (a too-large rendering is exactly what this bench must show)
    cloudinit.Rendered.check_size = lambda self: None

    env = {"VLLM_API_KEY": "sk-bench", "EMBEDDINGS_API_KEY": "k"}
    bundled = {p.parent.name: p.read_text() for p in sorted((ROOT / "templates").glob("*/template.yml"))}
    largest = max(bundled, key=lambda n: render_text(bundled[n], dotenv=env).sizes()["raw"])
    full = bundled[largest]
    combo = """name: everything
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
    for label, text, dotenv in ((f"{largest} (largest bundled)", full, env), ("all capabilities", combo, {})):
        render_text(text, dotenv=dotenv)  # warm imports
        times = []
        for _ in range(50):
            t0 = time.perf_counter()
            r = render_text(text, dotenv=dotenv)
            times.append(time.perf_counter() - t0)
        s = r.sizes()
        print(f"render {label:<27} {statistics.median(times) * 1000:7.2f} ms  (target <= 20 ms)  "
              f"raw {s['raw']} B, gzip {s['gzip']} B, base64 {s['base64']} B")
    # BuildWatch's agent: from the package index (what `auto` picks for lcai-buildwatch installed from PyPI),
    # or inside the user data (what `auto` picks in a source checkout)
    anchor = "slow_start_seconds: 1500\n"
    assert anchor in bundled["llm-api"], "bench/startup.py: llm-api's buildwatch config changed; update the bench"
    for mode in ("package-index", "user-data"):
        text = bundled["llm-api"].replace(anchor, f"{anchor}        agent_from: {mode}\n")
        llm_size(render_text, text, {"VLLM_API_KEY": "sk-bench"}, f"agent from {mode}")


def llm_size(render_text, text: str, env: dict, label: str) -> None:
    import gzip

    r = render_text(text, dotenv=env)
    s = r.sizes()
    print(f"llm-api user data ({label})")
    print(f"                                   gzip {s['gzip']} B (target <= 8192; limit {s['limit']})  "
          f"base64 {s['base64']} chars (limit {s.get('base64_limit', 16384)})  raw {s['raw']} B")
    # what each written file adds to the gzip stream: the stream without it, compared
    whole = len(gzip.compress(r.text.encode(), 9, mtime=0))
    parts = []
    for w in r.doc["write_files"]:
        start = r.text.find(f"- path: {w['path']}\n")
        end = r.text.find("\n- path: ", start + 1)
        without = r.text[:start] + (r.text[end + 1:] if end != -1 else "")
        parts.append((whole - len(gzip.compress(without.encode(), 9, mtime=0)), w["path"]))
    for size, path in sorted(parts, reverse=True)[:6]:
        print(f"  {size:6d} B of the gzip   {path}")


if __name__ == "__main__":
    main()
