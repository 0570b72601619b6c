# The OCI schema validator in C (common/ocischema.c) against
# python3-jsonschema's Draft4Validator on the same schema files (Debian's
# golang-github-opencontainers-specs-dev): a few thousand random mutations
# of real configs (runc's, bundlectl's, one with every part of the schema)
# must get the same verdict from both, and the C validator's first violation
# must be at a place jsonschema reports one. Also: the build compiles the
# schema in where the package is, refuses a schema with a keyword it does
# not implement, and builds without one.
import copy
import json
import os
import random
import re
import shutil
import subprocess

import pytest

from conftest import BUILD, ROOT, bundlectl, write_spec

SCHEMA_DIR = "/usr/share/gocode/src/github.com/opencontainers/runtime-spec/schema"
CHECKER = os.path.join(BUILD, "tests", "ocischema_check")
SEED = int(os.environ.get("BUNDLEFS_OCISCHEMA_SEED", "20240611"))
DOCS = 3000

H = "0123456789abcdfghijklmnpqrsvwxyz"
SP = "/nix/store/" + H + "-hello-2.12"


def cmake_cache(name):
    with open(os.path.join(BUILD, "CMakeCache.txt")) as f:
        for line in f:
            if line.startswith(name + ":"):
                return line.split("=", 1)[1].strip()
    return None


def schema_in_build():
    out = subprocess.run([CHECKER, "--available"], stdout=subprocess.PIPE, text=True, check=True)
    return out.stdout.strip() == "yes"


def run_checker(docs, *args):
    """The C validator's verdicts, one (verdict, why) per document."""
    text = "".join(json.dumps(d) + "\n" for d in docs)
    p = subprocess.run([CHECKER, *args], input=text, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, text=True)
    assert p.returncode == 0, p.stderr
    lines = p.stdout.split("\n")[:-1]
    assert len(lines) == len(docs)
    return [tuple((line.split("\t", 1) + [""])[:2]) for line in lines]


def oracle():
    """Draft4Validator over the schema directory, with two rules made
    those of ocischema.c, which the C comments give the reasons for:
    "integer" is any number without a fractional part (cJSON keeps only
    doubles: 1.0 is 1), and a pattern's $ is the end of the string as in
    ECMA 262 (Python's also matches before a final newline; the schema's
    patterns use $ only as that anchor)."""
    import jsonschema
    from jsonschema import Draft4Validator, validators

    def is_integer(checker, x):
        if isinstance(x, bool):
            return False
        return isinstance(x, int) or (isinstance(x, float) and x.is_integer())

    def pattern(validator, patrn, instance, schema):
        if validator.is_type(instance, "string") and not re.search(
                patrn.replace("$", r"\Z"), instance):
            yield jsonschema.ValidationError("%r does not match %r" % (instance, patrn))

    Validator = validators.extend(
        Draft4Validator, validators={"pattern": pattern},
        type_checker=Draft4Validator.TYPE_CHECKER.redefine("integer", is_integer))
    store = {}
    for name in os.listdir(SCHEMA_DIR):
        if name.endswith(".json"):
            with open(os.path.join(SCHEMA_DIR, name)) as f:
                store["file://%s/%s" % (SCHEMA_DIR, name)] = json.load(f)
    root = store["file://%s/config-schema.json" % SCHEMA_DIR]
    resolver = jsonschema.RefResolver("file://%s/config-schema.json" % SCHEMA_DIR, root,
                                      store=store)
    return Validator(root, resolver=resolver)


def pointer(path):
    """A JSON pointer as ocischema.c writes it in a message."""
    if not path:
        return "(root)"
    out = ""
    for p in path:
        p = str(p)
        p = "".join("\\x%02x" % ord(c) if ord(c) < 0x20 or ord(c) == 0x7f else c for c in p)
        out += "/" + p.replace("~", "~0").replace("/", "~1")
    return out


def error_places(errors):
    """Where jsonschema finds violations, those inside anyOf included."""
    places = set()
    for e in errors:
        places.add(pointer(list(e.absolute_path)))
        places |= error_places(e.context)
    return places


