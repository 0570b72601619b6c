# Bad input: every malformed spec gets FILE:LINE: message and exit status
# 2 from bundlectl and bundlefs alike, and nothing else happens (nothing
# mounted, nothing written).
import os
import random
import re
import subprocess

import pytest

from conftest import BUNDLEFS, HERE, bundlectl, is_mounted

BAD = os.path.join(HERE, "specs", "bad")
GOOD = os.path.join(HERE, "specs", "good")

# file -> (line, what the first message says). A problem inside a bundle
# names the bundle and the key (its name in the spec's syntax): a JSON spec
# written by Nix is one line.
EXPECTED = {
    "unknown-key.conf": ("3", 'bundle "a": unknown key "colour"'),
    "duplicate-key.conf": ("4", 'bundle "a": readonly: duplicate key (first at line 3)'),
    "duplicate-bundle.conf": ("4", 'duplicate bundle "a" (first at line 1)'),
    "bad-name.conf": ("1", '"my bundle": bad bundle name'),
    "dotdot-name.conf": ("1", '"..": bad bundle name'),
    "long-name.conf": ("1", "bundle name is longer than 255 bytes"),
    "missing-args.conf": ("1", 'bundle "a": args: missing'),
    "empty-args.conf": ("2", 'bundle "a": args: is empty'),
    "unterminated-quote.conf": ("2:18", 'bundle "a": args: unterminated single quote'),
    "bad-boolean.conf": ("3", 'bundle "a": readonly: expected true or false, not "yes"'),
    "terminal-yes.conf": ("3", 'bundle "a": terminal: expected true or false, not "yes"'),
    "not-a-store-path.conf": ("3", 'bundle "a": paths: "/usr/bin" is not a store path'),
    "crlf.conf": ("1", "CRLF line ending"),
    "nul.conf": ("2:15", "NUL byte"),
    "long-line.conf": ("3", "line is longer than 64 KiB"),
    "bad-mount.conf": ("3", 'bundle "a": mount: destination "relative" is not an absolute path'),
    "json-mount-relative.json": (
        "2:14", 'bundle "a": mounts: destination "data" is not an absolute path'),
    "covers-store.conf": (
        "3", 'bundle "a": mount: destination "/nix" covers the store directory /nix/store'),
    "json-covers-store.json": (
        "2:64", 'bundle "a": mounts: destination "/nix" covers the store directory /nix/store'),
    "json-mount-no-type.json": ("2:23", 'bundle "a": mounts: "/data": needs a type'),
    "json-mount-options-string.json": (
        "2:74", 'bundle "a": mounts: "/data": options: expected an array of strings, not string'),
    "cwd-relative.conf": ("3", 'bundle "a": cwd: "srv/app" is not an absolute path'),
    "cwd-dotdot.conf": ("3", 'bundle "a": cwd: "/../.." is not normalized'),
    "cwd-in-store.conf": ("3", 'bundle "a": cwd: "/nix/store/app" is in the store directory'),
    "json-cwd.json": ("2:10", 'bundle "a": cwd: "/srv//app" is not normalized'),
    "env-no-equals.conf": ("4", 'bundle "a": env: expected NAME=VALUE'),
    "json-env-string.json": ("2:10", 'bundle "a": env: expected an array of strings, not string'),
    "user-name.conf": ("3", 'bundle "a": user: expected UID:GID or UID:GID,GID,... (numbers), '
                       'not "nobody"'),
    "bad-hostname.conf": ("3", 'bundle "a": hostname: expected 1 to 64 letters, digits'),
    "data-nfs.conf": ("3", 'bundle "a": data: expected native, fuse or bind, not "nfs"'),
    "compat-docker.conf": ("3", 'bundle "a": compat: expected oci or buildcontainer, not "docker"'),
    "json-os-number.json": ("2:9", 'bundle "a": os: expected a string, not number'),
    "key-outside-section.conf": ("1", '"args" outside of a [bundle] section'),
    "invalid-utf8.conf": ("2:18", "invalid UTF-8"),
    "bad-json.json": ("1:30", "expected a string key"),
    "deep.json": ("1:22", "nesting deeper than 16 levels"),
    "json-duplicate.json": ("2:2", 'duplicate key "a"'),
    "json-unknown-key.json": ("2:3", 'bundle "a": unknown key "mount"'),
    "json-args-type.json": ("1:16", 'bundle "a": args: expected an array of strings, not string'),
    "json-bad-path.json": ("2:13", 'bundle "a": paths: "/nix/store/short" is not a store path'),
}

MSG = re.compile(r"^(?P<file>[^:]+):(?P<pos>\d+(:\d+)?): (?P<msg>.+)$")


def check_messages(path, stderr, pos=None, what=None):
    lines = stderr.decode("utf-8", "replace").splitlines()
    assert lines, "no message"
    for line in lines:
        m = MSG.match(line)
        assert m and m.group("file") == path, "not FILE:LINE: %r" % line
    first = MSG.match(lines[0])
    if pos:
        assert first.group("pos") == pos, lines[0]
        assert first.group("msg").startswith(what), lines[0]


