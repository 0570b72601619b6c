# config.json: with `compat = buildcontainer`, `bundlectl config` must
# print the bytes that nixpkgs' buildContainer writes; by default, the same
# document made valid OCI (no "options": null), which the runtime-spec
# schema accepts. The expected bytes come from the real Nix evaluator
# (nix-instantiate) running buildContainer's expression
# (tests/data/buildcontainer.nix), not from bundlefs; the schema is the one
# Debian packages with the runtime-spec.
import json
import os
import re
import pathlib
import subprocess

import pytest

from conftest import BUNDLECTL, HERE, bundlectl, run, write_spec

H = "0123456789abcdfghijklmnpqrsvwxyz"
SP = "/nix/store/" + H + "-hello-2.12"


# Evaluates ociTools.buildContainer PARAMS: the oracle's restatement, or
# nixpkgs' own file with its lib. The other tools it takes are stand-ins:
# writeText gives a path whose name is the text between two marks (Nix's
# toJSON never writes a newline), runCommand gives its script, so config.json
# is what `cp ${config} ...` copies.
EVAL = """
{ file, params, nixpkgs }:
let
  mark = "\\n@config.json@\\n";
  lib = if nixpkgs == "" then {
    # nixpkgs' mapAttrsToList: attribute names in sorted order.
    mapAttrsToList = f: attrs: map (name: f name attrs.${name}) (builtins.attrNames attrs);
  } else import (nixpkgs + "/lib");
  tools = {
    inherit lib;
    writeText = name: text: { inherit name text; outPath = mark + text + mark; };
    runCommand = name: env: script: script;
    writeReferencesToFile = paths: "/references";
    writeClosure = paths: "/references";
  };
  ociTools = import file;
in
(ociTools (builtins.intersectAttrs (builtins.functionArgs ociTools) tools)).buildContainer
  (builtins.fromJSON (builtins.readFile params))
"""
NIXPKGS = os.environ.get("BUNDLEFS_NIXPKGS", "")


def nix_config(tmp_path, params):
    """The bytes of config.json that buildContainer writes for `params`."""
    pfile = tmp_path / "params.json"
    pfile.write_text(json.dumps(params))
    if NIXPKGS:
        oracle = os.path.join(NIXPKGS, "pkgs", "build-support", "oci-tools", "default.nix")
    else:
        oracle = os.path.join(HERE, "data", "buildcontainer.nix")
    out = subprocess.run(
        ["nix-instantiate", "--eval", "--strict", "--json", "--expr", EVAL,
         "--arg", "file", oracle, "--arg", "params", str(pfile), "--argstr", "nixpkgs", NIXPKGS],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, check=True,
    )
    # --json prints the script as a JSON string: decode it once.
    script = json.loads(out.stdout)
    parts = script.split("\n@config.json@\n")
    assert len(parts) == 3, script
    return parts[1].encode()


# (spec.conf body, the same as buildContainer arguments)
CASES = {
    "defaults": ("args = %s/bin/hello\n" % SP, {"args": [SP + "/bin/hello"]}),
    "readonly-platform": (
        "args = %s/bin/hello --greeting \"hi there\"\nreadonly = true\nos = linux\narch = aarch64\n" % SP,
        {"args": [SP + "/bin/hello", "--greeting", "hi there"], "readonly": True,
         "arch": "aarch64"},
    ),
    "quoting-and-unicode": (
        'args = ["%s/bin/hello", "a \\"q\\" \\\\ b", "tab\\tnl\\ncr\\r", "\\u0001\\u001f\\u007f", "h\\u00e9 \\u2603 \\ud83d\\ude00", "/slash", ""]\n' % SP,
        {"args": [SP + "/bin/hello", 'a "q" \\ b', "tab\tnl\ncr\r", "\x01\x1f\x7f",
                  "h\u00e9 \u2603 \U0001F600", "/slash", ""]},
    ),
    "shell-words": (
        "args = %s/bin/sh -c 'echo \"$HOME\" > /dev/null' x\\ y\n" % SP,
        {"args": [SP + "/bin/sh", "-c", 'echo "$HOME" > /dev/null', "x y"]},
    ),
    "empty-platform": (
        "args = %s/bin/hello\nos =\narch =\n" % SP,
        {"args": [SP + "/bin/hello"], "os": "", "arch": ""},
    ),
    # buildContainer takes `mounts` and drops them (its sysMounts alone),
    # bundlefs merges them over the system mounts by destination.
    "mounts": (
        "args = %s/bin/hello\nreadonly = true\n"
        "mount = /data bind /srv/data rbind,ro\n"
        "mount = /proc proc proc nosuid\n"
        "mount = /dev/shm tmpfs tmpfs\n" % SP,
        {"args": [SP + "/bin/hello"], "readonly": True, "mounts": {
            "/data": {"type": "bind", "source": "/srv/data", "options": ["rbind", "ro"]},
            "/proc": {"type": "proc", "source": "proc", "options": ["nosuid"]},
            "/dev/shm": {"type": "tmpfs", "source": "tmpfs"}}},
    ),
}


