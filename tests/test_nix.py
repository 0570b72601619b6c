# nix/bundlefs.nix: buildContainer's interface evaluated and built by the
# real Nix (Debian's nix-bin, offline, builtins only). The spec it builds
# mounts; its config.json is the one buildContainer's own expression
# (tests/data/buildcontainer.nix) gives; its rootfs is exactly the closure
# (nix-store -qR) taken from the closure file written at build time; runc
# runs it; the store path is small and keeps the closure alive; bad
# arguments stop the evaluation with a clear message and build nothing.
import json
import os
import subprocess

import pytest

from conftest import ROOT, STORE, bundlectl, run
from nixfix import NIX_OPTIONS
from test_config import nix_config

NIXFILE = os.path.join(ROOT, "nix", "bundlefs.nix")


def nix_build(tmp_path, expr, out="result"):
    link = tmp_path / out
    p = run(["nix-build", *NIX_OPTIONS, "-o", str(link), "-E", expr], check=False)
    assert p.returncode == 0, p.stderr.decode()[-3000:]
    return str(link)


def test_build_container_mounts_as_buildcontainer_would(tmp_path, mount, nix, app, runc):
    expr = ('(import %s {}).buildContainer { args = [ "%s/bin/app" "a b" ]; readonly = true; '
            'compat = "buildcontainer"; }' % (NIXFILE, app))
    result = nix_build(tmp_path, expr)
    assert sorted(os.listdir(result)) == ["app.closure", "spec.json"]
    spec = os.path.join(result, "spec.json")
    doc = json.loads(open(spec).read())
    assert list(doc) == ["app"]
    assert doc["app"]["closure"] == os.path.realpath(result) + "/app.closure"
    # The closure, from exportReferencesGraph: exactly Nix's.
    closure = nix.closure(app)
    assert sorted(open(doc["app"]["closure"]).read().split()) == sorted(closure)

    m = mount(spec, "--db", "none")
    with open(m.path("app", "config.json"), "rb") as f:
        assert f.read() == nix_config(tmp_path, {"args": [app + "/bin/app", "a b"],
                                                 "readonly": True})
    store = m.path("app", "rootfs") + STORE
    assert sorted(os.listdir(store)) == sorted(os.path.basename(p) for p in closure)
    out = runc.run(m.path("app"))
    assert out.returncode == 0, out.stderr
    assert out.stdout == b"app: starting\nHello from bundlefs!\nargv[1]=a b\n"


def test_bundles_share_one_spec_whose_gc_root_keeps_every_closure(tmp_path, mount, nix, app,
                                                                   tiny):
    real = nix.build("realistic")
    expr = ('(import %s {}).bundles { a = { args = [ "%s/bin/app" ]; readonly = true; }; '
            'a-1 = { args = [ "%s/bin/bash" "-c" "true" ]; env = [ "LANG=C" ]; '
            'mounts = { "/data" = { type = "bind"; source = "/srv"; options = [ "rbind" "ro" ]; }; }; '
            'paths = [ "%s" ]; readonly = true; }; }' % (NIXFILE, app, real, tiny))
    result = nix_build(tmp_path, expr)
    spec = os.path.join(result, "spec.json")
    # Every path of every closure is a requisite of the spec: a GC root
    # on it (the -o link) keeps them all.
    requisites = set(run(["nix-store", "-qR", result]).stdout.decode().split())
    want = set(nix.closure(app)) | set(nix.closure(real)) | set(nix.closure(tiny))
    assert want <= requisites
    roots = run(["nix-store", "--gc", "--print-roots"]).stdout.decode()
    assert os.path.realpath(result) in roots
    # Small, whatever the closure's size.
    size = sum(os.path.getsize(os.path.join(result, f)) for f in os.listdir(result))
    assert size < 1 << 20
    m = mount(spec, "--db", "none")
    assert sorted(os.listdir(m.mountpoint)) == ["a", "a-1"]
    # (A name that is a prefix of another's gets its own closure only.)
    assert sorted(os.listdir(m.path("a", "rootfs") + STORE)) == sorted(
        os.path.basename(p) for p in nix.closure(app))
    store = m.path("a-1", "rootfs") + STORE
    assert sorted(os.listdir(store)) == sorted(
        os.path.basename(p) for p in set(nix.closure(real)) | set(nix.closure(tiny)))
    config = json.loads(open(m.path("a-1", "config.json")).read())
    assert config["process"]["env"] == ["LANG=C"]
    assert {"destination": "/data", "type": "bind", "source": "/srv",
            "options": ["rbind", "ro"]} in config["mounts"]
    assert os.path.isdir(m.path("a-1", "rootfs", "data"))
    assert bundlectl("check", spec).returncode == 0


BAD = [
    ("buildContainer { }", "bundle `bundle': args is required"),
    ("buildContainer { args = [ \"/usr/bin/env\" ]; }",
     "args: the command `/usr/bin/env' is not in the Nix store (/nix/store)"),
    ("buildContainer { args = [ \"{app}/bin/app\" ]; tag = 1; }",
     "bundle `app': unknown argument `tag' (known: args, mounts, os, arch, readonly, paths"),
    ("buildContainer { args = \"{app}/bin/app\"; }", "args must be a non-empty list of strings"),
    ("buildContainer { args = [ \"{app}/bin/app\" ]; paths = [ \"/etc\" ]; }",
     "paths: `/etc' is not in the Nix store"),
    ("buildContainer { args = [ \"{app}/bin/app\" ]; readonly = \"yes\"; }",
     "readonly must be true or false"),
    ("bundles { \"a/b\" = { args = [ \"{app}/bin/app\" ]; }; }",
     "bundle `a/b': a bundle name is 1 to 255 of"),
    ("bundles { }", "bundles: no bundle given"),
]


@pytest.mark.parametrize("call,message", BAD, ids=[str(i) for i in range(len(BAD))])
def test_bad_arguments_fail_at_evaluation(tmp_path, app, call, message):
    expr = "(import %s {}).%s" % (NIXFILE, call.replace("{app}", app))
    p = run(["nix-build", *NIX_OPTIONS, "-o", str(tmp_path / "result"), "-E", expr], check=False)
    assert p.returncode != 0
    err = p.stderr.decode()
    assert ("error: bundlefs.nix: " in err) and (message in err), err
    assert not os.path.lexists(tmp_path / "result")
    assert "building '" not in err
