"""``tidings asyncapi --check-compat``: breaking changes in the registry vocabulary."""

from __future__ import annotations

import json

from tidings.cli.main import main
from tidings.discovery.compat import check
from tidings.service.asyncapi import document

from . import compat_v1, compat_v2


def run(capsys, *args: str) -> tuple[int, str]:
    capsys.readouterr()
    code = main(list(args))
    return code, capsys.readouterr().out


def test_a_new_required_field_breaks_backward_and_an_optional_one_breaks_nothing():
    old, new = document(compat_v1.svc), document(compat_v2.svc)
    backward = check(old, new, "BACKWARD")
    assert [f.problem for f in backward] == [
        "$.region: the reader requires it, the writer does not send it"
    ]
    assert "Quote" in backward[0].where
    forward = check(old, new, "FORWARD")  # old readers ignore region and discount
    assert forward == []
    assert check(old, new, "FULL") == backward
    assert check(old, old, "FULL") == []


def test_removed_operations_and_narrowed_types_break():
    old = document(compat_v1.svc)
    gone = json.loads(json.dumps(old))
    gone["operations"] = {}
    assert [f.problem for f in check(old, gone)] == ["the operation is gone"]
    narrowed = json.loads(json.dumps(old))
    narrowed["components"]["schemas"]["Quote"]["properties"]["quantity"] = {"type": "string"}
    problems = [f.problem for f in check(old, narrowed, "FULL")]
    assert "$.quantity: type ['integer'] cannot be read as ['string']" in problems


def test_the_cli_exits_1_on_breaking_changes_for_ci(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path.parent)
    old = tmp_path / "asyncapi-1.json"
    old.write_text(json.dumps(document(compat_v1.svc)))
    target = "tests.discovery.compat_v2:svc"
    monkeypatch.syspath_prepend(str(__import__("pathlib").Path(__file__).parents[2]))
    code, out = run(capsys, "asyncapi", target, "--check-compat", str(old), "--json")
    assert code == 1
    report = json.loads(out)
    assert report["mode"] == "BACKWARD" and not report["compatible"]
    code, out = run(capsys, "asyncapi", target, "--check-compat", str(old), "--compat", "FORWARD")
    assert code == 0 and "compatible (FORWARD)" in out
    code, _ = run(capsys, "asyncapi", target, "--check-compat", str(old), "--compat", "SIDEWAYS")
    assert code == 2
