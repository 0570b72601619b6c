# The Nix side (docs/nix.md), evaluated and built by the real Nix (Debian's
# nix-bin 2.8, offline, no nixpkgs):
# - nix/bundlefs.nix: the spec it builds is one file that mounts; its
#   config.json is the one buildContainer's own expression
#   (tests/data/buildcontainer.nix) gives; its rootfs is exactly the
#   closure (nix-store -qR) taken from the closure files written at build
#   time; runc runs it; the spec keeps every closure alive; bad arguments
#   stop the evaluation naming bundle and key, and build nothing; it builds
#   in Nix's sandbox with a shell that has no mkdir, as NixOS's; given
#   bundlectl, the build checks the spec with it.
# - nix/package.nix and nix/module.nix, against the stubs of nixpkgs and
#   of the module system in tests/fixtures/nixstubs.nix: the package's
#   source and wrapper; the module's services run the shipped unit's
#   command with its settings, and that command mounts.
# (tests/test_keys.py checks every key's rules; tests/test_install.py the
# installed copies.)
import glob
import json
import os
import re
import shlex
import uuid

import pytest

from conftest import BUNDLECTL, BUNDLEFS, ROOT, STORE, Mount, bundlectl, run
from nixfix import NIX_OPTIONS
from test_config import nix_config

NIXDIR = os.path.join(ROOT, "nix")
NIXFILE = os.path.join(NIXDIR, "bundlefs.nix")
STUBS = os.path.join(ROOT, "tests", "fixtures", "nixstubs.nix")
UNIT = os.path.join(ROOT, "contrib", "bundlefs@.service.in")


def nix_build(tmp_path, expr, out="result", options=()):
    link = tmp_path / out
    p = run(["nix-build", *NIX_OPTIONS, *options, "-o", str(link), "-E", expr], check=False)
    assert p.returncode == 0, p.stderr.decode()[-3000:]
    return str(link)


def nix_eval(expr):
    p = run(["nix-instantiate", *NIX_OPTIONS, "--eval", "--strict", "--json", "-E", expr],
            check=False)
    assert p.returncode == 0, p.stderr.decode()[-3000:]
    return json.loads(p.stdout)


def token():
    return uuid.uuid4().hex[:12]


def made_with(tok):
    """Store entries (derivations, outputs) whose name holds tok."""
    return glob.glob("%s/*%s*" % (STORE, tok))


def test_build_container_mounts_as_buildcontainer_would(tmp_path, mount, nix, app, runc):
    expr = ('(import %s {}).buildContainer { args = [ "%s/bin/app" "a b" ]; readonly = true; '
            'compat = "buildcontainer"; }' % (NIXFILE, app))
    result = nix_build(tmp_path, expr)
    # The result is the spec itself, one file: `bundlefs MNT result`.
    spec = os.path.realpath(result)
    assert os.path.isfile(spec) and spec.endswith("-app-bundlefs-spec.json")
    doc = json.loads(open(result).read())
    assert list(doc) == ["app"]
    # Its closure, a file of its own that the spec refers to, from
    # exportReferencesGraph: exactly Nix's.
    closure_file = doc["app"]["closure"]
    assert os.path.isfile(closure_file) and closure_file.endswith("-app-closure")
    assert closure_file in nix.references(spec)
    closure = nix.closure(app)
    assert sorted(open(closure_file).read().split()) == sorted(closure)

    m = mount(result, "--db", "none")
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
    # Every path of every closure is a requisite of the spec: a GC root
    # on it (the -o link) keeps them all.
    requisites = set(run(["nix-store", "-qR", result]).stdout.decode().split())
    want = set(nix.closure(app)) | set(nix.closure(real)) | set(nix.closure(tiny))
    assert want <= requisites
    roots = run(["nix-store", "--gc", "--print-roots"]).stdout.decode()
    assert os.path.realpath(result) in roots
    # Small, whatever the closures' size: the spec and its closure files.
    doc = json.loads(open(result).read())
    files = [result] + [doc[n]["closure"] for n in ("a", "a-1")]
    assert sum(os.path.getsize(f) for f in files) < 1 << 20
    m = mount(result, "--db", "none")
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
    assert bundlectl("check", result).returncode == 0


