"""`lcai templates schema` and `lcai templates validate` accept the same documents (issue 15, item 3).

Thousands of documents are generated from the JSON Schema itself (its types, enums, patterns — sampled from the
regular expressions —, ranges and if/then rules), most of them then mutated into near misses: a port out of range,
a pattern broken by one character, a required key removed, a value of the wrong type, an unknown key, a list item
repeated. Each one is written as YAML and judged twice: by jsonschema against the generated schema, and by the
loader `lcai templates validate` uses (``template.validate``) with the installed capabilities, leaving out only the
checks ``constraints.BEYOND_SCHEMA`` lists (what JSON Schema cannot say). The two must agree on every document.

LCAI_AGREEMENT_DOCS sets the number of documents (default 2500), LCAI_AGREEMENT_SEED the seed.
"""

from __future__ import annotations

import copy
import os
import random
import re
import shlex
import time
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from lcai_core.constraints import BEYOND_SCHEMA, SHLEX
from lcai_core.plugins import Host
from lcai_core.schema import template_schema
from lcai_core.template import load_template, validate
from lcai_core.yamlfile import load_text

try:
    from re import _parser as sre_parse  # type: ignore[attr-defined]
    from re import _constants as sre_c  # type: ignore[attr-defined]
except ImportError:  # Python 3.10
    import sre_constants as sre_c  # type: ignore[no-redef]
    import sre_parse  # type: ignore[no-redef]

DOCS = int(os.environ.get("LCAI_AGREEMENT_DOCS", "2500"))
SEED = int(os.environ.get("LCAI_AGREEMENT_SEED", "20261130"))
ROOT = Path(__file__).parents[2]
# characters a generated string is made of where a pattern allows "anything": the ones the rules care about
ALPHABET = "abcz09AZ-_.:/@+~=' \"\\$\t\n\r{}é"
DUMPER = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


# ---------------------------------------------------------------- strings from a regular expression


def sample_regex(pattern: str, rng: random.Random) -> str:
    """A string that (mostly) matches ``pattern``: a walk of its parsed form; lookarounds and anchors are
    skipped (the caller checks the result)."""
    out: list[str] = []

    def chars_of(items: list) -> list[str]:
        pool: list[str] = []
        negate = False
        for op, arg in items:
            if op is sre_c.NEGATE:
                negate = True
            elif op is sre_c.LITERAL:
                pool.append(chr(arg))
            elif op is sre_c.RANGE:
                lo, hi = arg
                pool += [chr(lo), chr(hi), chr(rng.randint(lo, hi))]
            elif op is sre_c.CATEGORY:
                pool += {sre_c.CATEGORY_DIGIT: list("0479"), sre_c.CATEGORY_SPACE: [" ", "\t", "\n"],
                         sre_c.CATEGORY_WORD: list("aZ_9"), sre_c.CATEGORY_NOT_SPACE: list("a/-'")}.get(arg, ["x"])
        if negate:
            return [c for c in ALPHABET if c not in pool] or ["x"]
        return pool or ["x"]

    def walk(parsed: Any) -> None:
        for op, arg in parsed:
            if op is sre_c.LITERAL:
                out.append(chr(arg))
            elif op is sre_c.NOT_LITERAL:
                out.append(rng.choice([c for c in ALPHABET if ord(c) != arg]))
            elif op is sre_c.ANY:
                out.append(rng.choice(ALPHABET))
            elif op is sre_c.IN:
                out.append(rng.choice(chars_of(arg)))
            elif op in (sre_c.MAX_REPEAT, sre_c.MIN_REPEAT):
                lo, hi, sub = arg
                hi = min(hi, lo + 12)
                for _ in range(lo + int(rng.random() ** 2 * (hi - lo + 1) * 0.999)):
                    walk(sub)
            elif op is sre_c.SUBPATTERN:
                walk(arg[-1])
            elif op is sre_c.BRANCH:
                walk(rng.choice(arg[1]))
            # AT (anchors), ASSERT / ASSERT_NOT (lookarounds): nothing to emit

    walk(sre_parse.parse(pattern))
    return "".join(out)


