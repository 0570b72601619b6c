# `nix-store --optimise` under a live mount: it replaces store files (and
# symlinks) by hard links to identical ones, new inodes with the same
# content. A container that reads or maps such a file after the caches let
# go must see the same bytes, not ENOENT or SIGBUS. The store here is a
# real Nix store of its own (local?root=), so that optimising it changes
# nothing in the machine's store.
import hashlib
import os
import subprocess
import time

from conftest import STORE, write_spec

# Maps a file as a running program maps its binary, waits, then touches
# every page of the mapping.
MAPPER = r"""
import mmap, sys, hashlib
with open(sys.argv[1], "rb") as f:
    m = mmap.mmap(f.fileno(), 0, prot=mmap.PROT_READ)
    print("mapped", flush=True)
    sys.stdin.readline()
    print(hashlib.sha256(m[:]).hexdigest(), flush=True)
"""


def nix_store(root, *args, stdin=None):
    p = subprocess.run(["nix-store", "--store", "local?root=%s" % root, *args], input=stdin,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert p.returncode == 0, p.stderr
    return p.stdout


def export(paths):
    return subprocess.run(["nix-store", "--export", *paths], stdout=subprocess.PIPE,
                          check=True).stdout


def drop_caches():
    os.sync()
    with open("/proc/sys/vm/drop_caches", "w") as f:
        f.write("3")


def test_files_replaced_by_optimise_keep_serving(tmp_path, mount, nix):
    salt = "optimise-%d-%d" % (os.getpid(), time.time_ns())
    first, second = nix.build("tiny", salt=salt + "-a"), nix.build("tiny", salt=salt + "-b")
    root = tmp_path / "s"
    # The first closure optimised: its busybox is now in .links.
    nix_store(root, "--import", stdin=export(nix.closure(first)))
    nix_store(root, "--optimise")
    # The second, identical busybox and all, not optimised yet.
    nix_store(root, "--import", stdin=export(nix.closure(second)))
    bb = [p for p in nix.closure(second) if p.endswith("-busybox")][0]
    real = str(root) + bb
    before = os.stat(real + "/bin/busybox").st_ino
    with open(real + "/bin/busybox", "rb") as f:
        content = f.read()
    link = os.readlink(real + "/bin/sh")

    spec = write_spec(tmp_path, "[t]\nargs = %s/bin/sh\n" % second)
    m = mount(spec, "--real-store", str(root) + STORE,
              "--db", str(root) + "/nix/var/nix/db/db.sqlite", "--gcroots", "none")
    served = m.path("t", "rootfs") + bb
    # A program maps busybox (nothing read yet); a directory is held open
    # so that its entries stay known to the kernel.
    mapper = subprocess.Popen(["/usr/bin/python3", "-c", MAPPER, served + "/bin/busybox"],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE)
    assert mapper.stdout.readline() == b"mapped\n"
    held = open(served + "/bin/busybox", "rb")
    try:
        os.lstat(served + "/bin/sh")

        nix_store(root, "--optimise")
        assert os.stat(real + "/bin/busybox").st_ino != before, "optimise replaced nothing"
        drop_caches()

        out, err = mapper.communicate(b"go\n", timeout=60)
        assert mapper.returncode == 0, "the mapping died: %d" % mapper.returncode  # SIGBUS
        assert out.decode().strip() == hashlib.sha256(content).hexdigest()
        assert held.read() == content
        assert os.readlink(served + "/bin/sh") == link
        assert m.problems() == []
    finally:
        held.close()
        if mapper.poll() is None:
            mapper.kill()
            mapper.wait()