def without_null_options(config):
    """buildContainer's bytes, less every "options":null member."""
    out = config.replace(b'"options":null,', b"")
    assert b":null" not in out
    return out


# What `runc spec` masks and makes read-only (runc's
# libcontainer/specconv/example.go): compat = oci's defaults.
RUNC_MASKED = ["/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
               "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/sys/firmware",
               "/proc/scsi"]
RUNC_READONLY = ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]


def made_valid(config):
    """buildContainer's bytes as compat = oci writes them: no "options":
    null, runc spec's masked and read-only paths in linux."""
    out = without_null_options(config)
    head = b'{"linux":{"namespaces":'
    assert out.startswith(head)
    end = out.index(b"]}", len(head)) + 1

    def dump(v):
        return json.dumps(v, separators=(",", ":")).encode()
    return (b'{"linux":{"maskedPaths":' + dump(RUNC_MASKED) + b',"namespaces":'
            + out[len(head):end] + b',"readonlyPaths":' + dump(RUNC_READONLY) + out[end:])


def oci_config(tmp_path, params):
    """What bundlefs makes of buildContainer's document by default: the
    user's mounts merged over the system mounts by destination, sorted, no
    "options": null, runc's paths (parsed: the bytes are compared where
    there are no user mounts)."""
    doc = json.loads(made_valid(nix_config(tmp_path, params)))
    mounts = {m["destination"]: m for m in doc["mounts"]}
    for dest, m in params.get("mounts", {}).items():
        mounts[dest] = dict({k: v for k, v in m.items() if v is not None}, destination=dest)
    doc["mounts"] = [mounts[d] for d in sorted(mounts)]
    return doc


@pytest.mark.parametrize("case", sorted(CASES))
def test_config_bytes_equal_buildcontainer(tmp_path, case):
    body, params = CASES[case]
    spec = write_spec(tmp_path, "[b]\ncompat = buildcontainer\n" + body)
    got = bundlectl("config", spec, "b").stdout
    assert got == nix_config(tmp_path, params)


@pytest.mark.parametrize("case", sorted(CASES))
def test_json_spec_gives_same_config(tmp_path, case):
    _, params = CASES[case]
    spec = write_spec(tmp_path, json.dumps({"b": dict(params, compat="buildcontainer")}),
                      "spec.json")
    got = bundlectl("config", spec, "b").stdout
    assert got == nix_config(tmp_path, params)


@pytest.mark.parametrize("case", sorted(CASES))
def test_default_config_is_buildcontainer_made_valid(tmp_path, case):
    body, params = CASES[case]
    want = oci_config(tmp_path, params)
    conf = write_spec(tmp_path, "[b]\n" + body)
    js = write_spec(tmp_path, json.dumps({"b": params}), "spec.json")
    oci = write_spec(tmp_path, "[b]\ncompat = oci\n" + body, "oci.conf")
    for spec in (conf, js, oci):
        got = bundlectl("config", spec, "b").stdout
        assert json.loads(got) == want
        if "mounts" not in params:
            assert got == made_valid(nix_config(tmp_path, params))
        validate(json.loads(got))