def mutate_string(s: str, rng: random.Random) -> str:
    """``s`` with one to three characters inserted, removed or replaced."""
    chars = list(s)
    for _ in range(rng.randint(1, 3)):
        i = rng.randint(0, len(chars))
        kind = rng.random()
        if kind < 0.4 or not chars:
            chars.insert(i, rng.choice(ALPHABET))
        elif kind < 0.7:
            del chars[min(i, len(chars) - 1)]
        else:
            chars[min(i, len(chars) - 1)] = rng.choice(ALPHABET)
    return "".join(chars)


# ---------------------------------------------------------------- documents from the schema


class Generator:
    def __init__(self, schema: dict, rng: random.Random):
        self.schema, self.rng = schema, rng
        self.if_validators: dict[int, Any] = {}
        self.fill = 0.6  # how likely an optional key is set; varied per document

    def resolve(self, s: dict) -> dict:
        while "$ref" in s:
            ref = self.schema["$defs"][s["$ref"].split("/")[-1]]
            rest = {k: v for k, v in s.items() if k != "$ref"}
            s = {**ref, **rest, "allOf": ref.get("allOf", []) + rest.get("allOf", [])} if rest else ref
        return s

    def matches(self, s: dict, value: Any) -> bool:
        v = self.if_validators.get(id(s))
        if v is None:
            v = self.if_validators[id(s)] = jsonschema.Draft202012Validator({**s, "$defs": self.schema["$defs"]})
        return bool(v.is_valid(value))

    def value(self, s: dict, depth: int = 0) -> Any:
        rng = self.rng
        s = self.resolve(s)
        if "const" in s:
            return s["const"]
        if "enum" in s:
            return rng.choice(s["enum"])
        if "anyOf" in s and "type" not in s:
            alts = s["anyOf"]
            non_null = [a for a in alts if a != {"type": "null"}]
            if len(non_null) < len(alts) and rng.random() < 0.1:
                return None
            return self.value(rng.choice(non_null), depth)
        if "oneOf" in s:
            return self.value(rng.choice(s["oneOf"]), depth)
        t = s.get("type")
        if isinstance(t, list):
            t = rng.choice(t)
        if t == "object" or "properties" in s:
            return self.obj(s, depth)
        if t == "array":
            n = rng.choice([0, 1, 1, 2, 3])
            return [self.value(s.get("items", {}), depth + 1) for _ in range(n)]
        if t == "integer":
            lo, hi = s.get("minimum", -5), s.get("maximum", 100000)
            return rng.choice([lo, hi, rng.randint(lo, min(hi, lo + 10)), rng.randint(lo, hi)])
        if t == "number":
            return rng.choice([0.5, 1.5, 10.25])
        if t == "boolean":
            return rng.random() < 0.5
        if t == "string" or "pattern" in s or "allOf" in s:
            return self.string(s)
        return rng.choice(["x", 1, True, None])

    def string(self, s: dict) -> str:
        parts = [s, *s.get("allOf", [])]
        patterns = [p["pattern"] for p in parts if "pattern" in p]
        v = jsonschema.Draft202012Validator({k: x for k, x in s.items() if k not in ("default", "description")})
        out = ""
        for _ in range(8):
            if patterns:
                out = sample_regex(self.rng.choice(patterns), self.rng)
            else:
                out = "".join(self.rng.choice("abcdefgh-/ ") for _ in range(self.rng.randint(3, 12)))
            if v.is_valid(out):
                return out
        return out

    def obj(self, s: dict, depth: int) -> dict:
        rng = self.rng
        props = s.get("properties", {})
        out: dict[str, Any] = {}
        if props:
            for key, sub in props.items():
                if key in s.get("required", []) or rng.random() < self.fill:
                    out[key] = self.value(sub, depth + 1)
        elif isinstance(s.get("additionalProperties"), dict):
            names = s.get("propertyNames", {})
            for _ in range(rng.choice([0, 1, 2])):
                out[self.string({"type": "string", **names})] = self.value(s["additionalProperties"], depth + 1)
        # mostly follow the schema's if/then rules (a document that breaks one is a near miss too)
        for cond in s.get("allOf", []):
            if "if" in cond and self.matches(cond["if"], out) and rng.random() < 0.85:
                self.satisfy(out, cond["then"], s, depth)
        return out

    def satisfy(self, obj: Any, then: dict, schema: dict, depth: int) -> None:
        """Make ``obj`` (an object of ``schema``) meet ``then`` where that means setting values."""
        if not isinstance(obj, dict):
            return
        schema = self.resolve(schema)
        if "anyOf" in then:
            self.satisfy(obj, self.rng.choice(then["anyOf"]), schema, depth)
        for key, sub in then.get("properties", {}).items():
            base = self.resolve(schema.get("properties", {}).get(key, {}))
            if isinstance(obj.get(key), dict) and ("properties" in sub or "anyOf" in sub):
                self.satisfy(obj[key], sub, base, depth + 1)
            elif key in obj or key in then.get("required", []):
                if "properties" in sub or "required" in sub:
                    obj[key] = self.value(base, depth + 1)
                    self.satisfy(obj[key], sub, base, depth + 1)
                elif any(k in sub for k in ("type", "anyOf", "$ref")):  # a whole schema, e.g. a capability's config
                    obj[key] = self.value(sub, depth + 1)
                elif "enum" in sub or "const" in sub:
                    obj[key] = self.value({**base, **sub}, depth + 1)
                else:  # keywords narrowing the base schema (a pattern, a range)
                    obj[key] = self.value({**base, "allOf": [*base.get("allOf", []), sub]}, depth + 1)

    # near misses

    def mutate(self, doc: dict) -> None:
        rng = self.rng
        spots: dict[Any, list[tuple[Any, Any, int]]] = {}  # by top-level section: each gets its share

        def collect(node: Any, depth: int, section: Any) -> None:
            items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
            for k, v in items:
                spots.setdefault(section if depth else k, []).append((node, k, depth))
                collect(v, depth + 1, section if depth else k)

        collect(doc, 0, None)
        if not spots or rng.random() < 0.1:
            doc[rng.choice(["colour", "nmae", "deploy_"])] = "x"
            return
        group = spots[rng.choice(sorted(spots, key=str))]
        # the deepest of three picks: the rarer, nested fields (a capability's config, a health check) get hit too
        parent, key, _ = max((rng.choice(group) for _ in range(3)), key=lambda spot: spot[2])
        v = parent[key]
        kind = rng.random()
        if kind < 0.15 and isinstance(parent, dict):
            del parent[key]  # a required key, sometimes
        elif kind < 0.25 and isinstance(parent, list):
            parent.append(copy.deepcopy(v))  # a repeated item
        elif kind < 0.35 and isinstance(v, dict):
            v["unknown_key"] = 1
        elif kind < 0.5:
            # the wrong type (never an integral float: BEYOND_SCHEMA "integral-floats")
            parent[key] = rng.choice(["8000", 8000, 2.5, True, None, [], {}, "true", ["x"]])
        elif isinstance(v, bool):
            parent[key] = not v
        elif isinstance(v, int):
            parent[key] = rng.choice([v - 1, v + 1, 0, -1, 65535, 65536, 999999, 86401, 1001, 100001, 26, 2])
        elif isinstance(v, str):
            parent[key] = mutate_string(v, rng)
        else:
            parent[key] = rng.choice([None, "x", 1])