# (the bundle's arguments after args, the key named, what is said of it):
# buildContainer { name = "t-TOKEN"; args = [ APP/bin/app ]; ARGUMENTS }
# must fail with `bundlefs.nix: bundle `t-TOKEN': KEY: MESSAGE...'.
MISSING = STORE + "/" + "0" * 32 + "-missing-TOKEN"
BAD = [
    ('env = [ "A" ];', "env", "expected NAME=VALUE (NAME of letters, digits and _"),
    ('env = "A=1";', "env", "expected a list of strings, not a string"),
    ('env = [ "A=1" "A=2" ];', "env", "A is set twice"),
    ('cwd = "data";', "cwd", "`data' is not an absolute path"),
    ('user = "nobody";', "user", "expected UID:GID or UID:GID,GID,... "),
    ('hostname = "-web";', "hostname", "may not start with '-' or '.'"),
    ('hostname = "web_1";', "hostname", "expected letters, digits, '-' and '.'"),
    ('data = "nfs";', "data", "expected native, fuse or bind, not `nfs'"),
    ('compat = "docker";', "compat", "expected oci or buildcontainer, not `docker'"),
    ('terminal = "yes";', "terminal", "expected true or false, not `yes'"),
    ('readonly = "yes";', "readonly", "expected true or false, not `yes'"),
    ("os = 1;", "os", "expected a string, not an integer"),
    ('arch = "x 86";', "arch", "`x 86' contains whitespace or control characters"),
    ('mounts."/data" = { source = "/srv"; };', "mounts", "`/data': type is required"),
    ('mounts.data = { type = "tmpfs"; source = "tmpfs"; };', "mounts",
     "`data': `data' is not an absolute path"),
    ('mounts."/data" = { type = "bind"; source = "/srv"; options = "ro"; };', "mounts",
     "`/data': options: expected null or a list of strings, not a string"),
    ('mounts."/nix" = { type = "tmpfs"; source = "tmpfs"; };', "mounts",
     "`/nix': covers the store directory /nix/store"),
    ('mounts."/nix/store/x" = { type = "tmpfs"; source = "tmpfs"; };', "mounts",
     "`/nix/store/x': is inside the store directory /nix/store"),
    ('mounts = [ ];', "mounts", "expected an attribute set of destination to"),
    ('paths = [ "%s" ];' % MISSING, "paths", "`%s' is not in the store" % MISSING),
    ('paths = [ "/etc" ];', "paths", "`/etc' is not a store path"),
    ('args = [ "%s/bin/sh" ];' % MISSING, "args", "`%s' is not in the store" % MISSING),
    ('args = [ "{app}/bin/app" "%s/x" ];' % MISSING, "args", "`%s' is not in the store" % MISSING),
    ('args = "{app}/bin/app";', "args", "expected a list of strings, not a string"),
    ("args = [ ];", "args", "expected the program and its arguments, not an empty list"),
    ('closure = "closure.txt";', "closure", "expected one absolute file name"),
    ('capabilities.add = [ "CAP_FOO" ];', "capabilities", "add: `CAP_FOO' is not a Linux capability"),
    ('capabilities.keep = [ ];', "capabilities", "unknown attribute `keep' (known: add, drop)"),
    ("rlimits.RLIMIT_NOFILE = { soft = 10; hard = 5; };", "rlimits",
     "RLIMIT_NOFILE: soft (10) is above hard (5)"),
    ("rlimits.NOFILE = 5;", "rlimits", "`NOFILE' is not a Linux resource limit"),
    ('noNewPrivileges = "yes";', "noNewPrivileges", "expected true or false, not `yes'"),
    ("annotations.a = 1;", "annotations", "`a': expected a string, not an integer"),
    ('sysctl."net..x" = "1";', "sysctl", "`net..x' is not a sysctl name"),
    ('maskedPaths = [ "proc/kcore" ];', "maskedPaths", "`proc/kcore' is not an absolute path"),
    ('readonlyPaths = "/proc/sys";', "readonlyPaths", "expected a list of strings, not a string"),
    ("rootless = 1;", "rootless", "expected true or false, not an integer"),
    ('oci = "{}";', "oci", "expected an attribute set, not a string"),
    ("tag = 1;", "tag", "unknown key (known: args, readonly, os, arch, mounts, closure, paths"),
]