def test_compat_mounts_are_dropped_with_a_warning(tmp_path):
    # buildContainer drops `mounts`: config.json has its own alone, the
    # rootfs has no mount point for them, and `bundlectl check` says so at
    # the mounts' line without failing.
    body, params = CASES["mounts"]
    # (A command outside the store: an empty closure, which resolves.)
    body = body.replace(SP + "/bin/hello", "/bin/true")
    params = dict(params, args=["/bin/true"])
    conf = write_spec(tmp_path, "[b]\ncompat = buildcontainer\n" + body)
    js = write_spec(tmp_path, json.dumps({"b": dict(params, compat="buildcontainer")}),
                    "spec.json")
    for spec, where in ((conf, "spec.conf:5: warning: bundle \"b\": mount: "),
                        (js, "spec.json:1: warning: bundle \"b\": mounts: ")):
        p = bundlectl("check", "--db", "none", spec)
        assert p.stderr.decode() == "%s/%scompat = buildcontainer drops them from " \
            "config.json, as buildContainer drops its mounts argument\n" % (tmp_path, where)
        assert p.stdout.decode().endswith(": 1 bundle OK\n")
        doc = json.loads(bundlectl("config", spec, "b").stdout)
        assert [m["destination"] for m in doc["mounts"]] == [
            "/dev", "/dev/mqueue", "/dev/pts", "/dev/shm", "/proc", "/sys", "/sys/fs/cgroup"]
        out = tmp_path / ("copy-" + os.path.basename(spec))
        bundlectl("materialize", "--db", "none", spec, "b", str(out))
        assert sorted(os.listdir(out / "rootfs")) == ["dev", "nix", "proc", "sys"]
    # Without mounts, no warning; with compat = oci, the mounts are the
    # container's and their bind sources must exist.
    p = bundlectl("check", "--db", "none", write_spec(
        tmp_path, "[b]\ncompat = buildcontainer\nargs = /bin/true\n", "none.conf"))
    assert p.stderr == b""
    p = bundlectl("check", "--db", "none", write_spec(tmp_path, "[b]\n" + body, "oci.conf"),
                  check=False)
    assert p.returncode == 2 and b"warning" not in p.stderr
    assert b"oci.conf:4: bundle \"b\": mount /data: source /srv/data: No such file" in p.stderr


@pytest.mark.parametrize("compat", ["buildcontainer", "oci"])
def test_empty_os_and_arch_are_written_as_given(tmp_path, compat):
    # buildContainer takes os = "" and arch = "": so does bundlefs, in
    # both syntaxes (`os =` is the empty string in spec.conf).
    params = {"args": [SP + "/bin/hello"], "os": "", "arch": ""}
    conf = write_spec(tmp_path, "[b]\ncompat = %s\nargs = %s/bin/hello\nos =\narch =\n"
                      % (compat, SP))
    js = write_spec(tmp_path, json.dumps({"b": dict(params, compat=compat)}), "spec.json")
    want = nix_config(tmp_path, params)
    if compat == "oci":
        want = made_valid(want)
    for spec in (conf, js):
        got = bundlectl("config", spec, "b").stdout
        assert got == want
        assert json.loads(got)["platform"] == {"os": "", "arch": ""}


@pytest.mark.parametrize("line,message", [
    ("os = two words", 'os: "two words" contains whitespace or control characters'),
    ("arch = x86\t64", 'arch: "x86\t64" contains whitespace or control characters'),
])
def test_os_and_arch_are_still_words(tmp_path, line, message):
    spec = write_spec(tmp_path, "[b]\nargs = %s/bin/hello\n%s\n" % (SP, line))
    p = bundlectl("check", spec, check=False)
    assert p.returncode == 2
    assert p.stderr.decode() == '%s:3: bundle "b": %s\n' % (spec, message)
    js = write_spec(tmp_path, json.dumps({"b": {"args": ["/x"], "os": "a\u0001"}}), "spec.json")
    p = bundlectl("check", js, check=False)
    assert p.returncode == 2
    assert b'bundle "b": os: "a\x01" contains whitespace or control characters' in p.stderr