# Every part of the schema, valid: what runc's and bundlectl's configs leave
# out (hooks, devices, resources, seccomp rules, the other platforms).
RICH = {
    "ociVersion": "1.0.2",
    "process": {
        "terminal": False, "consoleSize": {"height": 24, "width": 80},
        "user": {"uid": 1, "gid": 1, "umask": 18, "additionalGids": [5, 6], "username": "u"},
        "args": ["sh", "-c", "true"], "commandLine": "sh", "env": ["A=1"], "cwd": "/",
        "capabilities": {"bounding": ["CAP_KILL"], "effective": ["CAP_KILL"],
                         "inheritable": [], "permitted": ["CAP_KILL"], "ambient": []},
        "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024},
                    {"type": "RLIMIT_CORE", "hard": 18446744073709551615, "soft": 0}],
        "apparmorProfile": "p", "selinuxLabel": "l", "noNewPrivileges": True,
        "oomScoreAdj": -17,
    },
    "root": {"path": "rootfs", "readonly": True},
    "hostname": "h", "domainname": "d",
    "mounts": [{"destination": "/proc", "type": "proc", "source": "proc", "options": ["ro"],
                "uidMappings": [{"containerID": 0, "hostID": 1000, "size": 1}],
                "gidMappings": [{"containerID": 0, "hostID": 1000, "size": 1}]}],
    "hooks": {k: [{"path": "/bin/true", "args": ["true"], "env": ["X=1"], "timeout": 1}]
              for k in ("prestart", "createRuntime", "createContainer", "startContainer",
                        "poststart", "poststop")},
    "annotations": {"org.example.key": "value"},
    "linux": {
        "devices": [{"type": "c", "path": "/dev/fuse", "major": 10, "minor": 229,
                     "fileMode": 438, "uid": 0, "gid": 0}],
        "uidMappings": [{"containerID": 0, "hostID": 100000, "size": 65536}],
        "gidMappings": [{"containerID": 0, "hostID": 100000, "size": 65536}],
        "namespaces": [{"type": "pid"}, {"type": "network", "path": "/proc/1/ns/net"},
                       {"type": "mount"}, {"type": "user"}, {"type": "cgroup"}],
        "resources": {
            "unified": {"memory.high": "max"},
            "devices": [{"allow": False, "access": "rwm"},
                        {"allow": True, "type": "c", "major": 10, "minor": 229,
                         "access": "rw"}],
            "pids": {"limit": 32768},
            "blockIO": {"weight": 10, "leafWeight": 10,
                        "weightDevice": [{"major": 8, "minor": 0, "weight": 500,
                                          "leafWeight": 300}],
                        "throttleReadBpsDevice": [{"major": 8, "minor": 0, "rate": 600}],
                        "throttleWriteBpsDevice": [{"major": 8, "minor": 0, "rate": 600}],
                        "throttleReadIOPSDevice": [{"major": 8, "minor": 0, "rate": 60}],
                        "throttleWriteIOPSDevice": [{"major": 8, "minor": 0, "rate": 60}]},
            "cpu": {"cpus": "0-3", "mems": "0", "period": 100000, "quota": -1, "burst": 0,
                    "realtimePeriod": 0, "realtimeRuntime": 0, "shares": 1024, "idle": 0},
            "hugepageLimits": [{"pageSize": "2MB", "limit": 209715200}],
            "memory": {"kernel": -1, "kernelTCP": -1, "limit": 536870912,
                       "reservation": 0, "swap": -1, "swappiness": 0,
                       "disableOOMKiller": False, "useHierarchy": True,
                       "checkBeforeUpdate": False},
            "network": {"classID": 1048577, "priorities": [{"name": "eth0", "priority": 5}]},
            "rdma": {"mlx5_1": {"hcaHandles": 3, "hcaObjects": 10000}},
        },
        "cgroupsPath": "/c", "rootfsPropagation": "slave",
        "seccomp": {"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 1,
                    "flags": ["SECCOMP_FILTER_FLAG_LOG"], "listenerPath": "/l",
                    "listenerMetadata": "m", "architectures": ["SCMP_ARCH_X86_64"],
                    "syscalls": [{"names": ["read", "write"], "action": "SCMP_ACT_ALLOW",
                                  "errnoRet": 1,
                                  "args": [{"index": 0, "value": 1, "valueTwo": 2,
                                            "op": "SCMP_CMP_MASKED_EQ"}]}]},
        "sysctl": {"net.ipv4.ip_forward": "1"},
        "maskedPaths": ["/proc/kcore"], "readonlyPaths": ["/proc/sys"],
        "mountLabel": "m",
        "intelRdt": {"closID": "c", "l3CacheSchema": "L3:0=ff", "memBwSchema": "MB:0=70",
                     "enableCMT": True, "enableMBM": False},
        "personality": {"domain": "LINUX32", "flags": []},
    },
    "solaris": {"milestone": "m", "limitpriv": "l", "maxShmMemory": "1",
                "cappedCPU": {"ncpus": "2"}, "cappedMemory": {"physical": "1", "swap": "1"},
                "anet": [{"linkname": "net0", "lowerLink": "e", "allowedAddress": "a",
                          "configureAllowedAddress": "true", "defrouter": "d",
                          "macAddress": "m", "linkProtection": "p"}]},
    "windows": {"layerFolders": ["C:\\l"], "devices": [{"id": "x", "idType": "class"}],
                "resources": {"memory": {"limit": 1}, "cpu": {"count": 1, "shares": 1,
                                                              "maximum": 1},
                              "storage": {"iops": 1, "bps": 1, "sandboxSize": 1}},
                "network": {"endpointList": ["e"], "allowUnqualifiedDNSQuery": True,
                            "DNSSearchList": ["a"], "networkSharedContainerName": "n",
                            "networkNamespace": "n"},
                "credentialSpec": {}, "servicing": False, "ignoreFlushesDuringBoot": True,
                "hyperv": {"utilityVMPath": "p"}},
    "vm": {"hypervisor": {"path": "/h", "parameters": ["-x"]},
           "kernel": {"path": "/k", "parameters": ["q"], "initrd": "/i"},
           "image": {"path": "/img", "format": "raw"}},
    "zos": {"devices": [{"type": "b", "path": "/dev/b", "major": 1, "minor": 2,
                         "fileMode": 420, "uid": 0, "gid": 0}]},
}