@pytest.mark.parametrize("arguments,key,message", BAD, ids=[b[1] + "-" + str(i) for i, b in enumerate(BAD)])
def test_bad_arguments_fail_at_evaluation(tmp_path, app, arguments, key, message):
    tok = token()
    arguments = arguments.replace("TOKEN", tok).replace("{app}", app)
    args = "" if arguments.startswith("args") else 'args = [ "%s/bin/app" ];' % app
    expr = '(import %s {}).buildContainer { name = "t-%s"; %s %s }' % (NIXFILE, tok, args, arguments)
    p = run(["nix-build", *NIX_OPTIONS, "-o", str(tmp_path / "result"), "-E", expr], check=False)
    assert p.returncode != 0
    err = p.stderr.decode()
    want = "error: bundlefs.nix: bundle `t-%s': %s: %s" % (tok, key, message.replace("TOKEN", tok))
    assert want in err, err
    # Nothing was built, nor even a derivation written.
    assert "building '" not in err
    assert not os.path.lexists(tmp_path / "result")
    assert made_with(tok) == []


OTHER_BAD = [
    ('buildContainer { name = "t-TOKEN"; }', "bundle `t-TOKEN': args: required: the container's command"),
    ('bundles { "a/b-TOKEN" = { args = [ "{app}/bin/app" ]; }; }',
     "bundle `a/b-TOKEN': a bundle name is 1 to 255 of"),
    ('bundles { ".bundlefs" = { args = [ "{app}/bin/app" ]; }; t-TOKEN = { args = [ "{app}/bin/app" ]; }; }',
     "bundle `.bundlefs': the name .bundlefs is reserved"),
    ('bundles { t-TOKEN = "{app}/bin/app"; }', "bundle `t-TOKEN': a bundle is an attribute set of keys, not a string"),
    ("bundles { }", "bundles: no bundle given"),
]


@pytest.mark.parametrize("call,message", OTHER_BAD, ids=[str(i) for i in range(len(OTHER_BAD))])
def test_bad_bundles_fail_at_evaluation(tmp_path, app, call, message):
    tok = token()
    expr = "(import %s {}).%s" % (NIXFILE, call.replace("TOKEN", tok).replace("{app}", app))
    p = run(["nix-build", *NIX_OPTIONS, "-o", str(tmp_path / "result"), "-E", expr], check=False)
    assert p.returncode != 0
    err = p.stderr.decode()
    assert "error: bundlefs.nix: " + message.replace("TOKEN", tok) in err, err
    assert "building '" not in err and not os.path.lexists(tmp_path / "result")
    assert made_with(tok) == []


def test_every_mistake_is_reported_each_on_its_line(tmp_path, app):
    expr = ('(import %s {}).bundles { a = { args = [ "%s/bin/app" ]; cwd = "x"; user = "u"; }; '
            'b = { args = [ "%s/bin/app" ]; tag = 1; }; }' % (NIXFILE, app, app))
    p = run(["nix-build", *NIX_OPTIONS, "-o", str(tmp_path / "result"), "-E", expr], check=False)
    err = p.stderr.decode()
    lines = re.findall(r"^\s*(?:error: )?bundlefs\.nix: bundle `(\w+)': (\w+): ", err, re.M)
    assert lines == [("a", "cwd"), ("a", "user"), ("b", "tag")], err