@pytest.fixture(scope="module")
def judged() -> tuple[Any, Any, Any]:
    catalog = Host().catalog
    schema = template_schema(catalog)
    return catalog, schema, jsonschema.Draft202012Validator(schema)


def loader_problems(data: Any, catalog: Any, beyond_schema: bool = False) -> list[str]:
    """What `lcai templates validate` says about ``data`` written as a YAML file."""
    text = yaml.dump(data, Dumper=DUMPER, allow_unicode=True, sort_keys=False)
    doc = load_text(text, "gen.yml")
    assert doc.data == data, "the YAML round trip changed the document"
    _, problems = validate(doc, catalog, beyond_schema=beyond_schema)
    return [str(p) for p in problems]


def test_schema_and_validate_agree_on_generated_documents(judged):
    catalog, schema, v = judged
    rng = random.Random(SEED)
    gen = Generator(schema, rng)
    start = time.monotonic()
    accepted = rejected = beyond_only = 0
    disagreements: list[str] = []
    entry = schema["$defs"]["Capabilities"]["properties"]["features"]["items"]["oneOf"][1]  # {name, config}
    for i in range(DOCS):
        gen.fill = rng.choice([0.2, 0.5, 0.8])
        doc = gen.value(schema)
        if i % 4 == 0:  # every fourth: capabilities with their configs filled in (few documents have them)
            gen.fill = 0.9
            doc.setdefault("capabilities", {})["features"] = [gen.value(entry) for _ in range(rng.randint(1, 2))]
        for _ in range(rng.choice([0, 0, 1, 1, 2])):
            gen.mutate(doc)
        schema_ok = bool(v.is_valid(doc))
        problems = loader_problems(doc, catalog)
        if schema_ok != (not problems):
            errors = [e.message[:160] for e in v.iter_errors(doc)]
            disagreements.append(f"#{i} schema {'accepts' if schema_ok else 'rejects'} {doc!r}: "
                                 f"schema errors {errors}, validate {problems}")
        elif schema_ok:
            accepted += 1
            beyond_only += bool(loader_problems(doc, catalog, beyond_schema=True))
        else:
            rejected += 1
    took = time.monotonic() - start
    summary = (f"{DOCS} generated documents (seed {SEED}) in {took:.1f} s: both accept {accepted}, both reject "
               f"{rejected}, disagree {len(disagreements)}; of the accepted, {beyond_only} are refused by validate's "
               f"checks beyond the schema ({', '.join(b.id for b in BEYOND_SCHEMA)})")
    print("\n" + summary)
    assert not disagreements, summary + "\n" + "\n".join(disagreements[:10])
    # the generator must exercise both sides, or agreement says little
    assert accepted >= DOCS // 5 and rejected >= DOCS // 5, summary


