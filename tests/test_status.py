# `bundlectl status`: the status document has exactly the fields that
# bundlectl(1) lists (STATUS DOCUMENT), each of the type it says, in every
# state of the mount and of its bundles; the field list is read from the
# man page, so that the page and the daemon cannot drift apart. And the
# human form shows what is new in it.
import json
import os
import re
import subprocess
import threading
import uuid

from conftest import ROOT, STORE, bundlectl, wait_for, write_spec

MAN = os.path.join(ROOT, "docs", "man", "bundlectl.1.scd")

TYPES = {"number": (int, float), "string": str, "boolean": bool, "object": dict}


def documented():
    """{field: type} as the man page's STATUS DOCUMENT section lists them:
    `*bundles[].writable_root.upper* (string)`, `*mounted* (number or null)`."""
    section = open(MAN).read().split("\n# STATUS DOCUMENT\n")[1].split("\n# ")[0]
    fields = dict(re.findall(r"^\*([a-z_.\[\]]+)\* \(([a-z ]+)\)$", section, re.M))
    assert "bundles[].writable_root.in_use" in fields and "problems[].kind" in fields, fields
    return fields


FIELDS = documented()


def children(parent):
    """The names documented directly in object `parent` ("" the top)."""
    out = set()
    for f in FIELDS:
        p, _, name = f.rpartition(".")
        if p == parent:
            out.add(name)
    return out


def check_object(obj, path, where):
    assert isinstance(obj, dict), (where, obj)
    assert set(obj) == children(path), (where, set(obj) ^ children(path))
    for key, value in obj.items():
        field = path + "." + key if path else key
        check_value(value, field, FIELDS[field], where + "." + key)


def check_value(value, field, kind, where):
    if kind.endswith(" or null"):
        if value is None:
            return
        kind = kind[:-len(" or null")]
    assert value is not None, (where, "null, documented as " + kind)
    if kind.startswith("array of "):
        assert isinstance(value, list), (where, value)
        of = kind[len("array of "):]
        for i, item in enumerate(value):
            w = "%s[%d]" % (where, i)
            if of == "strings":
                assert isinstance(item, str), (w, item)
            elif of == "problems":
                check_object(item, "problems[]", w)
            else:
                check_object(item, field + "[]", w)
        return
    assert isinstance(value, TYPES[kind]) and not (kind == "number" and isinstance(value, bool)), (
        where, value, kind)
    if kind == "object":
        check_object(value, field, where)


def check_document(doc):
    """Every documented field, no other, each of its documented type; and
    what holds in every state."""
    check_object(doc, "", "status")
    assert doc["version"] == 1
    kinds = {"spec", "resolve", "substitute", "writable-root"}
    states = {"unresolved", "resolving", "ready", "retrying", "failed"}
    everyone = list(doc["last_reload"]["problems"])
    for b in doc["bundles"]:
        assert b["state"] in states
        assert all(p["bundle"] == b["name"] for p in b["problems"])
        everyone += b["problems"]
        # A closure's numbers are all known, or none.
        known = [b[k] is not None for k in ("paths", "bytes", "local", "realising", "missing")]
        assert all(known) or not any(known), b
        assert (b["writable_root"] is None) == b["readonly"]
    assert doc["problems"] == everyone
    assert all(p["kind"] in kinds for p in everyone)
    assert all(p["bundle"] is None and p["kind"] == "spec"
               for p in doc["last_reload"]["problems"])
    return doc


def status(m):
    return check_document(json.loads(bundlectl("status", "--json", m.mountpoint).stdout))


def bundles(doc):
    return {b["name"]: b for b in doc["bundles"]}


def busybox(nix, tiny):
    return [p for p in nix.closure(tiny) if p.endswith("-busybox")][0]


def start_detached(runc, bundle):
    """A container that sleeps, started in the background."""
    cid = "bfs-" + uuid.uuid4().hex[:12]
    runc.ids.append(cid)
    subprocess.run(["runc", "--root", runc.root, "run", "-d", "-b", bundle, cid], check=True,
                   stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                   timeout=60)
    return cid


