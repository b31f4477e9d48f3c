"""The Linode API v4 simulator (``lcai-linode-sim``): simulator.py, with request validation (sim_validate.py), the
booted machines' apps (sim_health.py) and NodeBalancers (sim_nodebalancers.py)."""