def base_configs(tmp_path):
    """Valid configs to mutate: runc's (root and rootless), bundlectl's, RICH;
    and buildContainer's, which is not valid ("options": null)."""
    docs = [RICH]
    for args in ([], ["--rootless"]):
        d = tmp_path / ("runc" + "".join(args))
        d.mkdir()
        subprocess.run(["runc", "spec", *args], cwd=d, check=True)
        docs.append(json.loads((d / "config.json").read_text()))
    spec = write_spec(
        tmp_path,
        "[plain]\nargs = %s/bin/hello\n"
        "[full]\nargs = %s/bin/hello --x 'two words'\nreadonly = true\n"
        "env = A=1\nenv = PATH=/bin\ncwd = /data/work\nhostname = box\nuser = 1000:100,10\n"
        "terminal = true\nmount = /data bind /srv/data rbind,ro\nmount = /tmp tmpfs tmpfs\n"
        "[compat]\ncompat = buildcontainer\nargs = %s/bin/hello\nmount = /d bind /s\n"
        % (SP, SP, SP))
    for name in ("plain", "full"):
        docs.append(json.loads(bundlectl("config", spec, name).stdout))
    return docs, json.loads(bundlectl("config", spec, "compat").stdout)


STRINGS = ["", "x", "/", "RLIMIT_NOFILE", "RLIMIT_nofile", "RLIMIT_", "RLIMIT_CPU\n",
           " RLIMIT_CPU", "2MB", "0MB", "2mb", "1GB", "12KB", "c", "b", "u", "p", "cb", "C",
           "MB:", "MB:0=70", "MB:0=1\n", "mb:0", "mount", "pid", "network", "time", "uts",
           "private", "rshared", "slave", "LINUX", "LINUX32", "linux", "SCMP_ACT_ALLOW",
           "SCMP_ACT_FOO", "SCMP_ARCH_X86_64", "SCMP_ARCH_Z80", "SCMP_CMP_EQ", "SCMP_CMP",
           "SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_X", "qcow2", "qcow", "raw", "class",
           "klass", "\u00e9", "a\tb", "CAP_KILL"]
# Numbers whose value a double holds exactly, so that both validators see the
# same one (ocischema.c compares doubles: beyond 2^53 neighbours are one).
NUMBERS = [0, 1, -1, 5, 100, 101, 127, 128, 255, 256, 420, 512, 513, 1024, 32767, 65535, 65536,
           2**31 - 1, 2**31, -2**31, -2**31 - 1, 2**32 - 1, 2**32, 2**53, -2**53,
           2**63 - 1, -2**63, 2**64 - 1, 1.5, -0.5, 2.0, 1e3, 0.0]
KEYS = ["x", "extra", "a/b", "~k", "", "\n", "path", "type", "destination", "major", "minor",
        "limit", "names", "domain", "cwd", "uid", "io.weight", "mlx5_0", "kernel", "format",
        "layerFolders", "allow", "index", "op", "pageSize", "ociVersion"]


