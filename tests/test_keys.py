# nix/keys.json is the one description of a bundle's keys, which both
# nix/bundlefs.nix and the C spec checker take their rules from; the cases
# of tests/data/keycases.json (values of each key, to be accepted or
# refused) hold both to the same rules:
# - bundlefs.nix accepts and refuses each case as it says, at evaluation,
#   naming the bundle and the key;
# - bundlectl check does the same (marked c_checker: it runs the built
#   bundlectl);
# - bundlefs.nix will not evaluate when keys.json names a type or a check
#   it does not implement, so the two cannot drift apart in silence.
import json
import os
import shutil

import pytest

from conftest import BUNDLECTL, ROOT, STORE, run
from nixfix import NIX_OPTIONS

KEYS = os.path.join(ROOT, "nix", "keys.json")
CASES = os.path.join(ROOT, "tests", "data", "keycases.json")
NIXFILE = os.path.join(ROOT, "nix", "bundlefs.nix")
MISSING = STORE + "/" + "0" * 32 + "-bundlefs-keycases-missing"

DOC = json.load(open(CASES))
NAME = DOC["name"]
ALL = [(key, i, case) for key, cases in DOC["cases"].items() for i, case in enumerate(cases)]


@pytest.fixture(scope="module")
def fill(tmp_path_factory, nix, tiny):
    """Fills in the placeholders of a case's value (in strings and in
    attribute names alike)."""
    closure = tmp_path_factory.mktemp("keycases") / "closure"
    closure.write_text("".join(p + "\n" for p in nix.closure(tiny)))
    subst = {"@STORE@": STORE, "@PATH@": tiny, "@CLOSURE@": str(closure), "@MISSING@": MISSING}
    assert set(subst) == set(DOC["placeholders"])
    assert not os.path.lexists(MISSING)

    def f(v):
        if isinstance(v, str):
            for k, s in subst.items():
                v = v.replace(k, s)
            return v
        if isinstance(v, list):
            return [f(x) for x in v]
        if isinstance(v, dict):
            return {f(k): f(x) for k, x in v.items()}
        return v
    return f


def bundle(fill, key, case):
    b = fill(DOC["bundle"])
    b[key] = fill(case["value"])
    return b


def test_every_key_has_cases_both_ways():
    keys = [k["name"] for k in json.load(open(KEYS))["keys"]]
    assert list(DOC["cases"]) == keys
    for key, cases in DOC["cases"].items():
        assert any(c["ok"] for c in cases), key
        assert any(not c["ok"] for c in cases), key
        for c in cases:
            assert set(c) <= {"value", "ok", "nix"}, (key, c)


def test_bundlefs_nix_accepts_and_refuses_each_case(fill, tmp_path):
    # All at once: one evaluation of bundlefs.nix's `problems` per case.
    bundles = [bundle(fill, key, case) for key, _, case in ALL]
    f = tmp_path / "bundles.json"
    f.write_text(json.dumps(bundles))
    expr = ('let bfs = import %s { }; in map (b: bfs.problems { "%s" = b; }) '
            '(builtins.fromJSON (builtins.readFile %s))' % (NIXFILE, NAME, f))
    p = run(["nix-instantiate", *NIX_OPTIONS, "--eval", "--strict", "--json", "-E", expr],
            check=False)
    assert p.returncode == 0, p.stderr.decode()[-3000:]
    results = json.loads(p.stdout)
    wrong = []
    for (key, i, case), problems in zip(ALL, results):
        ok = case.get("nix", case["ok"])
        if (problems == []) != ok:
            wrong.append((key, i, case["value"], problems))
        # A refusal names the bundle and the key, and nothing else.
        for m in problems:
            if not m.startswith("bundle `%s': %s: " % (NAME, key)):
                wrong.append((key, i, case["value"], m))
    assert not wrong, "\n".join(map(repr, wrong))


@pytest.mark.c_checker
@pytest.mark.parametrize("key,i,case", ALL, ids=["%s-%d" % (k, i) for k, i, _ in ALL])
def test_bundlectl_check_accepts_and_refuses_each_case(fill, tmp_path, key, i, case):
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps({NAME: bundle(fill, key, case)}))
    p = run([BUNDLECTL, "check", str(spec)], check=False)
    err = p.stderr.decode()
    if case["ok"]:
        assert p.returncode == 0, err
    else:
        assert p.returncode == 2, err
        # FILE:LINE:COL: bundle "k": KEY: message
        assert 'bundle "%s": %s: ' % (NAME, key) in err, err


def copy_nix(tmp_path, change):
    """bundlefs.nix beside a keys.json changed by `change`."""
    d = tmp_path / "nix"
    d.mkdir()
    shutil.copy(NIXFILE, d)
    keys = json.load(open(KEYS))
    change(keys["keys"])
    (d / "keys.json").write_text(json.dumps(keys))
    return str(d / "bundlefs.nix")


CALLS = [
    '(import %s { }).problems { b = { args = [ "%s/bin/sh" ]; }; }',
    '((import %s { }).bundles { b = { args = [ "%s/bin/sh" ]; }; }).outPath',
    '((import %s { }).buildContainer { args = [ "%s/bin/sh" ]; }).outPath',
]


def evaluate(call, nixfile, tiny):
    return run(["nix-instantiate", *NIX_OPTIONS, "--eval", "--strict", "--json", "-E",
                call % (nixfile, tiny)], check=False)


@pytest.mark.parametrize("change,message", [
    (lambda ks: ks.append(dict(ks[1], name="extra", check="nosuch")),
     "bundlefs.nix: keys.json: key `extra': no check named `nosuch' here"),
    (lambda ks: ks.append(dict(ks[1], name="extra", type="number")),
     "bundlefs.nix: keys.json: key `extra': no type named `number' here"),
    (lambda ks: [k.pop("values") for k in ks if k["name"] == "data"],
     "bundlefs.nix: keys.json: key `data': an enum without values"),
], ids=["check", "type", "enum"])
def test_keys_json_and_bundlefs_nix_cannot_drift_apart(tmp_path, tiny, change, message):
    # The bundle does not use the key: the table is wrong whatever the use.
    nixfile = copy_nix(tmp_path, change)
    for call in CALLS:
        p = evaluate(call, nixfile, tiny)
        assert p.returncode != 0, call
        assert message in p.stderr.decode(), p.stderr.decode()


def test_a_key_added_to_keys_json_is_known_to_bundlefs_nix(tmp_path, tiny):
    # (the control of the test above: a key with a known type and check
    # is taken, and checked)
    nixfile = copy_nix(tmp_path, lambda ks: ks.append(dict(ks[1], name="extra")))
    for call in CALLS:
        p = evaluate(call, nixfile, tiny)
        assert p.returncode == 0, p.stderr.decode()
    assert json.loads(evaluate(CALLS[0], nixfile, tiny).stdout) == []
    expr = ('(import %s { }).problems { b = { args = [ "%s/bin/sh" ]; extra = "no"; }; }'
            % (nixfile, tiny))
    p = run(["nix-instantiate", *NIX_OPTIONS, "--eval", "--strict", "--json", "-E", expr])
    assert json.loads(p.stdout) == ["bundle `b': extra: expected true or false, not `no'"]
