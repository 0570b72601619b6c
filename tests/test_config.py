# config.json: `bundlectl config` must print the bytes that nixpkgs'
# buildContainer writes. The expected bytes come from the real Nix
# evaluator (nix-instantiate) running buildContainer's expression
# (tests/data/buildcontainer.nix), not from bundlefs.
import json
import os
import subprocess

import pytest

from conftest import HERE, bundlectl, write_spec

H = "0123456789abcdfghijklmnpqrsvwxyz"
SP = "/nix/store/" + H + "-hello-2.12"


def nix_config(tmp_path, params):
    pfile = tmp_path / "params.json"
    pfile.write_text(json.dumps(params))
    expr = "import %s (builtins.fromJSON (builtins.readFile %s))" % (
        os.path.join(HERE, "data", "buildcontainer.nix"),
        pfile,
    )
    out = subprocess.run(
        ["nix-instantiate", "--eval", "--strict", "--json", "-E", expr],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, check=True,
    )
    # --json prints the string value as a JSON string: decode it once.
    return json.loads(out.stdout).encode()


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
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_config_bytes_equal_buildcontainer(tmp_path, case):
    body, params = CASES[case]
    spec = write_spec(tmp_path, "[b]\n" + body)
    got = bundlectl("config", spec, "b").stdout
    assert got == nix_config(tmp_path, params)


@pytest.mark.parametrize("case", sorted(CASES))
def test_json_spec_gives_same_config(tmp_path, case):
    _, params = CASES[case]
    spec = write_spec(tmp_path, json.dumps({"b": params}), "spec.json")
    got = bundlectl("config", spec, "b").stdout
    assert got == nix_config(tmp_path, params)


def test_user_mounts_are_honoured(tmp_path):
    # buildContainer drops `mounts`; bundlefs merges them over the system
    # mounts by destination (here replacing /proc and /dev/shm).
    mounts = {
        "/data": {"type": "bind", "source": "/srv/data", "options": ["rbind", "ro"]},
        "/proc": {"type": "proc", "source": "proc", "options": ["nosuid"]},
        "/dev/shm": {"type": "tmpfs", "source": "tmpfs"},
        "/a/b/c": {"type": "tmpfs", "source": "tmpfs", "options": []},
    }
    params = {"args": [SP + "/bin/hello"], "mounts": mounts}
    conf = write_spec(
        tmp_path,
        "[b]\nargs = %s/bin/hello\n"
        "mount = /data bind /srv/data rbind,ro\n"
        "mount = /proc proc proc nosuid\n"
        "mount = /dev/shm tmpfs tmpfs\n"
        "mount = /a/b/c tmpfs tmpfs ''\n" % SP,
    )
    js = write_spec(tmp_path, json.dumps({"b": params}), "spec.json")
    want = nix_config(tmp_path, params)
    assert bundlectl("config", js, "b").stdout == want
    doc = json.loads(want)
    assert [m["destination"] for m in doc["mounts"]] == sorted(
        ["/a/b/c", "/data", "/dev", "/dev/mqueue", "/dev/pts", "/dev/shm", "/proc", "/sys",
         "/sys/fs/cgroup"])
    # spec.conf says the same, except that it has no way to write an empty
    # option list: one empty word is an error, not [].
    conf3 = write_spec(tmp_path, "".join(open(conf).readlines()[:5]), "three.conf")
    del mounts["/a/b/c"]
    assert bundlectl("config", conf3, "b").stdout == nix_config(tmp_path, params)
    p = bundlectl("config", conf, "b", check=False)
    assert p.returncode == 2 and b"spec.conf:6: empty mount option" in p.stderr


def test_pretty_is_the_same_document(tmp_path):
    spec = write_spec(tmp_path, "[b]\nargs = %s/bin/hello x\nmount = /d bind /s\n" % SP)
    compact = bundlectl("config", spec, "b").stdout
    pretty = bundlectl("config", "--pretty", spec, "b").stdout
    assert b"\n" in pretty and b"\n" not in compact
    assert json.loads(pretty) == json.loads(compact)