def random_value(rng, depth=0):
    kind = rng.randrange(8 if depth < 2 else 5)
    if kind == 0:
        return rng.choice(STRINGS)
    if kind == 1:
        return rng.choice(NUMBERS)
    if kind == 2:
        return rng.choice([True, False])
    if kind == 3:
        return None
    if kind == 4:
        return rng.choice([[], {}])
    if kind == 5:
        return [random_value(rng, depth + 1) for _ in range(rng.randrange(1, 3))]
    if kind == 6:
        return {rng.choice(KEYS): random_value(rng, depth + 1) for _ in range(rng.randrange(1, 3))}
    return copy.deepcopy(rng.choice([RICH["linux"]["devices"][0], RICH["mounts"][0],
                                     RICH["linux"]["resources"]["blockIO"]["weightDevice"][0],
                                     {"type": "pid"}, {"path": "/bin/true"}]))


def places(doc):
    """Every (container, key) in doc: where a value can be changed."""
    out = []
    if isinstance(doc, dict):
        for k, v in doc.items():
            out.append((doc, k))
            out += places(v)
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            out.append((doc, i))
            out += places(v)
    return out


def mutate(rng, doc):
    """One random change somewhere in doc (in place)."""
    spots = places(doc)
    parent, key = rng.choice(spots)
    value = parent[key]
    op = rng.randrange(7)
    if op == 0:  # a member or an item gone (perhaps a required one)
        del parent[key]
    elif op == 1:  # another value, of any type
        parent[key] = random_value(rng)
    elif op == 2 and isinstance(value, str):  # a string nearly right
        parent[key] = rng.choice([value + rng.choice(["x", "\n", "_", "1", "B"]), value.lower(),
                                  value.upper(), value[1:], rng.choice(STRINGS)])
    elif op == 3 and isinstance(value, (int, float)) and not isinstance(value, bool):
        parent[key] = rng.choice(NUMBERS)
    elif op == 4 and isinstance(value, dict):  # a member more
        value[rng.choice(KEYS)] = random_value(rng)
    elif op == 5 and isinstance(value, list):
        rng.choice([lambda: value.clear(),
                    lambda: value.append(random_value(rng)),
                    lambda: value.extend(value[:1])])()
    else:
        parent[key] = rng.choice(STRINGS + NUMBERS + [None, True, [], {}])


@pytest.fixture(scope="module")
def checker():
    if not os.path.exists(os.path.join(SCHEMA_DIR, "config-schema.json")):
        pytest.skip("no runtime-spec schema in " + SCHEMA_DIR)
    if not schema_in_build():
        pytest.skip("the build has no schema compiled in (BUNDLEFS_OCI_SCHEMA=OFF?)")
    return CHECKER


def test_schema_compiled_in_where_installed():
    if cmake_cache("BUNDLEFS_OCI_SCHEMA") != "ON" or cmake_cache(
            "BUNDLEFS_OCI_SCHEMA_DIR") != SCHEMA_DIR:
        pytest.skip("the build was configured with another schema, or none")
    assert schema_in_build() == os.path.exists(os.path.join(SCHEMA_DIR, "config-schema.json"))


def test_random_configs_agree_with_jsonschema(tmp_path, checker):
    print("seed %d (BUNDLEFS_OCISCHEMA_SEED=%d repeats this run)" % (SEED, SEED))
    rng = random.Random(SEED)
    validator = oracle()
    bases, compat = base_configs(tmp_path)
    for b in bases:
        assert validator.is_valid(b), list(validator.iter_errors(b))
    assert not validator.is_valid(compat)
    docs = bases + [compat]
    while len(docs) < DOCS:
        d = copy.deepcopy(rng.choice(bases))
        for _ in range(rng.choice([1, 1, 1, 2, 3])):
            if d == {} or d == []:
                break
            mutate(rng, d)
        docs.append(d)
    verdicts = run_checker(docs)
    disagree = []
    wrong_place = []
    nvalid = 0
    for i, (doc, (verdict, why)) in enumerate(zip(docs, verdicts)):
        errors = list(validator.iter_errors(doc))
        nvalid += not errors
        if verdict != ("invalid" if errors else "valid"):
            disagree.append((i, verdict, why, [e.message for e in errors][:3]))
            continue
        if errors:
            where = why.split(": ", 1)[0]
            if where not in error_places(errors):
                wrong_place.append((i, why, sorted(error_places(errors))))
    print("%d documents: %d valid, %d invalid" % (len(docs), nvalid, len(docs) - nvalid))
    assert not disagree, "seed %d: %d of %d verdicts differ, the first: %s\n%s" % (
        SEED, len(disagree), len(docs), disagree[0], json.dumps(docs[disagree[0][0]]))
    assert not wrong_place, "seed %d: a violation where jsonschema sees none: %s\n%s" % (
        SEED, wrong_place[0], json.dumps(docs[wrong_place[0][0]]))
    # both verdicts are common, or the comparison proves little
    assert 0.15 * len(docs) < nvalid < 0.85 * len(docs)