def test_the_document_in_every_state(tmp_path, mount, runc, nix, tiny, app):
    bb = busybox(nix, tiny)
    gone = STORE + "/" + "7" * 32 + "-gone"
    sleep = "args = %s/bin/sh -c 'sleep 60'\n" % bb
    body = ("[idle]\nargs = %s/bin/sh\nreadonly = true\n"
            "[ok]\nargs = %s/bin/app\nreadonly = true\n"
            "[gone]\nargs = %s/bin/x\nreadonly = true\n"
            "[badclosure]\nargs = %s/bin/sh\nclosure = %s\n"
            "[r]\n%sreadonly = true\n"
            "[w]\n%s" % (tiny, app, gone, tiny, tmp_path, sleep, sleep))
    spec = write_spec(tmp_path, body)
    state = str(tmp_path / "state")
    m = mount(spec, "--state-dir", state)

    # Fresh: nothing resolved, no reload yet.
    st = status(m)
    assert st["bundlefs"] and st["pid"] == m.proc.pid and st["supervisor"]
    assert st["mountpoint"] == m.mountpoint and st["spec"] == spec and st["state_dir"] == state
    assert st["generation"] == 1 and st["problems"] == []
    assert st["last_reload"] == {"at": None, "ok": None, "generation": None, "problems": []}
    b = bundles(st)
    assert {x["state"] for x in b.values()} == {"unresolved"}
    assert b["idle"]["paths"] is None and b["idle"]["writable_root"] is None
    assert b["idle"]["in_use"] is False
    upper = b["w"]["writable_root"]["upper"]
    assert upper.startswith(state + "/") and upper.endswith("/w/upper")
    assert b["w"]["writable_root"] == {"upper": upper, "mounted": False, "in_use": False}
    serials = {x["serial"] for x in b.values()}
    assert len(serials) == 6
    assert os.path.realpath(m.path("ok")) == os.path.join(m.mountpoint, ".bundlefs",
                                                          str(b["ok"]["serial"]))

    # Ready, retrying (a store path missing), failed (a closure file that
    # is a directory).
    os.listdir(m.path("ok", "rootfs") + STORE)
    for name in ("gone", "badclosure"):
        try:
            os.listdir(m.path(name, "rootfs"))
            raise AssertionError(name + " resolved")
        except OSError:
            pass
    st = status(m)
    b = bundles(st)
    assert b["ok"]["state"] == "ready" and b["ok"]["paths"] == len(nix.closure(app))
    assert b["ok"]["local"] == b["ok"]["paths"] and b["ok"]["missing"] == 0
    assert b["ok"]["problems"] == []
    assert b["gone"]["state"] == "retrying" and b["gone"]["paths"] is None
    assert b["gone"]["problems"] == [{
        "bundle": "gone", "kind": "resolve",
        "message": '%s:8: bundle "gone": args: %s: missing from the store' % (spec, gone)}]
    assert b["badclosure"]["state"] == "failed" and b["badclosure"]["paths"] is None
    assert b["badclosure"]["problems"] == [{
        "bundle": "badclosure", "kind": "resolve",
        "message": "%s:12: bundle \"badclosure\": closure file %s: Is a directory"
                   % (spec, tmp_path)}]
    assert [p["bundle"] for p in st["problems"]] == ["badclosure", "gone"]

    # Containers on a read-only bundle and on a writable one (its first
    # use mounts its writable root): both in use, until they end.
    assert not os.path.exists(upper)
    cr, cw = start_detached(runc, m.path("r")), start_detached(runc, m.path("w"))
    st = status(m)
    b = bundles(st)
    assert b["r"]["in_use"] is True and b["r"]["state"] == "ready"
    assert b["w"]["in_use"] is True
    assert b["w"]["writable_root"] == {"upper": upper, "mounted": True, "in_use": True}
    assert os.path.isdir(upper)
    assert b["idle"]["in_use"] is False and b["ok"]["in_use"] is False
    human = bundlectl("status", m.mountpoint).stdout.decode()
    assert "state dir %s\n" % state in human
    rows = {l.split()[0]: l.split() for l in human.split("\n\n", 1)[1].splitlines()
            if not l.startswith(" ")}
    assert rows["BUNDLE"][-4:] == ["DATA", "IN", "USE", "ROOT"]
    assert rows["r"][-3] == ("native" if b["r"]["data"]["path"] == "native" else "fuse")
    assert rows["r"][-2:] == ["yes", "ro"] and rows["w"][-3:] == ["yes", "rw", "mounted"]
    assert rows["idle"][-2:] == ["no", "ro"] and rows["badclosure"][-3:] == ["no", "rw", "unmounted"]
    for cid in (cr, cw):
        subprocess.run(["runc", "--root", runc.root, "delete", "-f", cid], check=True)
    wait_for(lambda: not any(x["in_use"] for x in status(m)["bundles"]), "still in use")
    assert bundles(status(m))["w"]["writable_root"] == {
        "upper": upper, "mounted": True, "in_use": False}

    # A reload with problems changes nothing, and says why.
    with open(spec, "a") as f:
        f.write("[broken]\nreadonly = maybe\n")
    assert bundlectl("reload", m.mountpoint, check=False).returncode == 2
    st = status(m)
    rl = st["last_reload"]
    assert rl["ok"] is False and rl["generation"] == 1 and rl["at"] >= st["started"]
    assert [p["message"] for p in rl["problems"]] == [
        '%s:19: bundle "broken": readonly: expected true or false, not "maybe"' % spec,
        '%s:18: bundle "broken": args: missing (every bundle has one)' % spec]
    assert st["problems"][:2] == rl["problems"] and len(st["problems"]) == 4
    assert st["generation"] == 1

    # A good one: generation 2, no reload problem; unchanged bundles keep
    # their state and version.
    write_spec(tmp_path, body + "[new]\nargs = %s/bin/sh\n" % tiny)
    bundlectl("reload", m.mountpoint)
    st = status(m)
    assert st["last_reload"]["ok"] is True and st["last_reload"]["problems"] == []
    assert st["last_reload"]["generation"] == st["generation"] == 2
    b = bundles(st)
    assert b["new"]["state"] == "unresolved" and b["ok"]["state"] == "ready"
    assert {x["serial"] for n, x in b.items() if n != "new"} == serials
    assert [p["bundle"] for p in st["problems"]] == ["badclosure", "gone"]


