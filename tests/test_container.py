# Containers real programs run in, under runc and crun: the optional
# process settings reach the process, a bind of a file has a file to be
# mounted on, a tmpfs keeps the mode its mount asks for, the cwd exists,
# and the user is known to /etc/passwd and /etc/group.
import pytest

from conftest import STORE, write_spec


def out(p):
    assert p.returncode == 0, p.stderr.decode()
    return p.stdout.decode()


def test_settings_binds_and_modes_reach_the_container(tmp_path, mount, runtime, nix, tiny):
    bb = [p for p in nix.closure(tiny) if p.endswith("-busybox")][0]
    hostfile = tmp_path / "hostfile"
    hostfile.write_text("a file from the host\n")
    script = ("echo $GREETING; echo $PATH; pwd; hostname; id; stat -c %a /tmp; "
              "cat /etc/hostfile; touch /tmp/w && echo tmp-writable")
    spec = write_spec(tmp_path, f"""[t]
args = {bb}/bin/sh -c '{script}'
readonly = true
env = GREETING=hello there
env = PATH={bb}/bin
cwd = /tmp
hostname = box-1
user = 1000:100,27
mount = /tmp tmpfs tmpfs mode=1777
mount = /etc/hostfile bind {hostfile} rbind,ro
""")
    m = mount(spec)
    lines = out(runtime.run(m.path("t"))).splitlines()
    assert lines == [
        "hello there", bb + "/bin", "/tmp", "box-1",
        "uid=1000(user) gid=100(user) groups=27(group27)",
        "1777", "a file from the host", "tmp-writable"]


@pytest.mark.parametrize("readonly", ["true", "false"])
def test_cwd_is_made_in_the_rootfs(tmp_path, mount, runtime, nix, tiny, readonly):
    # No mount provides /srv/app: the rootfs has it, so that the runtime
    # can enter it, on a read-only root too.
    bb = [p for p in nix.closure(tiny) if p.endswith("-busybox")][0]
    spec = write_spec(tmp_path, "[c]\nargs = %s/bin/sh -c pwd\nreadonly = %s\ncwd = /srv/app\n"
                      % (bb, readonly))
    m = mount(spec)
    assert out(runtime.run(m.path("c"))) == "/srv/app\n"


def test_a_cwd_in_the_closure_or_a_mount_is_left_to_them(tmp_path, mount, runtime, nix, tiny):
    # A cwd in a store path is the closure's, one below a mount
    # destination what is mounted there: the rootfs adds nothing for them.
    import os
    bb = [p for p in nix.closure(tiny) if p.endswith("-busybox")][0]
    data = tmp_path / "data"
    (data / "sub").mkdir(parents=True)
    (data / "sub" / "msg").write_text("from the host\n")
    spec = write_spec(tmp_path, f"""[store]
args = {bb}/bin/sh -c pwd
readonly = true
cwd = {bb}/bin
[mounted]
args = {bb}/bin/sh -c 'pwd; cat msg'
readonly = true
mount = /data bind {data} rbind,ro
cwd = /data/sub
""")
    m = mount(spec)
    assert out(runtime.run(m.path("store"))) == bb + "/bin\n"
    assert out(runtime.run(m.path("mounted"))) == "/data/sub\nfrom the host\n"
    assert sorted(os.listdir(m.path("store", "rootfs"))) == ["dev", "nix", "proc", "sys"]
    assert os.listdir(m.path("mounted", "rootfs", "data")) == []


def test_passwd_and_group_served_only_with_a_user(tmp_path, mount, tiny):
    spec = write_spec(tmp_path, "[u]\nargs = %s/bin/sh\nuser = 0:0\n"
                      "[n]\nargs = %s/bin/sh\n"
                      "[m]\nargs = %s/bin/sh\nuser = 5:5\nmount = /etc bind /etc rbind,ro\n"
                      % (tiny, tiny, tiny))
    m = mount(spec)
    with open(m.path("u", "rootfs", "etc", "passwd")) as f:
        assert f.read().startswith("root:x:0:0:")
    import os
    assert "etc" not in os.listdir(m.path("n", "rootfs"))
    # A mount of /etc provides them: nothing is served under it.
    assert os.listdir(m.path("m", "rootfs", "etc")) == []


@pytest.mark.parametrize("source,problem", [
    ("/nonexistent/file", "No such file or directory"),
    ("FIFO", "is neither a file nor a directory"),
])
def test_a_bind_source_that_cannot_be_mounted_is_a_bundle_error(tmp_path, mount, tiny, source,
                                                                problem):
    import errno
    import os
    if source == "FIFO":
        source = str(tmp_path / "fifo")
        os.mkfifo(source)
    spec = write_spec(tmp_path, "[ok]\nargs = %s/bin/sh\n[bad]\nargs = %s/bin/sh\n"
                      "mount = /x bind %s rbind\n" % (tiny, tiny, source))
    m = mount(spec)
    with pytest.raises(OSError) as e:
        os.listdir(m.path("bad", "rootfs"))
    assert e.value.errno == errno.EIO
    assert os.listdir(m.path("ok", "rootfs") + STORE)
    from conftest import bundlectl
    st = bundlectl("status", m.mountpoint).stdout.decode()
    assert "spec.conf:5: bundle \"bad\": mount /x: source %s" % source in st and problem in st, st
    p = bundlectl("check", "--db", "none", write_spec(tmp_path, open(spec).read(), "c.conf"),
                  check=False)
    assert p.returncode == 2 and problem.encode() in p.stderr