def test_user_mounts_are_honoured(tmp_path):
    # With compat = oci (the default), bundlefs merges the mounts over the
    # system mounts by destination (here replacing /proc and /dev/shm). An
    # empty option list is [] in JSON.
    mounts = dict(CASES["mounts"][1]["mounts"])
    mounts["/a/b/c"] = {"type": "tmpfs", "source": "tmpfs", "options": []}
    params = {"args": [SP + "/bin/hello"], "mounts": mounts}
    js = write_spec(tmp_path, json.dumps({"b": params}), "spec.json")
    doc = json.loads(bundlectl("config", js, "b").stdout)
    assert doc == oci_config(tmp_path, params)
    assert [m["destination"] for m in doc["mounts"]] == sorted(
        ["/a/b/c", "/data", "/dev", "/dev/mqueue", "/dev/pts", "/dev/shm", "/proc", "/sys",
         "/sys/fs/cgroup"])
    assert {"destination": "/a/b/c", "type": "tmpfs", "source": "tmpfs",
            "options": []} in doc["mounts"]
    # spec.conf has no way to write an empty option list: one empty word
    # is an error, not [].
    conf = write_spec(tmp_path, "[b]\nargs = %s/bin/hello\nmount = /a/b/c tmpfs tmpfs ''\n" % SP)
    p = bundlectl("config", conf, "b", check=False)
    assert p.returncode == 2
    assert b'spec.conf:3: bundle "b": mount: "/a/b/c": empty option' in p.stderr


def test_pretty_is_the_same_document(tmp_path):
    spec = write_spec(tmp_path, "[b]\nargs = %s/bin/hello x\nmount = /d bind /s\n" % SP)
    compact = bundlectl("config", spec, "b").stdout
    pretty = bundlectl("config", "--pretty", spec, "b").stdout
    assert b"\n" in pretty and b"\n" not in compact
    assert json.loads(pretty) == json.loads(compact)


# -- valid OCI, and the optional settings ---------------------------------

SCHEMA_DIR = "/usr/share/gocode/src/github.com/opencontainers/runtime-spec/schema"


def validate(doc):
    """Checks `doc` against the OCI runtime-spec config schema (its $refs
    resolved from the schema's own directory)."""
    import jsonschema
    with open(os.path.join(SCHEMA_DIR, "config-schema.json")) as f:
        schema = json.load(f)
    resolver = jsonschema.RefResolver("file://%s/" % SCHEMA_DIR, schema)
    jsonschema.validate(doc, schema, resolver=resolver)


def test_the_schema_check_can_fail():
    # The check above is real: buildContainer's own document fails it.
    import jsonschema
    doc = {"ociVersion": "1.0.0", "root": {"path": "rootfs"},
           "mounts": [{"destination": "/proc", "type": "proc", "source": "proc",
                       "options": None}]}
    with pytest.raises(jsonschema.ValidationError):
        validate(doc)


SETTINGS_CONF = """[b]
args = %s/bin/hello
env = PATH=/bin:/usr/bin
env = GREETING=hi there=you
cwd = /srv/app
hostname = box-1.example
user = 1000:100,27,44
terminal = true
mount = /tmp tmpfs tmpfs mode=1777
""" % SP

SETTINGS_JSON = {"b": {
    "args": [SP + "/bin/hello"],
    "env": ["PATH=/bin:/usr/bin", "GREETING=hi there=you"],
    "cwd": "/srv/app", "hostname": "box-1.example", "user": "1000:100,27,44",
    "terminal": True,
    "mounts": {"/tmp": {"type": "tmpfs", "source": "tmpfs", "options": ["mode=1777"]}},
}}


def test_optional_settings_reach_config_json(tmp_path):
    conf = write_spec(tmp_path, SETTINGS_CONF)
    js = write_spec(tmp_path, json.dumps(SETTINGS_JSON), "spec.json")
    got = bundlectl("config", conf, "b").stdout
    assert bundlectl("config", js, "b").stdout == got
    doc = json.loads(got)
    validate(doc)
    p = doc["process"]
    assert p["env"] == ["PATH=/bin:/usr/bin", "GREETING=hi there=you"]
    assert p["cwd"] == "/srv/app" and p["terminal"] is True
    assert p["user"] == {"uid": 1000, "gid": 100, "additionalGids": [27, 44]}
    assert doc["hostname"] == "box-1.example"
    # Everything else is the document without the settings.
    plain = json.loads(bundlectl("config", write_spec(
        tmp_path, "[b]\nargs = %s/bin/hello\nmount = /tmp tmpfs tmpfs mode=1777\n" % SP,
        "plain.conf"), "b").stdout)
    for k in ("env", "terminal"):
        del p[k]
    p["cwd"], p["user"] = "/", {"uid": 0, "gid": 0}
    del doc["hostname"]
    assert doc == plain