def test_derivations_and_strings_with_context_are_inputs(tmp_path, app, tiny):
    # A derivation not built yet, named in args (a string with context)
    # and in paths (the derivation itself): its path cannot be looked at
    # during evaluation, so it is not; it is built first, and its closure
    # is the bundle's.
    tok = token()
    expr = ('let d = derivation { name = "late-%s"; system = builtins.currentSystem; '
            'builder = "/bin/sh"; args = [ "-c" "echo %s/bin/sh > $out" ]; }; in '
            '(import %s {}).buildContainer { name = "c"; args = [ "%s/bin/sh" "${d}" ]; paths = [ d ]; }'
            % (tok, tiny, NIXFILE, tiny))
    result = nix_build(tmp_path, expr)
    doc = json.loads(open(result).read())
    late = made_with("late-" + tok)
    out = [p for p in late if not p.endswith(".drv")]
    assert len(out) == 1 and doc["c"]["args"][1] == out[0] and doc["c"]["paths"] == out
    closure = open(doc["c"]["closure"]).read().split()
    assert out[0] in closure and tiny in closure


def bundlectl_prefix(tmp_path):
    """A prefix whose bin/ has the bundlectl and bundlefs under test."""
    prefix = tmp_path / "prefix"
    (prefix / "bin").mkdir(parents=True)
    os.symlink(BUNDLECTL, prefix / "bin" / "bundlectl")
    os.symlink(BUNDLEFS, prefix / "bin" / "bundlefs")
    return str(prefix)


def test_the_build_checks_the_spec_with_bundlectl(tmp_path, mount, app):
    # Nix cannot tell whether an oci patch keeps config.json valid OCI;
    # given bundlefs, the build asks its bundlectl, and fails when it says
    # no. (Until bundlectl knows `oci`, it says no to the key itself.)
    prefix = bundlectl_prefix(tmp_path)
    good = ('(import %s { bundlefs = "%s"; }).buildContainer { name = "g"; args = [ "%s/bin/app" ]; '
            'env = [ "A=1" ]; }' % (NIXFILE, prefix, app))
    result = nix_build(tmp_path, good)
    m = mount(result, "--db", "none")
    assert json.loads(open(m.path("g", "config.json")).read())["process"]["env"] == ["A=1"]

    tok = token()
    bad = ('(import %s { bundlefs = "%s"; }).buildContainer { name = "b-%s"; args = [ "%s/bin/app" ]; '
           'oci = { process.args = 5; }; }' % (NIXFILE, prefix, tok, app))
    problems = nix_eval('(import %s {}).problems { b = { args = [ "%s/bin/app" ]; oci = { process.args = 5; }; }; }'
                        % (NIXFILE, app))
    assert problems == []
    p = run(["nix-build", *NIX_OPTIONS, "-o", str(tmp_path / "bad"), "-E", bad], check=False)
    err = p.stderr.decode()
    assert p.returncode != 0 and "b-%s-bundlefs-spec.json.drv' failed" % tok in err, err
    # (bundlectl's FILE:LINE:COL: message, the file the spec being built)
    assert "b-%s-bundlefs-spec.json:1:" % tok in err and "oci" in err, err
    assert not os.path.lexists(tmp_path / "bad")


# ---- Nix's sandbox, with NixOS's shell ----------------------------------


@pytest.fixture(scope="session")
def busybox_sh():
    """A static busybox whose only applet is sh, as NixOS's sandbox shell
    (tools/busybox-sh builds it once)."""
    run([os.path.join(ROOT, "tools", "busybox-sh")])
    sh = os.path.join(ROOT, "build-deps", "busybox-sh", "bin", "sh")
    assert os.access(sh, os.X_OK)
    return sh


def sandbox(sh):
    # As root, Nix 2.8 sandboxes without build users (build-users-group
    # empty, as NIX_OPTIONS has it): the builder runs in user, mount, pid,
    # network, ipc and uts namespaces as uid 1000, with /bin/sh from
    # sandbox-paths and the inputs' closure as its whole store.
    return ["--option", "sandbox", "true", "--option", "sandbox-paths", "/bin/sh=" + sh]