def test_corpus_is_complete():
    assert sorted(os.listdir(BAD)) == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_bundlectl_rejects(name):
    path = os.path.join(BAD, name)
    p = bundlectl("check", path, check=False)
    assert p.returncode == 2
    assert p.stdout == b""
    check_messages(path, p.stderr, *EXPECTED[name])


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_bundlefs_rejects_and_mounts_nothing(tmp_path, name):
    path = os.path.join(BAD, name)
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    p = subprocess.run([BUNDLEFS, str(mnt), path], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=30)
    assert p.returncode == 2
    check_messages(path, p.stderr, *EXPECTED[name])
    assert not is_mounted(mnt)
    assert os.listdir(mnt) == []


@pytest.mark.parametrize("name", sorted(os.listdir(GOOD)))
def test_good_specs_parse(name):
    path = os.path.join(GOOD, name)
    bundle = "hello" if "full" not in name else "web"
    p = bundlectl("config", path, bundle)
    assert p.stdout.startswith(b'{"linux":')


def test_random_bytes(tmp_path):
    rnd = random.Random(7)
    for i in range(20):
        path = tmp_path / ("random%d.conf" % i)
        path.write_bytes(bytes(rnd.randrange(256) for _ in range(rnd.randrange(1, 5000))))
        p = bundlectl("check", str(path), check=False)
        assert p.returncode == 2
        check_messages(str(path), p.stderr)


def test_ten_megabytes_of_garbage(tmp_path):
    path = tmp_path / "big.conf"
    rnd = random.Random(1)
    path.write_bytes(rnd.randbytes(10 << 20))
    p = bundlectl("check", str(path), check=False)
    assert p.returncode == 2
    check_messages(str(path), p.stderr)
    # the report is bounded, however bad the input
    assert len(p.stderr.splitlines()) <= 201
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    p = subprocess.run([BUNDLEFS, str(mnt), str(path)], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=60)
    assert p.returncode == 2
    check_messages(str(path), p.stderr)
    assert not is_mounted(mnt) and os.listdir(mnt) == []


def test_valid_ten_megabyte_spec_is_fine(tmp_path):
    # Size alone is no error below the limit: 30,000 bundles.
    path = tmp_path / "many.conf"
    path.write_text("".join("[b%d]\nargs = /bin/true %s\n" % (i, "x" * 300) for i in range(30000)))
    assert path.stat().st_size > 9 << 20
    p = bundlectl("config", str(path), "b29999")
    assert b'"/bin/true"' in p.stdout


def test_file_over_16_mib(tmp_path):
    path = tmp_path / "huge.conf"
    path.write_text("# " + "x" * (17 << 20) + "\n")
    p = bundlectl("check", str(path), check=False)
    assert p.returncode == 2
    assert p.stderr.decode() == "%s:1: the spec is larger than the 16 MiB allowed\n" % path


def test_missing_spec_file(tmp_path):
    p = bundlectl("check", str(tmp_path / "nope.conf"), check=False)
    assert p.returncode == 2
    assert p.stderr.decode() == "%s: No such file or directory\n" % (tmp_path / "nope.conf")


def test_known_keys_are_those_of_keys_json(tmp_path):
    # The parser's table is generated from nix/keys.json, the description
    # nix/bundlefs.nix reads too: an unknown key lists exactly its keys,
    # by their name in each syntax.
    import json
    with open(os.path.join(os.path.dirname(HERE), "nix", "keys.json")) as f:
        keys = json.load(f)["keys"]
    for name, text, field in (
            ("spec.conf", "[a]\nargs = /x\ncolour = red\n", "conf"),
            ("spec.json", '{"a": {"args": ["/x"], "colour": "red"}}', "name")):
        path = tmp_path / name
        path.write_text(text)
        p = bundlectl("check", str(path), check=False)
        assert p.returncode == 2
        known = re.search(r"\(known: (.*)\)", p.stderr.decode()).group(1).split(", ")
        assert known == [k[field] for k in keys]


def test_a_spec_that_is_not_a_regular_file_says_so(tmp_path):
    fifo = tmp_path / "spec.conf"
    os.mkfifo(fifo)
    p = bundlectl("check", str(fifo), check=False, timeout=20)
    assert p.returncode == 2
    assert p.stderr.decode() == "%s: not a regular file\n" % fifo


@pytest.mark.parametrize("syntax", ["conf", "json"])
def test_eighty_thousand_env_lines_in_bounded_memory(tmp_path, tiny, syntax):
    # Each item used to copy the list so far: 20,000 took 8.7 s and 1.6 GB,
    # 80,000 ran out of memory. (Time is the benchmark's business: here
    # the memory of a check of 1.9 MB of env lines, and that it ends.)
    import json
    import resource
    env = ["V%d=%s" % (i, "x" * 10) for i in range(80000)]
    if syntax == "conf":
        text = "[a]\nargs = %s/bin/sh\n" % tiny + "".join("env = %s\n" % e for e in env)
    else:
        text = json.dumps({"a": {"args": [tiny + "/bin/sh"], "env": env}})
    spec = tmp_path / ("spec." + syntax)
    spec.write_text(text)
    # At most 256 MiB of address space (it needs some 30).
    limit = 256 << 20
    p = subprocess.run([os.path.join(os.environ["BUNDLEFS_BUILD"], "tools", "bundlectl"),
                        "check", str(spec)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=120,
                       preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_AS, (limit, limit)))
    assert p.returncode == 0, p.stderr
    assert p.stdout.decode().endswith("1 bundle OK\n"), p.stdout
