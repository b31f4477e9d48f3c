"""What anyone with write access to the cloud account can set (instance labels, tags, adopted by `sync`) never
acts on the terminal through `status`; `--region`/`--type` never reach an API path unchecked (issue 21 #11)."""

from lcai_core.cli import main
from lcai_core.registry import Registry
from lcai_core.ui import printable


def test_printable_neutralises_terminal_sequences():
    assert printable("web\x1b]0;owned\x07\r\x9b2J\u202eabc") == "web\\x1b]0;owned\\x07\\x0d\\x9b2J\\u202eabc"
    assert printable("llm-api (prod)") == "llm-api (prod)"


def test_status_prints_no_escape_from_a_record(lcai_config_dir, capsys):
    Registry().update("esc00001", create=True, provider="nowhere", app="evil\x1b[2J\x1b]0;pwned\x07", env="prod",
                      status="running", label="lbl\x1b[31m")
    main(["status", "--all"])
    out, err = capsys.readouterr()
    assert "\x1b" not in out and "\x07" not in out and "evil\\x1b[2J" in out
    main(["status", "esc00001"])
    out, err = capsys.readouterr()
    assert "\x1b" not in out and "lbl\\x1b[31m" in out


def test_region_and_type_flags_are_checked_before_any_api_call(tmp_path, lcai_config_dir, capsys):
    d = tmp_path / "svc"
    d.mkdir()
    (d / "deploy.yml").write_text("name: web\ndeploy:\n  linode:\n    container:\n      image: nginx:1.27\n"
                                  "      internal_port: 80\n      external_port: 8080\n")
    for flag, value in (("--region", "../profile"), ("--type", "g6?x=1"), ("--region", "us-ord#")):
        assert main(["plan", "-d", str(d), flag, value]) == 2
        err = capsys.readouterr().err
        assert f"{flag} {value!r}: not a Linode id" in err, err


def test_an_error_naming_a_path_with_a_terminal_sequence_prints_it_escaped(tmp_path, lcai_config_dir, capsys):
    """error:/warning:/hint: lines carry paths, API reasons and console lines: their control characters are
    escaped too (a hint's own line breaks stay)."""
    d = tmp_path / "x\x1b]0;owned\x07\x1b[2J"
    d.mkdir()
    assert main(["plan", "-d", str(d)]) == 2
    err = capsys.readouterr().err
    assert "\x1b" not in err and "\x07" not in err and "x\\x1b]0;owned\\x07\\x1b[2J" in err, err
    from lcai_core import ui

    ui.error("one\x1b[31m", hint="last lines:\n  a\x1b[2J\n  b")
    err = capsys.readouterr().err
    assert err == "error: one\\x1b[31m\nhint: last lines:\n  a\\x1b[2J\n  b\n", repr(err)
