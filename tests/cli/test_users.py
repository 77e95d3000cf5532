"""`tidings user add/passwd/remove/list`: the users file it writes is the one the broker reads."""

from __future__ import annotations

import io
import json
import os
import pathlib
import stat

import pytest

from tidings.cli.main import main
from tidings.errors import Unauthorized
from tidings.server.auth import Authenticator


def run(capsys, monkeypatch, *args: str, stdin: str = ""):
    monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    capsys.readouterr()
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_add_passwd_remove_list(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("TIDINGS_PASSWORD", raising=False)
    path = str(tmp_path / "users.toml")
    code, out, _ = run(
        capsys, monkeypatch, "user", "add", "billing", "--users-file", path,
        "--password-stdin", "--subscribe", "orders.*", "--publish", "payments.*",
        stdin="correct horse battery\n",
    )  # fmt: skip
    assert code == 0 and "added user 'billing'" in out and "SIGHUP" in out
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600  # secrets: the owner's only
    code, out, _ = run(capsys, monkeypatch, "--json", "user", "add", "ops", "--users-file",
                       path, "--token", "--admin", ">")  # fmt: skip
    token = json.loads(out)["token"]
    assert code == 0 and token

    auth = Authenticator.from_file(path)
    billing = auth.verify("billing", "correct horse battery")
    assert billing.may("subscribe", "orders.eu") and billing.may("publish", "payments.x")
    assert not billing.may("publish", "orders.eu")
    assert auth.verify(None, token).name == "ops"
    written = pathlib.Path(path).read_text()
    assert "correct horse" not in written and token not in written

    code, out, _ = run(capsys, monkeypatch, "--json", "user", "list", "--users-file", path)
    assert code == 0
    assert [(u["name"], u["secret"]) for u in json.loads(out)] == [
        ("billing", "password"), ("ops", "token"),
    ]  # fmt: skip

    code, _, _ = run(capsys, monkeypatch, "user", "passwd", "billing", "--users-file", path,
                     "--password-stdin", stdin="another long secret\n")  # fmt: skip
    assert code == 0
    auth = Authenticator.from_file(path)
    assert auth.verify("billing", "another long secret").may("subscribe", "orders.eu")
    with pytest.raises(Unauthorized):
        auth.verify("billing", "correct horse battery")

    code, out, _ = run(capsys, monkeypatch, "user", "remove", "ops", "--users-file", path)
    assert code == 0 and "removed user 'ops'" in out
    assert list(Authenticator.from_file(path).users) == ["billing"]


def test_user_errors_say_what_to_do(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("TIDINGS_PASSWORD", raising=False)
    path = str(tmp_path / "users.toml")
    code, _, err = run(capsys, monkeypatch, "user", "remove", "x", "--users-file", path)
    assert code == 4 and "does not exist" in err
    code, _, err = run(capsys, monkeypatch, "user", "add", "x", "--users-file", path,
                       "--password-stdin", stdin="short\n")  # fmt: skip
    assert code == 2 and "at least 8 characters" in err and not os.path.exists(path)
    code, _, err = run(capsys, monkeypatch, "user", "add", "x", "--users-file", path)
    assert code == 2 and "--password-stdin" in err  # stdin is no terminal: no prompt
    assert run(capsys, monkeypatch, "user", "add", "x", "--users-file", path, "--token")[0] == 0
    code, _, err = run(capsys, monkeypatch, "user", "add", "x", "--users-file", path, "--token")
    assert code == 4 and "already" in err and "passwd" in err
    code, _, err = run(capsys, monkeypatch, "user", "passwd", "nobody", "--users-file", path,
                       "--token")  # fmt: skip
    assert code == 4 and "no user 'nobody'" in err
    code, _, err = run(capsys, monkeypatch, "user", "add", "-x", "--users-file", path, "--token")
    assert code == 2
    monkeypatch.setenv("TIDINGS_USERS_FILE", path)  # the broker's variable names the file
    monkeypatch.setenv("TIDINGS_PASSWORD", "from the environment")
    assert run(capsys, monkeypatch, "user", "add", "envy")[0] == 0
    assert Authenticator.from_file(path).verify("envy", "from the environment").name == "envy"
