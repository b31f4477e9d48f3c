"""A symbolic link in a template folder that points outside it is never copied into a deployment directory or
the user's templates (issue 21 #9: `README.md -> ~/.ssh/id_…` landed as a plain, not ignored file)."""

from lcai_core.cli import main

TEMPLATE = ("name: linked\ndeploy:\n  linode:\n    container:\n      image: nginx:1.27\n      internal_port: 80\n"
            "      external_port: 8080\n")


def _folder(tmp_path):
    secret = tmp_path / "home" / ".ssh" / "id_test"
    secret.parent.mkdir(parents=True)
    secret.write_text("-----BEGIN OPENSSH PRIVATE KEY-----\nnot really\n")
    tpl = tmp_path / "linked"
    tpl.mkdir()
    (tpl / "template.yml").write_text(TEMPLATE)
    (tpl / "README.md").symlink_to(secret)
    return tpl, secret


def test_init_refuses_a_readme_linked_outside(tmp_path, lcai_config_dir, capsys):
    tpl, secret = _folder(tmp_path)
    d = tmp_path / "deploy"
    assert main(["init", str(tpl), "-d", str(d)]) == 2
    err = capsys.readouterr().err
    assert "README.md is a symbolic link" in err and "outside the template folder" in err, err
    assert not (d / "README.md").exists() and not (d / "deploy.yml").exists()


def test_templates_install_refuses_it_too(tmp_path, lcai_config_dir, capsys):
    tpl, secret = _folder(tmp_path)
    assert main(["templates", "install", str(tpl)]) == 2
    assert "outside the template folder" in capsys.readouterr().err
    assert not list((lcai_config_dir).rglob("id_test")) and not any(
        "not really" in p.read_text() for p in lcai_config_dir.rglob("README.md"))


def test_a_link_inside_the_folder_is_fine(tmp_path, lcai_config_dir, capsys):
    tpl = tmp_path / "linked"
    (tpl / "docs").mkdir(parents=True)
    (tpl / "template.yml").write_text(TEMPLATE)
    (tpl / "docs" / "guide.md").write_text("# guide\n")
    (tpl / "README.md").symlink_to("docs/guide.md")
    d = tmp_path / "deploy"
    assert main(["init", str(tpl), "-d", str(d)]) == 0, capsys.readouterr().err
    assert (d / "README.md").read_text() == "# guide\n" and not (d / "README.md").is_symlink()


def test_install_ignores_a_linked_env_it_does_not_copy(tmp_path, lcai_config_dir, capsys):
    """A template folder that is also a working directory (`.env -> ../shared.env`, a .git) installs: the copy
    leaves them out, so where they point is no matter."""
    shared = tmp_path / "shared.env"
    shared.write_text("API_KEY=s3cr3t\n")
    tpl = tmp_path / "linked"
    (tpl / ".git").mkdir(parents=True)
    (tpl / "template.yml").write_text(TEMPLATE)
    (tpl / ".env").symlink_to(shared)
    (tpl / ".git" / "hooks").symlink_to(tmp_path)
    assert main(["templates", "install", str(tpl)]) == 0, capsys.readouterr().err
    installed = next(p for p in lcai_config_dir.rglob("template.yml") if "linked" in str(p)).parent
    assert not (installed / ".env").exists() and not (installed / ".git").exists()


def test_a_link_inside_to_what_a_copy_leaves_out_is_refused(tmp_path, lcai_config_dir, capsys):
    """`README.md -> .env` stays inside the folder but would land the secrets as a plain README.md."""
    tpl = tmp_path / "linked"
    tpl.mkdir()
    (tpl / "template.yml").write_text(TEMPLATE)
    (tpl / ".env").write_text("API_KEY=s3cr3t\n")
    (tpl / "README.md").symlink_to(".env")
    d = tmp_path / "deploy"
    assert main(["init", str(tpl), "-d", str(d)]) == 2
    err = capsys.readouterr().err
    assert "README.md is a symbolic link to .env" in err and "leaves it out" in err, err
    assert not d.exists() or not any("s3cr3t" in p.read_text() for p in d.iterdir() if p.is_file())
    assert main(["templates", "install", str(tpl)]) == 2
    assert "README.md is a symbolic link to .env" in capsys.readouterr().err
    assert not any("s3cr3t" in p.read_text() for p in lcai_config_dir.rglob("*") if p.is_file())
