"""docs/providers.md's tables of the contract's data match the classes: every `Spec` and `VolumeSpec` field,
every record key core stores (`RECORD_KEYS`) and every status core writes (`CORE_STATUSES`), no more, no less."""

import re
from pathlib import Path

import attrs

from lcai_core.providers import CORE_STATUSES, RECORD_KEYS, Spec, VolumeSpec

DOC = (Path(__file__).parents[2] / "docs" / "providers.md").read_text()


def table(title: str) -> list[str]:
    """The first column (`name`) of the table under the heading ``title``."""
    part = DOC.split(f"### {title}\n", 1)[1].split("\n### ", 1)[0].split("\n## ", 1)[0]
    return re.findall(r"^\| `([^`]+)` \|", part, re.M)


def test_spec_table_is_every_field():
    assert table("`Spec` fields") == [f.name for f in attrs.fields(Spec)]


def test_volume_spec_fields_are_named():
    line = DOC.split("`VolumeSpec` fields:", 1)[1].split("\n\n", 1)[0]
    assert re.findall(r"`(\w+)` \(|`(\w+)`,", line) and all(f"`{f.name}`" in line for f in attrs.fields(VolumeSpec))


def test_record_table_is_record_keys():
    assert table("Record fields") == list(RECORD_KEYS)


def test_status_table_is_core_statuses():
    assert table("Statuses") == list(CORE_STATUSES)


def test_core_writes_no_status_outside_the_vocabulary():
    """Every literal `status="…"` core and the flow write is in CORE_STATUSES (a provider's words aside)."""
    root = Path(__file__).parents[2] / "lcai_core"
    written = set()
    for f in root.rglob("*.py"):
        written |= set(re.findall(r'(?:registry|reg)\.update\([^)]*\bstatus="([^"]+)"', f.read_text()))
        written |= set(re.findall(r'rec\["status"\] = "([^"]+)"', f.read_text()))
    assert written and written <= set(CORE_STATUSES), written - set(CORE_STATUSES)