def test_unknown_keyword_refused(tmp_path, checker):
    # A schema with a keyword the validator does not implement fails every
    # check, saying where, instead of being applied without it; the same
    # files unchanged pass.
    schema = tmp_path / "schema"
    shutil.copytree(SCHEMA_DIR, schema)
    docs = [{"ociVersion": "1.0.2", "process": {"cwd": "/", "args": ["a", "a"]}},
            {"ociVersion": 1}]
    assert run_checker(docs, "--schema-dir", str(schema)) == [
        ("valid", ""), ("invalid", "/ociVersion: 1 is not a string")]
    defs = json.loads((schema / "defs.json").read_text())
    defs["definitions"]["ArrayOfStrings"]["uniqueItems"] = True
    (schema / "defs.json").write_text(json.dumps(defs))
    want = ("invalid", 'schema: defs.json#/definitions/ArrayOfStrings: keyword "uniqueItems" '
            "is not supported")
    assert run_checker(docs, "--schema-dir", str(schema)) == [want, want]


def configure(tmp_path, *args):
    build = tmp_path / "build"
    return subprocess.run(["cmake", "-S", ROOT, "-B", str(build), "-DBUILD_TESTING=OFF",
                           "-DBUNDLEFS_MAN=OFF", *args],
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


@pytest.mark.parametrize("how,says", [
    ("off", "OCI runtime-spec schema not used (BUNDLEFS_OCI_SCHEMA=OFF): config.json is not "
            "checked"),
    ("absent", "OCI runtime-spec schema not found in /nonexistent/schema "
               "(golang-github-opencontainers-specs-dev has it): config.json is not checked"),
])
def test_build_without_schema(tmp_path, how, says):
    arg = ("-DBUNDLEFS_OCI_SCHEMA=OFF" if how == "off"
           else "-DBUNDLEFS_OCI_SCHEMA_DIR=/nonexistent/schema")
    p = configure(tmp_path, arg)
    assert p.returncode == 0, p.stdout
    assert "-- " + says + "\n" in p.stdout
    data = tmp_path / "build" / "common" / "ocischema-data.c"
    assert "const size_t ocischema_nembedded = 0;" in data.read_text()
    # The validator built with it: no schema, every document passes.
    exe = tmp_path / "check"
    subprocess.run(["cc", "-std=gnu11", "-D_GNU_SOURCE", "-I", os.path.join(ROOT, "common"), "-o", str(exe),
                    os.path.join(ROOT, "tests", "ocischema_check.c"),
                    os.path.join(ROOT, "common", "ocischema.c"),
                    os.path.join(ROOT, "common", "util.c"), str(data), "-lcjson", "-lm",
                    "-lpthread"], check=True)
    out = subprocess.run([str(exe), "--available"], stdout=subprocess.PIPE, text=True,
                         check=True).stdout
    assert out == "no\n"
    out = subprocess.run([str(exe)], input='{}\n[1]\n', stdout=subprocess.PIPE, text=True,
                         check=True).stdout
    assert out == "valid\nvalid\n"


def test_configure_refuses_incomplete_schema(tmp_path):
    if not os.path.exists(os.path.join(SCHEMA_DIR, "config-schema.json")):
        pytest.skip("no runtime-spec schema in " + SCHEMA_DIR)
    schema = tmp_path / "schema"
    shutil.copytree(SCHEMA_DIR, schema)
    (schema / "defs-vm.json").unlink()
    p = configure(tmp_path, "-DBUNDLEFS_OCI_SCHEMA_DIR=%s" % schema)
    assert p.returncode != 0
    said = " ".join(p.stdout.split())  # (CMake wraps long lines)
    assert "%s: the schema refers to defs-vm.json, which is not there" % schema in said