@pytest.mark.parametrize("line,message", [
    ("env = 1X=y", "env: expected NAME=VALUE"),
    ("env = NOEQUALS", "env: expected NAME=VALUE"),
    ("env = A=1\nenv = A=2", "env: A is set twice"),
    ("cwd = relative/dir", 'cwd: "relative/dir" is not an absolute path'),
    ("cwd = /srv/../etc", 'cwd: "/srv/../etc" is not normalized'),
    ("hostname = bad_name", "hostname: expected 1 to 64 letters, digits"),
    ("hostname = -x", "hostname: expected 1 to 64 letters, digits"),
    ("user = root", "user: expected UID:GID"),
    ("user = 1000", "user: expected UID:GID"),
    ("user = 1000:100,", "user: expected UID:GID"),
    ("user = 1000:4294967295", "user: expected UID:GID"),
    ("terminal = yes", "terminal: expected true or false"),
    ("compat = docker", "compat: expected oci or buildcontainer"),
    ("data = copy", "data: expected native, fuse or bind"),
])
def test_bad_settings_are_reported_at_their_line(tmp_path, line, message):
    spec = write_spec(tmp_path, "[b]\nargs = %s/bin/hello\n%s\n" % (SP, line))
    p = bundlectl("config", spec, "b", check=False)
    last = 2 + line.count("\n") + 1
    assert p.returncode == 2
    assert ('spec.conf:%d: bundle "b": %s' % (last, message)).encode() in p.stderr, p.stderr


# -- the rest of config.json: capabilities, rlimits, ..., oci ---------------

KEYS_CONF = """[b]
args = %s/bin/hello
user = 1000:100
capabilities = {"add": ["CAP_NET_ADMIN", "CAP_CHOWN"], "drop": ["CAP_KILL"]}
rlimits = {"RLIMIT_NOFILE": 1024, "RLIMIT_CORE": {"soft": 0, "hard": 18446744073709551615}}
noNewPrivileges = true
annotations = {"org.example.owner": "me", "a": ""}
sysctl = {"net.ipv4.ip_forward": "1", "kernel/msgmax": "65536"}
maskedPaths = /proc/kcore /srv/secret
readonlyPaths = []
oci = {"process": {"terminal": true}, "hostname": "patched", "linux": {"sysctl": {"kernel/msgmax": null}}}
""" % SP

KEYS_JSON = {"b": {
    "args": [SP + "/bin/hello"], "user": "1000:100",
    "capabilities": {"add": ["CAP_NET_ADMIN", "CAP_CHOWN"], "drop": ["CAP_KILL"]},
    "rlimits": {"RLIMIT_NOFILE": 1024,
                "RLIMIT_CORE": {"soft": 0, "hard": 18446744073709551615}},
    "noNewPrivileges": True,
    "annotations": {"org.example.owner": "me", "a": ""},
    "sysctl": {"net.ipv4.ip_forward": "1", "kernel/msgmax": "65536"},
    "maskedPaths": ["/proc/kcore", "/srv/secret"], "readonlyPaths": [],
    "oci": {"process": {"terminal": True}, "hostname": "patched",
            "linux": {"sysctl": {"kernel/msgmax": None}}},
}}


def test_config_keys_reach_config_json(tmp_path):
    conf = write_spec(tmp_path, KEYS_CONF)
    js = write_spec(tmp_path, json.dumps(KEYS_JSON), "spec.json")
    got = bundlectl("config", conf, "b").stdout
    assert bundlectl("config", js, "b").stdout == got
    doc = json.loads(got)
    validate(doc)
    p = doc["process"]
    # runc spec's set, CAP_KILL dropped, two added; a user other than root
    # also has them inheritable and ambient.
    caps = ["CAP_AUDIT_WRITE", "CAP_CHOWN", "CAP_NET_ADMIN", "CAP_NET_BIND_SERVICE"]
    assert p["capabilities"] == {k: caps for k in (
        "bounding", "effective", "permitted", "inheritable", "ambient")}
    assert p["rlimits"] == [
        {"type": "RLIMIT_CORE", "soft": 0, "hard": 18446744073709551615},
        {"type": "RLIMIT_NOFILE", "soft": 1024, "hard": 1024}]
    assert b'"hard":18446744073709551615' in got
    assert p["noNewPrivileges"] is True and p["terminal"] is True
    assert doc["annotations"] == {"a": "", "org.example.owner": "me"}
    assert doc["hostname"] == "patched"
    assert doc["linux"]["sysctl"] == {"net.ipv4.ip_forward": "1"}
    assert doc["linux"]["maskedPaths"] == ["/proc/kcore", "/srv/secret"]
    assert "readonlyPaths" not in doc["linux"]
    # Keys sorted again after the patch, compact.
    assert got == json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()