def test_bundled_templates_pass_both(judged):
    catalog, schema, v = judged
    files = sorted((ROOT / "templates").glob("*/template.yml"))
    assert len(files) >= 4
    for f in files:
        data = yaml.safe_load(f.read_text(encoding="utf-8"))
        assert not [e.message for e in v.iter_errors(data)], f
        load_template(f, catalog)  # raises on any problem, the checks beyond the schema included
    jsonschema.Draft202012Validator.check_schema(schema)


def test_the_command_pattern_is_shlex():
    """constraints.SHLEX decides whether container.command splits; the renderer then calls shlex.split on it."""
    rng = random.Random(SEED)
    for _ in range(5000):
        s = "".join(rng.choice("ab '\"\\\n$") for _ in range(rng.randint(0, 12)))
        try:
            shlex.split(s)
            ok = True
        except ValueError:
            ok = False
        assert bool(re.search(SHLEX, s)) == ok, repr(s)


def test_the_docs_list_what_only_validate_checks():
    text = (ROOT / "docs" / "templates.md").read_text(encoding="utf-8")
    section = text[text.index("## The schema and `validate`"):]
    section = section[:section.index("\n## ", 1)]
    assert [b.id for b in BEYOND_SCHEMA] == re.findall(r"^- `([a-z-]+)`:", section, re.M)


def test_patterns_mean_the_same_in_ecmascript(judged, tmp_path):
    """Editors validate with ECMAScript regular expressions: every pattern of the schema must compile there
    (with the u flag) and match the same strings as Python's re (sampled from the pattern, then mutated)."""
    import json
    import subprocess

    from lcai_testing import tools

    (node,) = tools.need("node", ci_fails=False)
    _, schema, _ = judged
    patterns: set[str] = set()

    def walk(n: Any) -> None:
        for k, v in (n.items() if isinstance(n, dict) else enumerate(n) if isinstance(n, list) else ()):
            if k == "pattern" and isinstance(v, str):
                patterns.add(v)
            else:
                walk(v)

    walk(schema)
    rng = random.Random(SEED)
    cases = []
    for p in sorted(patterns):
        for _ in range(300):
            s = sample_regex(p, rng)
            s = mutate_string(s, rng) if rng.random() < 0.5 else s
            s = s + "\n" if rng.random() < 0.1 else s
            cases.append([p, s, bool(re.search(p, s))])
    (tmp_path / "cases.json").write_text(json.dumps(cases), encoding="utf-8")
    script = ("const cases = JSON.parse(require('fs').readFileSync(process.argv[1], 'utf8'));"
              "const out = cases.filter(([p, s, py]) => new RegExp(p, 'u').test(s) !== py);"
              "console.log(JSON.stringify(out.slice(0, 10)));")
    r = subprocess.run([node, "-e", script, str(tmp_path / "cases.json")], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == [], f"{len(cases)} cases over {len(patterns)} patterns"
    assert len(patterns) >= 15
