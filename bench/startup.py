"""Start-up and render benchmarks (issue: core performance). Prints figures; asserts nothing.

  python bench/startup.py [--pairs N] [--instructions]

- wall time of `lcai --help`, `lcai templates list` and `lcai --version` against `python -c "import click"`,
  measured as interleaved pairs after a warm-up: each pair runs the baseline and lcai back to back (in
  alternating order), the figure is the median of the per-pair ratios, with their spread (min, quartiles, max).
  Target <= 1.30x. Bytecode is compiled first (`compileall`, as pip does when it installs a wheel), so an
  environment with PYTHONDONTWRITEBYTECODE does not make every run compile lcai's sources. `--instructions`
  also prints the same ratios counted in instructions (valgrind's callgrind), which the machine's load does not
  move.
- render time of the largest bundled template and of the largest capability combination (median of 50; target
  <= 5 ms), with the emitter used (libyaml or pure Python), and the pure-Python emitter's time beside it
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


def _wall(cmd: list[str]) -> float:
    t0 = time.perf_counter()
    subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    return time.perf_counter() - t0


def paired_ratio(cmd: list[str], base: list[str], pairs: int, warmup: int = 3) -> tuple[list[float], list[float]]:
    """Per-pair ratios cmd/base and cmd's own times: each pair runs both back to back, the order alternating so
    neither always runs on the caches the other warmed; ``warmup`` unmeasured pairs first."""
    for _ in range(warmup):
        _wall(base), _wall(cmd)
    ratios, times = [], []
    for i in range(pairs):
        if i % 2:
            t, b = _wall(cmd), _wall(base)
        else:
            b, t = _wall(base), _wall(cmd)
        ratios.append(t / b)
        times.append(t)
    return ratios, times


def instructions(cmd: list[str]) -> int | None:
    """Instructions one run executes, counted by valgrind's callgrind (the same whatever else the machine is doing);
    None without valgrind."""
    import re
    import shutil

    if shutil.which("valgrind") is None:
        return None
    r = subprocess.run(["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", *cmd],
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, check=True)
    m = re.search(r"Collected : (\d+)", r.stderr)
    return int(m.group(1)) if m else None


def spread(values: list[float]) -> str:
    q = statistics.quantiles(values, n=4) if len(values) >= 2 else [values[0]] * 3
    return f"min {min(values):.2f}  q1 {q[0]:.2f}  q3 {q[2]:.2f}  max {max(values):.2f}"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--pairs", "--runs", type=int, default=21, dest="pairs")
    ap.add_argument("--instructions", action="store_true",
                    help="also count instructions with valgrind (callgrind): a ratio that load does not move")
    opts = ap.parse_args()
    pairs = opts.pairs
    py = sys.executable
    subprocess.run([py, "-m", "compileall", "-q", str(ROOT / "lcai_core"), *map(str, ROOT.glob("plugins/*/src"))],
                   stdout=subprocess.DEVNULL, check=True)
    base = [py, "-c", "import click"]
    print(f"start-up as interleaved pairs with `python -c 'import click'` ({pairs} pairs after 3 warm-up pairs)")
    for label, args in (("lcai --help", ["--help"]), ("lcai templates list", ["templates", "list"]),
                        ("lcai --version", ["--version"])):
        ratios, times = paired_ratio([str(Path(py).parent / "lcai"), *args], base, pairs)
        print(f"{label:<22} {statistics.median(times) * 1000:6.1f} ms  ratio {statistics.median(ratios):4.2f}x "
              f"(target <= 1.30x)  spread {spread(ratios)}")
    if opts.instructions:
        base_n = instructions(base)
        if base_n is None:
            print("instructions: valgrind is not installed (apt-get install valgrind)")
        else:
            print(f"instructions (callgrind, one run each): `python -c 'import click'` {base_n / 1e6:.1f} M")
            for label, args in (("lcai --help", ["--help"]), ("lcai templates list", ["templates", "list"]),
                                ("lcai --version", ["--version"])):
                n = instructions([str(Path(py).parent / "lcai"), *args]) or 0
                print(f"{label:<22} {n / 1e6:7.1f} M  ratio {n / base_n:4.2f}x")

    sys.path.insert(0, str(ROOT))
    from lcai_core import cloudinit
    from lcai_testing import every_capability, render_text

    # report sizes even over the limits (a too-large rendering is exactly what this bench must show)
    cloudinit.Rendered.check_size = lambda self: None

    env = {"VLLM_API_KEY": "sk-bench", "EMBEDDINGS_API_KEY": "k"}
    bundled = {p.parent.name: p.read_text() for p in sorted((ROOT / "templates").glob("*/template.yml"))}
    largest = max(bundled, key=lambda n: render_text(bundled[n], dotenv=env).sizes()["raw"])
    full = bundled[largest]
    combo = every_capability()
    from lcai_core.cloudinit import yamldump

    def render_ms(text: str, dotenv: dict) -> float:
        render_text(text, dotenv=dotenv)  # warm imports
        times = []
        for _ in range(50):
            t0 = time.perf_counter()
            render_text(text, dotenv=dotenv)
            times.append(time.perf_counter() - t0)
        return statistics.median(times) * 1000

    fast = yamldump.DUMPER
    emitter = "libyaml" if fast is not yamldump.PyDumper else "pure Python (PyYAML without libyaml)"
    print(f"render (median of 50), emitter: {emitter}")
    for label, text, dotenv in ((f"{largest} (largest bundled)", full, env), ("all capabilities", combo, {})):
        ms = render_ms(text, dotenv)
        yamldump.DUMPER = yamldump.PyDumper
        try:
            py_ms = render_ms(text, dotenv)
        finally:
            yamldump.DUMPER = fast
        s = render_text(text, dotenv=dotenv).sizes()
        print(f"render {label:<27} {ms:7.2f} ms  (target <= 5 ms; pure-Python emitter {py_ms:.2f} ms)  "
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