@pytest.mark.parametrize("caps,want", [
    ('{}', ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]),
    ('{"drop": ["ALL"], "add": ["CAP_SYS_PTRACE"]}', ["CAP_SYS_PTRACE"]),
    ('{"drop": ["ALL"]}', []),
    ('{"add": ["ALL"], "drop": ["CAP_SYS_ADMIN", "CAP_NET_RAW"]}', "all but two"),
])
def test_capabilities_are_runc_defaults_with_changes(tmp_path, caps, want):
    spec = write_spec(tmp_path, "[b]\nargs = /bin/true\ncapabilities = %s\n" % caps)
    doc = json.loads(bundlectl("config", spec, "b").stdout)
    validate(doc)
    c = doc["process"]["capabilities"]
    assert sorted(c) == ["bounding", "effective", "permitted"]  # uid 0
    if want == "all but two":
        assert len(c["bounding"]) == 39
        assert "CAP_SYS_ADMIN" not in c["bounding"] and "CAP_CHECKPOINT_RESTORE" in c["bounding"]
    else:
        assert c["bounding"] == want
    assert c["bounding"] == c["effective"] == c["permitted"]


@pytest.mark.parametrize("compat", ["oci", "buildcontainer"])
def test_masked_and_readonly_paths(tmp_path, compat):
    # compat = oci: runc spec's lists unless the bundle says ([] for none);
    # compat = buildcontainer: none unless it says.
    def linux(extra):
        spec = write_spec(tmp_path, "[b]\nargs = /bin/true\ncompat = %s\n%s" % (compat, extra))
        doc = json.loads(bundlectl("config", spec, "b").stdout)
        if compat == "oci":
            validate(doc)
        return doc["linux"]
    dflt = linux("")
    if compat == "oci":
        assert dflt["maskedPaths"] == RUNC_MASKED and dflt["readonlyPaths"] == RUNC_READONLY
    else:
        assert "maskedPaths" not in dflt and "readonlyPaths" not in dflt
    given = linux("maskedPaths = /a/b\nreadonlyPaths = /etc /usr\n")
    assert given["maskedPaths"] == ["/a/b"] and given["readonlyPaths"] == ["/etc", "/usr"]
    none = linux("maskedPaths = []\nreadonlyPaths = []\n")
    assert "maskedPaths" not in none and "readonlyPaths" not in none


def as_nobody(*cmd):
    return run(["runuser", "-u", "nobody", "--", *cmd])


def test_rootless_follows_the_owner(tmp_path):
    # Unsaid, a bundle is rootless when the mount's owner (bundlectl's
    # caller) is not root: what `runc spec --rootless` changes, with root
    # mapped to the owner.
    import pwd
    import shutil
    import tempfile
    nobody = pwd.getpwnam("nobody")
    # (pytest's directories are root's, 0700: one everyone may read.)
    public = tempfile.mkdtemp(prefix="bundlefs-rootless-")
    os.chmod(public, 0o755)
    try:
        spec = write_spec(pathlib.Path(public),
                          "[b]\nargs = /bin/true\nmount = /data bind /srv uid=5,rbind\n"
                          "[no]\nargs = /bin/true\nrootless = false\n"
                          "[yes]\nargs = /bin/true\nrootless = true\n"
                          "[compat]\nargs = /bin/true\ncompat = buildcontainer\n")
        os.chmod(spec, 0o644)
        rootless_for(spec, nobody)
    finally:
        shutil.rmtree(public)


