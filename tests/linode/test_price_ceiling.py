"""A price ceiling (`deploy --max-hourly`, `deploy.linode.max_hourly`) refuses a create that costs more per hour,
before anything is created (issue 23 #5)."""

from lcai_core.registry import Registry


def test_the_flag_refuses_a_plan_over_the_ceiling(sim, svc, lcai):
    code, out, err = lcai("deploy", "-d", svc, "--yes", "--max-hourly", "0.01")  # g6-standard-2: $0.036/h
    assert code == 2 and "costs $0.036/h, more than --max-hourly $0.01/h" in err, err
    assert sim.state()["instances"] == [] and sim.state()["firewalls"] == [] and Registry().all() == {}
    assert lcai("deploy", "-d", svc, "--yes", "--max-hourly", "0.05")[0] == 0


def test_the_template_field_and_replicas_total(sim, svc, lcai):
    text = (svc / "deploy.yml").read_text()
    (svc / "deploy.yml").write_text(text.replace("    tags: [team-ml]\n",
                                                 "    tags: [team-ml]\n    replicas: 3\n    max_hourly: 0.1\n"))
    code, out, err = lcai("deploy", "-d", svc, "--yes")  # 3 x 0.036 + a NodeBalancer: over 0.1
    assert code == 2 and "more than deploy.linode.max_hourly $0.1/h" in err, err
    assert sim.state()["instances"] == [] and Registry().all() == {}
    assert lcai("deploy", "-d", svc, "--yes", "--max-hourly", "0.2")[0] == 0, "the flag overrides the template"
