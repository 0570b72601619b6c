# The mounted filesystem: its tree, a dump-and-compare against the rootfs
# that `bundlectl materialize` copies, read-only behaviour, confinement to
# the closure, laziness, node sharing and the daemon's life cycle.
import ctypes
import errno
import hashlib
import os
import signal
import stat
import subprocess
import time

import pytest

from conftest import BUNDLEFS, STORE, bundlectl, is_mounted, run, write_spec


def dump(root):
    """Everything the compare cares about, for every entry under root."""
    out = {}
    for dirpath, dirs, files in os.walk(root):
        dirs.sort()
        for name in sorted(dirs + files):
            p = os.path.join(dirpath, name)
            st = os.lstat(p)
            rel = os.path.relpath(p, root)
            if stat.S_ISLNK(st.st_mode):
                out[rel] = ("l", os.readlink(p))
            elif stat.S_ISDIR(st.st_mode):
                out[rel] = ("d", stat.S_IMODE(st.st_mode))
            else:
                h = hashlib.sha256()
                with open(p, "rb") as f:
                    for chunk in iter(lambda: f.read(1 << 20), b""):
                        h.update(chunk)
                out[rel] = ("f", stat.S_IMODE(st.st_mode), st.st_size, h.hexdigest())
    return out


def test_tree(tmp_path, mount, nix, app, tiny):
    spec = write_spec(
        tmp_path,
        "[app]\nargs = %s/bin/app\nreadonly = true\nmount = /data/in/here bind /srv rbind,ro\n"
        "mount = /etc/resolv.conf bind /etc/resolv.conf\n[t]\nargs = %s/bin/sh\nreadonly = true\n" % (app, tiny),
    )
    m = mount(spec)
    assert sorted(os.listdir(m.mountpoint)) == ["app", "t"]
    assert sorted(os.listdir(m.path("app"))) == ["config.json", "rootfs"]
    with open(m.path("app", "config.json"), "rb") as f:
        assert f.read() == bundlectl("config", spec, "app").stdout
    rootfs = m.path("app", "rootfs")
    assert sorted(os.listdir(rootfs)) == ["data", "dev", "etc", "nix", "proc", "sys"]
    for d in ["dev", "proc", "sys", "data/in/here", "dev/pts", "dev/mqueue", "sys/fs/cgroup",
              "nix/store"]:
        st = os.lstat(os.path.join(rootfs, d))
        assert stat.S_ISDIR(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o755, d
    # A mount point takes the mode of its mount's mode= option (as the
    # directory runc mounts a tmpfs on gives the tmpfs its mode) ...
    st = os.lstat(os.path.join(rootfs, "dev/shm"))
    assert stat.S_ISDIR(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o1777
    # ... and a bind of a file gets an empty file to be mounted on.
    st = os.lstat(os.path.join(rootfs, "etc/resolv.conf"))
    assert stat.S_ISREG(st.st_mode) and st.st_size == 0
    assert sorted(os.listdir(os.path.join(rootfs, "etc"))) == ["resolv.conf"]
    assert sorted(os.listdir(rootfs + STORE)) == [os.path.basename(p) for p in nix.closure(app)]
    assert sorted(os.listdir(m.path("t", "rootfs") + STORE)) == [
        os.path.basename(p) for p in nix.closure(tiny)]
    # bundles are symlinks to their current versions, which are found
    # below .bundlefs (not listed)
    assert os.readlink(m.path("app")) == ".bundlefs/%d" % os.stat(m.path("app")).st_ino \
        or os.readlink(m.path("app")).startswith(".bundlefs/")
    assert os.path.realpath(m.path("app")) == m.path(".bundlefs", os.readlink(m.path("app"))[10:])
    # nlink of a directory counts its subdirectories
    assert os.stat(m.mountpoint).st_nlink == 3
    assert os.stat(rootfs).st_nlink == 2 + 6


@pytest.mark.parametrize("attr", ["app", "realistic"])
def test_rootfs_equals_materialized_copy(tmp_path, mount, nix, attr):
    top = nix.build(attr)
    spec = write_spec(tmp_path, "[b]\nargs = %s/bin/x\nmount = /data bind /srv\n"
                      "cwd = /srv/app/work\n" % top)
    copy = tmp_path / "copy"
    bundlectl("materialize", spec, "b", str(copy))
    m = mount(spec)
    served = dump(m.path("b", "rootfs"))
    copied = dump(str(copy / "rootfs"))
    assert len(served) > 10
    assert served["srv/app/work"] == ("d", 0o755)
    assert served.keys() == copied.keys()
    assert served == copied
    with open(m.path("b", "config.json"), "rb") as f:
        assert f.read() == (copy / "config.json").read_bytes()


def test_stat_fields_come_from_the_store(tmp_path, mount, nix, app):
    spec = write_spec(tmp_path, "[b]\nargs = %s/bin/app\n" % app)
    m = mount(spec)
    rootfs = m.path("b", "rootfs")
    n = 0
    for p in nix.closure(app):
        for dirpath, dirs, files in os.walk(p):
            for name in [""] + dirs + files:
                real = os.path.join(dirpath, name) if name else dirpath
                a, b = os.lstat(real), os.lstat(rootfs + real)
                for f in ["st_mode", "st_size", "st_nlink", "st_uid", "st_gid",
                          "st_mtime_ns", "st_ctime_ns", "st_blocks"]:
                    assert getattr(a, f) == getattr(b, f), (real, f)
                n += 1
    assert n > 50


def test_symlinks_are_served_not_followed(tmp_path, mount, nix):
    links = nix.build("links")
    spec = write_spec(tmp_path, "[b]\nargs = %s/bin/hello\n" % links)
    m = mount(spec)
    p = m.path("b", "rootfs") + links + "/bin/hello"
    assert os.readlink(p) == os.readlink(links + "/bin/hello")
    assert os.readlink(p).startswith(STORE + "/")


def test_outside_the_closure_does_not_exist(tmp_path, mount, nix, tiny, app):
    spec = write_spec(tmp_path, "[t]\nargs = %s/bin/sh\n" % tiny)
    m = mount(spec)
    store = m.path("t", "rootfs") + STORE
    assert os.path.isdir(store + "/" + os.path.basename(tiny))
    for outside in [app, nix.build("glibc"), STORE + "/" + "0" * 32 + "-none"]:
        with pytest.raises(FileNotFoundError):
            os.lstat(store + "/" + os.path.basename(outside))
    for name in [".links", "not-a-store-path", os.path.basename(app) + ".drv", "..."]:
        with pytest.raises(FileNotFoundError):
            os.lstat(store + "/" + name)
    # a chrooted process (as a container is) sees the closure and nothing else
    r = run(["chroot", m.path("t", "rootfs"), tiny + "/bin/sh", "-c",
             "PATH=%s/bin; ls /nix/store; echo --; cd /..; ls; echo --; cat %s/bin/app; echo rc=$?"
             % (tiny, app)])
    store, root, rest = r.stdout.decode().split("--\n")
    assert store.split() == [os.path.basename(p) for p in nix.closure(tiny)]
    assert root.split() == ["dev", "nix", "proc", "sys"]
    assert rest == "rc=1\n"
    assert b"No such file or directory" in r.stderr


WRITES = {
    "open-write": lambda p: os.open(p, os.O_WRONLY),
    "open-append": lambda p: os.open(p, os.O_RDWR | os.O_APPEND),
    "truncate-open": lambda p: os.open(p, os.O_RDONLY | os.O_TRUNC),
    "truncate": lambda p: os.truncate(p, 0),
    "create": lambda p: os.open(os.path.join(os.path.dirname(p), "new"), os.O_CREAT | os.O_WRONLY),
    "mkdir": lambda p: os.mkdir(os.path.join(os.path.dirname(p), "newdir")),
    "mknod": lambda p: os.mknod(os.path.join(os.path.dirname(p), "fifo"), stat.S_IFIFO | 0o644),
    "symlink": lambda p: os.symlink("x", os.path.join(os.path.dirname(p), "newlink")),
    "link": lambda p: os.link(p, os.path.join(os.path.dirname(p), "newhard")),
    "unlink": lambda p: os.unlink(p),
    "rmdir": lambda p: os.rmdir(os.path.dirname(p)),
    "rename": lambda p: os.rename(p, p + ".moved"),
    "chmod": lambda p: os.chmod(p, 0o777),
    "chown": lambda p: os.chown(p, 1000, 1000),
    "utime": lambda p: os.utime(p, (1, 1)),
    "setxattr": lambda p: os.setxattr(p, "user.x", b"1"),
    "removexattr": lambda p: os.removexattr(p, "user.x"),
}


def fallocate(p):
    fd = os.open(p, os.O_RDONLY)
    try:
        os.posix_fallocate(fd, 0, 10)
    finally:
        os.close(fd)


@pytest.mark.parametrize("extra", [[], ["--mount-rw"]], ids=["ro-mount", "rw-mount"])
def test_every_write_is_erofs(tmp_path, mount, tiny, extra):
    # With `-o rw` the kernel forwards the calls, so the daemon's own
    # handlers must answer EROFS; the default ro mount answers in the VFS.
    # (A readonly = false bundle writes to its own overlay: test_writable.)
    spec = write_spec(tmp_path, "[t]\nargs = %s/bin/sh\nreadonly = true\n" % tiny)
    m = mount(spec, *extra)
    rootfs = m.path("t", "rootfs")
    bundle = os.path.realpath(m.path("t"))  # the version the name points to
    targets = [bundle + "/config.json", rootfs + tiny + "/bin/entrypoint",
               rootfs + "/dev/pts", rootfs + tiny + "/bin"]
    before = dump(tiny)
    file_only = {"open-write", "open-append", "truncate-open", "truncate", "link", "unlink"}
    for target in targets:
        for name, op in WRITES.items():
            if os.path.isdir(target) and name in file_only:
                continue  # EISDIR or EPERM on any filesystem
            with pytest.raises(OSError) as e:
                op(target)
            assert e.value.errno == errno.EROFS, (name, target, e.value)
    with pytest.raises(OSError) as e:
        fallocate(targets[1])
    assert e.value.errno in (errno.EBADF, errno.EROFS)
    assert dump(tiny) == before


def test_mount_options(tmp_path, mount, tiny):
    m = mount(write_spec(tmp_path, "[t]\nargs = %s/bin/sh\n" % tiny))
    with open("/proc/self/mountinfo") as f:
        line = next(l for l in f if l.split()[4] == m.mountpoint)
    fields = line.split()
    opts = set(fields[5].split(","))
    assert {"ro", "nosuid", "nodev"} <= opts
    sep = fields.index("-")
    assert fields[sep + 1] == "fuse.bundlefs"
    superopts = set(fields[sep + 3].split(","))
    assert {"ro", "default_permissions", "allow_other"} <= superopts


def test_lazy_resolution_and_failures_stay_in_their_bundle(tmp_path, mount, tiny):
    gone = STORE + "/" + "1" * 32 + "-gone"
    spec = write_spec(
        tmp_path,
        "[good]\nargs = %s/bin/sh\n\n[gone]\nargs = %s/bin/x\n\n[nofile]\nargs = %s/bin/sh\n"
        "closure = %s/missing-closure\n" % (tiny, gone, tiny, tmp_path),
    )
    m = mount(spec)
    # Mounting read only the spec: nothing was resolved, no problem logged.
    assert sorted(os.listdir(m.mountpoint)) == ["gone", "good", "nofile"]
    time.sleep(0.2)
    assert m.problems() == []
    assert not any("resolv" in msg for _, msg in m.lines()), m.stderr()
    for name in ["gone", "nofile"]:
        # config.json does not need the closure
        with open(m.path(name, "config.json"), "rb") as f:
            assert f.read() == bundlectl("config", spec, name).stdout
        for _ in range(3):
            with pytest.raises(OSError) as e:
                os.listdir(m.path(name, "rootfs"))
            assert e.value.errno == errno.EIO
    assert os.listdir(m.path("good", "rootfs") + STORE)
    # Each logged once, as warnings: both are tried again on a later use.
    assert [l for l in m.lines() if l[0] is None or l[0] <= 4] == [
        (4, '%s:5: bundle "gone": args: %s: missing from the store' % (spec, gone)),
        (4, '%s:9: bundle "nofile": closure file %s/missing-closure: No such file or '
         "directory" % (spec, tmp_path)),
    ]


def test_mounting_reads_only_the_spec(tmp_path, mount, nix):
    # Mounting reads the spec and nothing else: a spec of ten bundles of
    # the realistic closure mounts without reading any of it.
    real = nix.build("realistic")
    spec = write_spec(tmp_path, "".join("[b%d]\nargs = %s/bin/python3\n" % (i, real)
                                        for i in range(10)))
    m = mount(spec)
    with open("/proc/%d/io" % m.proc.pid) as f:
        io = dict(line.split(": ") for line in f.read().splitlines())
    # the spec itself and little else
    assert int(io["rchar"]) < 1 << 20, io


def test_shared_files_are_one_node(tmp_path, mount, app):
    spec = write_spec(tmp_path, "[a]\nargs = %s/bin/app\nreadonly = true\n"
                      "[b]\nargs = %s/bin/app\nreadonly = true\n" % (app, app))
    m = mount(spec)
    fa = m.path("a", "rootfs") + app + "/bin/app"
    fb = m.path("b", "rootfs") + app + "/bin/app"
    assert os.stat(fa).st_ino == os.stat(fb).st_ino
    # directories cannot have two parents: one node per bundle
    assert os.stat(os.path.dirname(fa)).st_ino != os.stat(os.path.dirname(fb)).st_ino
    assert open(fa, "rb").read() == open(fb, "rb").read() == open(app + "/bin/app", "rb").read()


def test_large_file_reads_match(tmp_path, mount, nix):
    real = nix.build("realistic")
    spec = write_spec(tmp_path, "[b]\nargs = %s/bin/python3\n" % real)
    m = mount(spec)
    big = max((os.path.join(d, f) for p in nix.closure(real) for d, _, fs in os.walk(p) for f in fs
               if not os.path.islink(os.path.join(d, f))), key=os.path.getsize)
    assert os.path.getsize(big) > 1 << 20
    served = m.path("b", "rootfs") + big
    with open(big, "rb") as a, open(served, "rb") as b:
        assert hashlib.sha256(a.read()).digest() == hashlib.sha256(b.read()).digest()
        # reads at odd offsets and sizes
        for off, size in [(0, 1), (4095, 3), (123457, 200000), (os.path.getsize(big) - 5, 100)]:
            a.seek(off)
            b.seek(off)
            assert a.read(size) == b.read(size)


@pytest.mark.parametrize("how", ["SIGTERM", "SIGINT", "fusermount3", "umount"])
def test_unmount_ends_the_daemon_cleanly(tmp_path, tiny, how):
    # (With writable roots too: see test_writable.)
    from conftest import Mount
    spec = write_spec(tmp_path, "[t]\nargs = %s/bin/sh\nreadonly = true\n" % tiny)
    m = Mount(tmp_path / "mnt", spec)
    try:
        os.listdir(m.path("t", "rootfs"))
        if how.startswith("SIG"):
            m.proc.send_signal(getattr(signal, how))
        elif how == "fusermount3":
            run(["fusermount3", "-u", m.mountpoint])
        else:
            run(["umount", m.mountpoint])
        m.exited()
        assert not is_mounted(m.mountpoint)
        assert "fuse:" not in m.stderr()
    finally:
        m.cleanup()


def test_daemonizes_once_mounted(tmp_path, tiny):
    spec = write_spec(tmp_path, "[t]\nargs = %s/bin/sh\nreadonly = true\n" % tiny)
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    p = run([BUNDLEFS, str(mnt), spec], timeout=20)
    try:
        assert p.returncode == 0
        assert is_mounted(mnt)  # already up when the command returns
        assert os.listdir(mnt / "t" / "rootfs" / "nix" / "store")
    finally:
        run(["fusermount3", "-u", str(mnt)])
    deadline = time.monotonic() + 10
    while subprocess.run(["pgrep", "-f", "bundlefs %s" % mnt], stdout=subprocess.DEVNULL).returncode == 0:
        assert time.monotonic() < deadline, "daemon still running after unmount"
        time.sleep(0.05)


def test_daemon_and_supervisor_killed_do_not_wedge_the_mount(tmp_path, mount, tiny):
    # With nothing left to serve it, the watchdog detaches the mount.
    from conftest import Mount
    spec = write_spec(tmp_path, "[t]\nargs = %s/bin/sh\n" % tiny)
    m = Mount(tmp_path / "mnt", spec)
    try:
        os.listdir(m.path("t", "rootfs"))
        m.kill_all()
        deadline = time.monotonic() + 10
        while is_mounted(m.mountpoint):
            assert time.monotonic() < deadline, "mount wedged after SIGKILL"
            time.sleep(0.05)
    finally:
        m.cleanup()
    m2 = mount(spec)  # the same mountpoint works again
    assert os.listdir(m2.path("t", "rootfs"))


@pytest.mark.parametrize("argv,code,msg", [
    (["--help"], 0, b"usage: bundlefs"),
    (["--help"], 0, b"--gcroots DIR|none"),
    (["--help"], 0, b"--no-openat2"),
    (["--version"], 0, b"bundlefs "),
    ([], 2, b"need a MOUNTPOINT and a SPEC"),
    (["--bogus", "a", "b"], 2, b"unknown option --bogus"),
])
def test_command_line(argv, code, msg):
    p = run([BUNDLEFS, *argv], check=False)
    assert p.returncode == code
    assert msg in (p.stdout + p.stderr)


def test_missing_mountpoint(tmp_path, tiny):
    spec = write_spec(tmp_path, "[t]\nargs = %s/bin/sh\n" % tiny)
    p = run([BUNDLEFS, str(tmp_path / "nope"), spec], check=False)
    assert p.returncode == 1
    assert p.stderr.decode() == "bundlefs: mountpoint %s: No such file or directory\n" % (tmp_path / "nope")


class FileHandle(ctypes.Structure):
    _fields_ = [("handle_bytes", ctypes.c_uint), ("handle_type", ctypes.c_int),
                ("f_handle", ctypes.c_ubyte * 128)]


def test_file_handles_do_not_open_nodes(tmp_path, mount, tiny):
    # With CAP_DAC_READ_SEARCH, open_by_handle_at opens whatever a handle
    # names; handles of a bundlefs mount hold guessable node ids. The mount
    # has no handle decoding (FUSE_NO_EXPORT_SUPPORT, Linux 6.9): a handle
    # can only be made as an identifier (AT_HANDLE_FID, for fanotify), and
    # cannot be opened.
    libc = ctypes.CDLL(None, use_errno=True)
    spec = write_spec(tmp_path, "[t]\nargs = %s/bin/sh\n" % tiny)
    m = mount(spec)
    f = m.path("t", "rootfs") + tiny + "/bin/entrypoint"
    fh = FileHandle(handle_bytes=128)
    mount_id = ctypes.c_int()
    if libc.name_to_handle_at(-100, f.encode(), ctypes.byref(fh), ctypes.byref(mount_id), 0):
        assert ctypes.get_errno() == errno.EOPNOTSUPP
        fh = FileHandle(handle_bytes=128)
        assert libc.name_to_handle_at(-100, f.encode(), ctypes.byref(fh), ctypes.byref(mount_id),
                                      0x200) == 0  # AT_HANDLE_FID
    mfd = os.open(m.mountpoint, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fd = libc.open_by_handle_at(mfd, ctypes.byref(fh), os.O_RDONLY)
        if fd >= 0:
            os.close(fd)
        assert fd < 0, "a file handle opened a node"
        assert ctypes.get_errno() in (errno.ESTALE, errno.EOPNOTSUPP), ctypes.get_errno()
    finally:
        os.close(mfd)