def test_every_served_config_is_valid_oci(tmp_path, mount, tiny):
    from test_config import validate
    import json
    spec = write_spec(tmp_path, f"""[plain]
args = {tiny}/bin/sh
[mounts]
args = {tiny}/bin/sh -c 'echo hi'
readonly = true
mount = /data bind /srv
mount = /proc proc proc
mount = /tmp tmpfs tmpfs mode=1777,size=64k
[settings]
args = {tiny}/bin/sh
env = A=1
cwd = /
hostname = h
user = 1:2,3
terminal = true
[compat]
args = {tiny}/bin/sh
compat = buildcontainer
""")
    m = mount(spec)
    import jsonschema
    for name in ["plain", "mounts", "settings"]:
        with open(m.path(name, "config.json")) as f:
            validate(json.load(f))
    # The buildContainer bytes are not valid OCI: the check can tell.
    with open(m.path("compat", "config.json")) as f:
        with pytest.raises(jsonschema.ValidationError):
            validate(json.load(f))


@pytest.mark.parametrize("readonly", ["true", "false"])
def test_data_bind_lets_the_runtime_bind_the_closure(tmp_path, mount, runtime, nix, app, readonly):
    # data = bind: config.json binds each store path of the closure,
    # read-only, and the rootfs holds only their (empty) mount points; the
    # container runs from the real store and sees its closure only.
    import json
    import os
    from test_config import validate
    closure = nix.closure(app)
    spec = write_spec(tmp_path, "[b]\nargs = %s/bin/app one\nreadonly = %s\ndata = bind\n"
                      % (app, readonly))
    m = mount(spec)
    with open(m.path("b", "config.json")) as f:
        doc = json.load(f)
    validate(doc)
    binds = [x for x in doc["mounts"] if x["type"] == "bind"]
    assert sorted(x["destination"] for x in binds) == sorted(closure)
    assert all(x["source"] == x["destination"] and "ro" in x["options"] for x in binds)
    store = m.path("b", "rootfs") + STORE
    assert sorted(os.listdir(store)) == sorted(os.path.basename(p) for p in closure)
    assert os.listdir(os.path.join(store, os.path.basename(app))) == []
    assert out(runtime.run(m.path("b"))) == (
        "app: starting\nHello from bundlefs!\nargv[1]=one\n")
    from conftest import bundlectl
    assert bundlectl("config", spec, "b").stdout == open(m.path("b", "config.json"), "rb").read()


def test_a_bind_source_in_the_mount_is_refused_not_waited_for(tmp_path, mount, tiny):
    # A bind source the daemon must look at to make the mount point, in
    # its own mount: a stat there would wait for the daemon, which waits
    # for it (an unkillable lookup). Also two bundles binding each other.
    import errno
    import os
    import subprocess
    import threading
    from conftest import abort_mount, bundlectl
    mnt = tmp_path / "mnt"
    spec = write_spec(tmp_path, "[self]\nargs = %s/bin/sh\nmount = /data bind %s/self/rootfs%s rbind,ro\n"
                      "[a]\nargs = %s/bin/sh\nmount = /b bind %s/b/rootfs rbind,ro\n"
                      "[b]\nargs = %s/bin/sh\nmount = /a bind %s/a/rootfs/a rbind,ro\n"
                      % (tiny, mnt, STORE, tiny, mnt, tiny, mnt))
    m = mount(spec)
    # The watchdog of this test: a daemon waiting for itself is aborted,
    # so that a failure is a failure, not a hung machine.
    hung = []

    def abort():
        hung.append(True)
        abort_mount(str(mnt))
    watchdog = threading.Timer(20, abort)
    watchdog.start()
    try:
        for name in ("self", "a", "b"):
            p = subprocess.run(["ls", m.path(name, "rootfs")], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, timeout=60)
            assert not hung, "the daemon waited for itself"
            assert p.returncode != 0 and b"Input/output error" in p.stderr, p
    finally:
        watchdog.cancel()
    st = bundlectl("status", m.mountpoint).stdout.decode()
    for name, line in (("self", 3), ("a", 6), ("b", 9)):
        assert ('spec.conf:%d: bundle "%s": mount ' % (line, name)) in st, st
    assert st.count("a bundle cannot bind what a bundlefs mount serves") == 3, st
