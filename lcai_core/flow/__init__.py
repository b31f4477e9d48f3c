"""The deploy flow as a library, the same for every front end (the CLI, the TUI, linode-cli's `build`):

    plan = plan_deploy(host, registry, DeployOptions(directory=...))   # decide; nothing changes
    ...show plan.lines, ask plan.question...
    outcome = apply(plan, events, registry)                              # do it, tracked whatever happens

``lcai plan`` runs the same plan step offline (``preview``); `lcai scale` is ``plan_scale``/``apply_scale``.
The flow imports no click: what it says goes through ``Events``.
"""

from .apply import Outcome, apply, tracked
from .events import Events, Quiet
from .plan import DeployOptions, DeployPlan, Kind, Preview, make_spec, plan_deploy, preview
from .scale import ScalePlan, apply_scale, plan_scale

__all__ = ["DeployOptions", "DeployPlan", "Events", "Kind", "Outcome", "Preview", "Quiet", "ScalePlan", "apply",
           "apply_scale", "make_spec", "plan_deploy", "plan_scale", "preview", "tracked"]
