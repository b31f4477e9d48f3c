"""An id prefix shorter than 4 characters, or one matching more than one deployment, is refused with the
candidates (issue 21 #4: `lcai destroy n --yes` destroyed a deployment)."""

from lcai_core.cli import main
from lcai_core.registry import Registry


def test_short_or_ambiguous_prefixes_are_refused_naming_the_candidates(lcai_config_dir, capsys):
    reg = Registry()
    for dep in ("nab00001", "nab00002", "zz000001"):
        reg.update(dep, create=True, provider="nowhere", app="web", env="default", status="running")
    for key in ("n", "nab", "z", "zz0"):
        assert main(["destroy", key, "--yes"]) == 2
        err = capsys.readouterr().err
        assert "at least 4 characters" in err, err
        assert ("matches 2 deployments: nab00001, nab00002" in err) if key.startswith("n") else \
            ("too short" in err and "zz000001" in err), err
    assert main(["destroy", "nab0", "--yes"]) == 2
    err = capsys.readouterr().err
    assert "matches 2 deployments: nab00001, nab00002" in err
    assert set(Registry().all()) == {"nab00001", "nab00002", "zz000001"}, "nothing was destroyed"
    assert Registry().find("zz00")["deployment_id"] == "zz000001"