def test_the_sandbox_shell_has_no_mkdir(tmp_path, busybox_sh):
    tok = token()

    def build(name, script, sh):
        expr = ('derivation { name = "%s-%s"; system = builtins.currentSystem; builder = "/bin/sh"; '
                'args = [ "-c" %s ]; }' % (name, tok, json.dumps(script)))
        return run(["nix-build", *NIX_OPTIONS, *sandbox(sh), "-o", str(tmp_path / name), "-E", expr],
                   check=False)

    # The sandbox is on: the host's files are not there.
    p = build("where", 'if [ -e /usr/bin ]; then echo host; else echo sandbox; fi > "$out"', busybox_sh)
    assert p.returncode == 0, p.stderr.decode()
    assert open(tmp_path / "where").read() == "sandbox\n"
    # This shell has no mkdir, as NixOS's has none...
    p = build("mkdir", 'mkdir "$out"', busybox_sh)
    assert p.returncode != 0 and b"mkdir: not found" in p.stderr, p.stderr
    # ...where Debian's busybox-static runs its applets as builtins.
    p = build("mkdir-debian", 'mkdir "$out"', "/bin/busybox")
    assert p.returncode == 0, p.stderr.decode()


def test_a_spec_builds_in_the_sandbox_and_mounts(tmp_path, mount, nix, app, tiny, busybox_sh):
    # Fresh names, so that the closure files and the spec are built now,
    # in the sandbox, and not found built already.
    tok = token()
    expr = ('(import %s {}).bundles { "a-%s" = { args = [ "%s/bin/app" ]; readonly = true; }; '
            '"t-%s" = { args = [ "%s/bin/sh" "-c" "true" ]; cwd = "/work"; }; }'
            % (NIXFILE, tok, app, tok, tiny))
    link = tmp_path / "result"
    p = run(["nix-build", *NIX_OPTIONS, *sandbox(busybox_sh), "-o", str(link), "-E", expr], check=False)
    err = p.stderr.decode()
    assert p.returncode == 0, err
    assert "a-%s-closure.drv" % tok in err and "t-%s-closure.drv" % tok in err
    assert "bundlefs-spec.json.drv" in err
    m = mount(str(link), "--db", "none")
    config = json.loads(open(m.path("a-" + tok, "config.json")).read())
    assert config["process"]["args"] == [app + "/bin/app"] and config["root"]["readonly"] is True
    assert json.loads(open(m.path("t-" + tok, "config.json")).read())["process"]["cwd"] == "/work"
    assert sorted(os.listdir(m.path("a-" + tok, "rootfs") + STORE)) == sorted(
        os.path.basename(p) for p in nix.closure(app))
    assert sorted(os.listdir(m.path("t-" + tok, "rootfs") + STORE)) == sorted(
        os.path.basename(p) for p in nix.closure(tiny))


# ---- package.nix --------------------------------------------------------


def package_attrs(package_nix, top=ROOT):
    """What package.nix gives callPackage (the stubs' nixpkgs): its source
    (where, and what its filter keeps of the top level of `top`, its
    source), the wrapper's commands and the stub packages' bin
    directories."""
    expr = '''
      let
        s = import %s { };
        p = s.pkgs.callPackage %s { };
        top = builtins.readDir %s;
      in {
        src = toString p.src.origSrc;
        name = p.src.name;
        kept = builtins.filter (e: p.src.filter "%s/${e}" top.${e}) (builtins.attrNames top);
        postFixup = p.postFixup;
        native = map (x: x.name) p.nativeBuildInputs;
        bins = with s.pkgs; map (x: "${s.lib.getBin x}/bin") [ nix fuse3 util-linux ];
      }''' % (STUBS, package_nix, top, top)
    return nix_eval(expr)