def rootless_for(spec, nobody):
    as_root = json.loads(bundlectl("config", spec, "b").stdout)
    assert [n["type"] for n in as_root["linux"]["namespaces"]] == [
        "pid", "network", "mount", "ipc", "uts"]
    assert "uidMappings" not in as_root["linux"]
    doc = json.loads(as_nobody(BUNDLECTL, "config", spec, "b").stdout)
    validate(doc)
    assert [n["type"] for n in doc["linux"]["namespaces"]] == ["pid", "mount", "ipc", "uts", "user"]
    assert doc["linux"]["uidMappings"] == [
        {"containerID": 0, "hostID": nobody.pw_uid, "size": 1}]
    assert doc["linux"]["gidMappings"] == [
        {"containerID": 0, "hostID": nobody.pw_gid, "size": 1}]
    mounts = {m["destination"]: m for m in doc["mounts"]}
    assert mounts["/sys"] == {"destination": "/sys", "type": "none", "source": "/sys",
                              "options": ["rbind", "nosuid", "noexec", "nodev", "ro"]}
    assert mounts["/sys/fs/cgroup"] == {m["destination"]: m for m in as_root["mounts"]}[
        "/sys/fs/cgroup"]
    assert mounts["/dev/pts"]["options"] == [
        "nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=755"]
    assert mounts["/data"]["options"] == ["rbind"]
    # Everything else as root has it.
    for k in ("namespaces", "uidMappings", "gidMappings"):
        doc["linux"].pop(k, None)
        as_root["linux"].pop(k, None)
    assert {k: v for k, v in doc.items() if k != "mounts"} == \
        {k: v for k, v in as_root.items() if k != "mounts"}
    # Said, it holds for any owner; compat = buildcontainer gives
    # buildContainer's bytes unless it says.
    assert "uidMappings" not in json.loads(as_nobody(BUNDLECTL, "config", spec, "no").stdout)["linux"]
    yes = json.loads(bundlectl("config", spec, "yes").stdout)
    assert yes["linux"]["uidMappings"] == [{"containerID": 0, "hostID": 0, "size": 1}]
    assert as_nobody(BUNDLECTL, "config", spec, "compat").stdout == \
        bundlectl("config", spec, "compat").stdout


def test_oci_patch_is_applied_last(tmp_path):
    # RFC 7396 over the whole document: null deletes, objects merge,
    # anything else replaces; the keys are sorted after it.
    patch = {"process": {"env": ["A=patched"], "capabilities": {
        "bounding": ["CAP_NET_ADMIN"], "effective": ["CAP_NET_ADMIN"],
        "permitted": ["CAP_NET_ADMIN"]}},
        "linux": {"readonlyPaths": None, "namespaces": [{"type": "pid"}, {"type": "mount"}]},
        "annotations": {"z": "1", "a": "2"}}
    spec = write_spec(tmp_path, "[b]\nargs = /bin/true\nenv = A=1\nhostname = h\n"
                      "capabilities = {\"add\": [\"CAP_SYS_ADMIN\"]}\noci = %s\n"
                      % json.dumps(patch))
    base = write_spec(tmp_path, "[b]\nargs = /bin/true\nenv = A=1\nhostname = h\n"
                      "capabilities = {\"add\": [\"CAP_SYS_ADMIN\"]}\n", "base.conf")
    got = bundlectl("config", spec, "b").stdout
    doc, want = json.loads(got), json.loads(bundlectl("config", base, "b").stdout)
    validate(doc)
    want["process"]["env"] = ["A=patched"]
    want["process"]["capabilities"] = patch["process"]["capabilities"]
    del want["linux"]["readonlyPaths"]
    want["linux"]["namespaces"] = [{"type": "pid"}, {"type": "mount"}]
    want["annotations"] = {"a": "2", "z": "1"}
    assert doc == want
    assert got == json.dumps(want, sort_keys=True, separators=(",", ":")).encode()


