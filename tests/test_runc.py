# Real containers: Debian's runc runs bundles straight from a bundlefs
# mount. The closures are real Nix store paths built with nix-bin: a static
# busybox, and a C program relinked with patchelf against a glibc store path.
import os

import pytest

from conftest import write_spec


def out(p):
    assert p.returncode == 0, p.stderr.decode()
    return p.stdout.decode()


@pytest.mark.parametrize("readonly", ["true", "false"])
def test_dynamic_program_runs(tmp_path, mount, runc, app, readonly):
    spec = write_spec(tmp_path, "[app]\nargs = %s/bin/app one \"two words\"\nreadonly = %s\n"
                      % (app, readonly))
    m = mount(spec)
    assert out(runc.run(m.path("app"))) == (
        "app: starting\nHello from bundlefs!\nargv[1]=one\nargv[2]=two words\n")


def test_static_busybox_sees_only_its_closure(tmp_path, mount, runc, nix, tiny):
    bb = [p for p in nix.closure(tiny) if p.endswith("-busybox")][0]
    spec = write_spec(tmp_path, "[t]\nargs = %s/bin/sh -c 'ls /nix/store; id -u; ls /'\n" % bb)
    m = mount(spec)
    lines = out(runc.run(m.path("t"))).split()
    assert lines == [os.path.basename(bb), "0", "dev", "nix", "proc", "sys"]


def test_user_bind_mount_outside_the_store(tmp_path, mount, runc, tiny):
    # /srv/in/data does not exist in any store path: bundlefs provides the
    # mount point, runc binds the host directory onto it, even with a
    # read-only root.
    data = tmp_path / "data"
    data.mkdir()
    (data / "msg").write_text("from the host\n")
    spec = write_spec(
        tmp_path,
        "[t]\nargs = %s/bin/cat /srv/in/data/msg\nreadonly = true\nmount = /srv/in/data bind %s rbind,ro\n"
        % (tiny, data),
    )
    m = mount(spec)
    assert out(runc.run(m.path("t"))) == "from the host\n"


def test_container_as_another_user(tmp_path, mount, runc, tiny):
    # Mounted allow_other with default_permissions: uid 1000 reads and runs
    # the closure. (buildContainer's config runs as root; edit a copy.)
    import json
    spec = write_spec(tmp_path, "[t]\nargs = %s/bin/sh -c 'id -u; cat %s/bin/entrypoint'\n" % (tiny, tiny))
    m = mount(spec)
    bundle = tmp_path / "user-bundle"
    bundle.mkdir()
    cfg = json.loads(open(m.path("t", "config.json")).read())
    cfg["process"]["user"] = {"uid": 1000, "gid": 1000}
    # runc wants a root path without symlinks: the version's own
    cfg["root"]["path"] = os.path.realpath(m.path("t", "rootfs"))
    (bundle / "config.json").write_text(json.dumps(cfg))
    lines = out(runc.run(str(bundle))).splitlines()
    assert lines[0] == "1000"
    assert lines[1].startswith("#!")


@pytest.mark.parametrize("how,want", [
    # An oci patch naming the sets itself: CAP_NET_ADMIN (12) alone.
    ('oci = {"process": {"capabilities": {"bounding": ["CAP_NET_ADMIN"], '
     '"effective": ["CAP_NET_ADMIN"], "permitted": ["CAP_NET_ADMIN"]}}}', 1 << 12),
    # capabilities.add: runc spec's three (CAP_KILL 5, CAP_NET_BIND_SERVICE
    # 10, CAP_AUDIT_WRITE 29) and CAP_NET_ADMIN.
    ('capabilities = {"add": ["CAP_NET_ADMIN"]}', 1 << 5 | 1 << 10 | 1 << 12 | 1 << 29),
    # The same for a user other than root, who keeps them (ambient).
    ('capabilities = {"add": ["CAP_NET_ADMIN"]}\nuser = 1000:100',
     1 << 5 | 1 << 10 | 1 << 12 | 1 << 29),
    # Without either, runc's own default for a process (none for a user).
    ('user = 1000:100', 0),
])
def test_capabilities_reach_the_process(tmp_path, mount, runc, nix, tiny, how, want):
    bb = [p for p in nix.closure(tiny) if p.endswith("-busybox")][0]
    spec = write_spec(tmp_path, "[c]\nargs = %s/bin/sh -c 'grep CapEff /proc/self/status; id -u'\n"
                      "readonly = true\n%s\n" % (bb, how))
    m = mount(spec)
    eff, uid = out(runc.run(m.path("c"))).splitlines()
    assert int(eff.split()[1], 16) == want
    assert uid == ("1000" if "user" in how else "0")