def check_package(attrs, src):
    assert attrs["src"] == src
    assert os.path.isfile(os.path.join(src, "CMakeLists.txt"))
    assert os.path.isfile(os.path.join(src, "fs", "main.c"))
    assert "CMakeLists.txt" in attrs["kept"] and "common" in attrs["kept"]
    for junk in ("build", "build-deps", "tests", ".git", "result"):
        assert junk not in attrs["kept"]
    assert "make-shell-wrapper-hook" in attrs["native"]
    # Both programs are wrapped, the PATH they are started with first.
    for prog in ("bundlefs", "bundlectl"):
        assert '"$out/bin/%s"' % prog in attrs["postFixup"]
    line = [l for l in attrs["postFixup"].splitlines() if "wrapProgram" in l]
    assert len(line) == 1
    words = shlex.split(line[0])
    assert words[:4] == ["wrapProgram", "$prog", "--suffix", "PATH"] and words[4] == ":"
    path = words[5].split(":")
    for b in attrs["bins"]:
        assert b in path
    assert [b.split("-")[1] for b in attrs["bins"]] == ["nix", "fuse", "util"]


def test_package_nix_builds_the_checkout_and_wraps_the_programs():
    check_package(package_attrs(os.path.join(NIXDIR, "package.nix")), ROOT)


def test_package_nix_without_a_source_says_so(tmp_path):
    lone = tmp_path / "package.nix"
    lone.write_text(open(os.path.join(NIXDIR, "package.nix")).read())
    p = run(["nix-instantiate", *NIX_OPTIONS, "--eval", "--strict", "-E",
             "((import %s {}).pkgs.callPackage %s {}).src" % (STUBS, lone)], check=False)
    assert p.returncode != 0
    assert b"bundlefs package.nix: no source beside it" in p.stderr
    # Given one, it takes it as it is.
    given = nix_eval('((import %s {}).pkgs.callPackage %s { src = "/some/where"; }).src'
                     % (STUBS, lone))
    assert given == "/some/where"


# ---- module.nix ---------------------------------------------------------


def template():
    """The shipped unit's settings: {section: {key: [values]}}."""
    out, section = {}, None
    for line in open(UNIT):
        line = line.rstrip("\n")
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1]
        elif "=" in line and not line.startswith("#"):
            k, v = line.split("=", 1)
            out.setdefault(section, {}).setdefault(k, []).append(v)
    return out


def eval_module(module, config_nix, select="{ inherit (r.out) systemd assertions environment; }"):
    expr = '''
      let
        s = import %s { };
        r = s.evalModule %s (%s);
      in %s''' % (STUBS, module, config_nix, select)
    return nix_eval(expr)


def check_unit(svc, package, mountpoint, options, spec):
    """A module's service against the shipped unit: the same command,
    filled in, and the same settings."""
    t = template()
    argv = shlex.split(svc["serviceConfig"]["ExecStart"])
    assert argv == [package + "/bin/bundlefs", "--foreground", *options, mountpoint, spec]
    # Every setting of the unit's [Service] but its environment file, as
    # the unit has it (ExecStart filled in, /bin/kill coreutils').
    sc = dict(svc["serviceConfig"])
    assert set(sc) == set(t["Service"]) - {"EnvironmentFile"}
    for k, (v,) in t["Service"].items():
        if k not in ("EnvironmentFile", "ExecStart", "ExecReload"):
            assert sc[k] == v, k
    assert sc["Type"] == "notify" and sc["NotifyAccess"] == "all"
    assert sc["ExitType"] == "cgroup" and sc["KillMode"] == "mixed"
    reload = sc["ExecReload"].split()
    assert reload[0].endswith("-coreutils-9.5/bin/kill") and reload[1:] == ["-HUP", "$MAINPID"]
    assert t["Service"]["ExecReload"] == ["/bin/kill -HUP $MAINPID"]
    assert svc["unitConfig"] == {"ConditionPathIsDirectory": mountpoint.replace("%", "%%")}
    assert svc["after"] == t["Unit"]["After"][0].split()
    assert svc["wants"] == t["Unit"]["Wants"][0].split()
    assert svc["wantedBy"] == t["Install"]["WantedBy"][0].split()
    assert svc["documentation"] == t["Unit"]["Documentation"][0].split()
    assert svc["description"] == t["Unit"]["Description"][0].replace("%f", mountpoint.replace("%", "%%"))