@pytest.mark.parametrize("syntax", ["conf", "json"])
def test_an_invalid_patched_config_is_a_spec_error(tmp_path, syntax):
    patch = {"process": {"user": {"uid": "root"}}}
    if syntax == "conf":
        spec = write_spec(tmp_path, "[ok]\nargs = /bin/true\n[b]\nargs = /bin/true\noci = %s\n"
                          % json.dumps(patch))
        where = "spec.conf:5: "
    else:
        spec = write_spec(tmp_path, '{"b": {"args": ["/bin/true"],\n "oci": %s}}'
                          % json.dumps(patch), "spec.json")
        where = "spec.json:2:9: "
    p = bundlectl("check", spec, check=False)
    assert p.returncode == 2
    err = p.stderr.decode()
    assert err == ('%s/%sbundle "b": oci: config.json with this patch is not valid OCI: at '
                   '/process/user/uid: "root" is not an integer\n' % (tmp_path, where))
    # The same patch on a valid value passes, with compat = buildcontainer
    # too (checked on the valid document, buildContainer's not being so).
    for compat in ("oci", "buildcontainer"):
        ok = write_spec(tmp_path, "[b]\nargs = /bin/true\ncompat = %s\noci = %s\n"
                        % (compat, json.dumps({"process": {"user": {"uid": 7}}})), "ok.conf")
        assert bundlectl("check", ok).returncode == 0
        assert json.loads(bundlectl("config", ok, "b").stdout)["process"]["user"]["uid"] == 7


# -- the cases both checkers share -------------------------------------------

with open(os.path.join(HERE, "data", "keymessages.json")) as f:
    KEYCASES = json.load(f)["cases"]


def test_keycases_cover_every_key():
    with open(os.path.join(HERE, "..", "nix", "keys.json")) as f:
        names = [k["name"] for k in json.load(f)["keys"]]
    assert sorted({c["key"] for c in KEYCASES}) == sorted(names)
    for name in names:
        kinds = {"error" in c for c in KEYCASES if c["key"] == name}
        assert kinds == {True, False}, name


@pytest.mark.parametrize("i", range(len(KEYCASES)),
                         ids=["%s-%d" % (c["key"], i) for i, c in enumerate(KEYCASES)])
def test_keycase(tmp_path, i):
    # Each case as a one-line JSON spec, as Nix writes them: accepted, or
    # refused with exactly its message after the bundle and the key.
    case = KEYCASES[i]
    bundle = {"args": ["/bin/true"], case["key"]: case["value"]}
    spec = write_spec(tmp_path, json.dumps({"b": bundle}, ensure_ascii=False), "spec.json")
    p = bundlectl("config", spec, "b", check=False)
    if "error" not in case:
        assert p.returncode == 0, p.stderr.decode()
        if bundle.get("compat") != "buildcontainer":
            validate(json.loads(p.stdout))
        return
    assert p.returncode == 2
    lines = p.stderr.decode().splitlines()
    assert len(lines) == 1, lines
    assert re.fullmatch(r"%s:1:\d+: bundle \"b\": %s: %s" % (
        re.escape(spec), re.escape(case["key"]), re.escape(case["error"])), lines[0]), lines[0]


def test_docs_list_exactly_the_keys_of_keys_json():
    # docs/spec.md's table of keys and bundlefs-spec(5) say what
    # nix/keys.json describes: every key, no other, each with its spec.conf
    # form (under its spec.conf name), its JSON and Nix forms, type and
    # default.
    root = os.path.join(HERE, "..")
    with open(os.path.join(root, "nix", "keys.json")) as f:
        keys = json.load(f)["keys"]
    with open(os.path.join(root, "docs", "spec.md")) as f:
        text = f.read()
    section = text[text.index("\n## Keys\n"):]
    section = section[:section.index("\n## ", 1)]
    lines = section.splitlines()
    head = [ln for ln in lines if ln.startswith("| key |")]
    assert head == ["| key | spec.conf | JSON | Nix | type | default | meaning |"]
    rows = [[c.strip() for c in ln.strip("|").split(" | ")] for ln in lines
            if ln.startswith("| `")]
    assert [r[0] for r in rows] == ["`%s`" % k["name"] for k in keys]
    for r, k in zip(rows, keys):
        assert len(r) == 7, r
        assert r[1].startswith("`%s =" % k["conf"]), r
        assert r[2] and r[3] and r[4], r
    with open(os.path.join(root, "docs", "man", "bundlefs-spec.5.scd")) as f:
        man = f.read()
    man = man[man.index("# KEYS"):man.index("# JSON")]
    entries = [name for line in man.splitlines() if line.startswith("*")
               for name in re.findall(r"\*([A-Za-z]+)\*", line.split(" (")[0])]
    assert sorted(entries) == sorted(k["name"] for k in keys)