def test_the_document_while_a_closure_is_resolved(tmp_path, mount, nix):
    # Without Nix's database the closure comes from scanning every file of
    # it, which takes a while: the document is asked for meanwhile.
    real = nix.build("realistic")
    spec = write_spec(tmp_path, "[r]\nreadonly = true\nargs = %s/bin/python3\n" % real)
    m = mount(spec, "--db", "none", "--gcroots", "none")
    t = threading.Thread(target=lambda: os.listdir(m.path("r", "rootfs") + STORE))
    t.start()
    try:
        wait_for(lambda: status(m)["bundles"][0]["state"] == "resolving",
                 "the bundle is not being resolved")
        st = status(m)
        assert st["bundles"][0]["paths"] is None and st["bundles"][0]["problems"] == []
    finally:
        t.join(120)
    assert bundles(status(m))["r"]["paths"] == len(nix.closure(real))


def test_the_document_with_passthrough_and_substitution_off(tmp_path, mount, tiny):
    spec = write_spec(tmp_path, "[t]\nargs = %s/bin/sh\n" % tiny)
    m = mount(spec, "--no-passthrough", "--no-substitute")
    os.listdir(m.path("t", "rootfs") + STORE)
    st = status(m)
    assert st["passthrough"] == {"on": False, "backing_files": None, "opens": None,
                                 "registered": None, "failed": None}
    assert st["substitution"] == {"on": False, "substituters": None, "narinfo": None,
                                  "realised": None, "failed": None, "running": None,
                                  "queued": None, "prefetch": None}
    assert bundles(st)["t"]["local"] == bundles(st)["t"]["paths"] > 0