def test_module_services_run_the_units_command_and_it_mounts(tmp_path, tiny):
    prefix = bundlectl_prefix(tmp_path)
    mnt = str(tmp_path / "mnt")
    bundles = '{ hello = { args = [ "%s/bin/sh" "-c" "echo hi" ]; readonly = true; env = [ "A=1" ]; }; }' % tiny
    config = '''{ services.bundlefs.package = "%s";
                  services.bundlefs.mounts.web = { mountPoint = "%s"; bundles = %s;
                    options = [ "--db" "none" ]; };
                  services.bundlefs.mounts.off = { enable = false; mountPoint = "/x"; spec = "/y"; };
                  services.bundlefs.mounts.conf = { mountPoint = "/run/b 1"; spec = "/etc/b.conf"; }; }''' % (
        prefix, mnt, bundles)
    out = eval_module(os.path.join(NIXDIR, "module.nix"), config)
    assert sorted(out["systemd"]["services"]) == ["bundlefs-conf", "bundlefs-web"]
    assert all(a["assertion"] for a in out["assertions"])
    assert out["environment"]["systemPackages"] == [prefix]
    assert out["systemd"]["tmpfiles"]["rules"] == ['d "/run/b 1" 0755 root root - -',
                                                  "d %s 0755 root root - -" % mnt]
    # The spec is bundlefs.nix's, checked in its build by the mount's own
    # bundlectl: building that expression gives the path the unit names.
    spec = os.path.realpath(nix_build(
        tmp_path, '(import %s { bundlefs = "%s"; }).bundles %s' % (NIXFILE, prefix, bundles), "spec"))
    web = out["systemd"]["services"]["bundlefs-web"]
    check_unit(web, prefix, mnt, ["--db", "none"], spec)
    check_unit(out["systemd"]["services"]["bundlefs-conf"], prefix, "/run/b 1", [], "/etc/b.conf")
    # And the command mounts (the suite's mounts use -f, which is
    # --foreground).
    argv = shlex.split(web["serviceConfig"]["ExecStart"])
    with Mount(tmp_path / "mnt", argv[-1], argv[2:-2]) as m:
        config = json.loads(open(m.path("hello", "config.json")).read())
        assert config["process"]["args"] == [tiny + "/bin/sh", "-c", "echo hi"]
        assert config["process"]["env"] == ["A=1"]


def test_module_default_package_is_package_nix():
    out = eval_module(os.path.join(NIXDIR, "module.nix"),
                      '{ services.bundlefs.mounts.m = { mountPoint = "/m"; spec = "/s.conf"; }; }',
                      "{ start = r.out.systemd.services.bundlefs-m.serviceConfig.ExecStart; "
                      "pkg = toString (s.pkgs.callPackage %s { }); }" % os.path.join(NIXDIR, "package.nix"))
    assert out["pkg"].endswith("-bundlefs-0.1.0")
    assert out["start"] == out["pkg"] + "/bin/bundlefs --foreground /m /s.conf"


def test_module_assertions_name_the_mount_and_the_problem(app):
    config = '''{ services.bundlefs.package = "/p";
                  services.bundlefs.mounts.both = { mountPoint = "/a"; spec = "/s"; bundles = { }; };
                  services.bundlefs.mounts.none = { mountPoint = "/b"; };
                  services.bundlefs.mounts.bad = { mountPoint = "/c";
                    bundles.x = { args = [ "%s/bin/app" ]; user = "nobody"; }; }; }''' % app
    out = eval_module(os.path.join(NIXDIR, "module.nix"), config,
                      "map (a: a.message) (builtins.filter (a: !a.assertion) r.out.assertions)")
    assert sorted(out) == sorted([
        "services.bundlefs.mounts.both: set one of bundles and spec",
        "services.bundlefs.mounts.both.bundles: bundles: no bundle given",
        "services.bundlefs.mounts.none: set one of bundles and spec",
        "services.bundlefs.mounts.bad.bundles: bundle `x': user: expected UID:GID or "
        "UID:GID,GID,... (numbers up to 4294967294), not `nobody'",
    ])
    # No mount, nothing set.
    assert eval_module(os.path.join(NIXDIR, "module.nix"), "{ }", "r.out") == {}
