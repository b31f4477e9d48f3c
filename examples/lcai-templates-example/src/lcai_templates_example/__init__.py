"""An lcai template pack: every sub-folder of ``templates/`` with a template.yml is one template."""

from pathlib import Path

from lcai_core.api import DirectorySource, hookimpl


@hookimpl
def register_template_sources(register):
    # "pack" ranks between user templates (which win) and the bundled ones (which lose)
    register(DirectorySource("pack", Path(__file__).parent / "templates"))
