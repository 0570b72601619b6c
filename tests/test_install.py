# `cmake --install` into a scratch DESTDIR: the binaries, the man pages,
# the systemd unit and the Nix files land where a package puts them, the
# man pages render without a warning, and the installed binaries run: the
# installed bundlefs mounts a spec that the installed bundlefs.nix built.
# The installed package.nix builds the source installed beside it (the
# same entries it takes from a checkout), which configures; the installed
# module reads the unit from there.
import os
import subprocess

import bfsmount
from conftest import BUILD, ROOT, STORE, run
from nixfix import NIX_OPTIONS
from test_nix import check_package, check_unit, eval_module, package_attrs

PREFIX = "/usr/local"
FILES = [
    "bin/bundlefs", "bin/bundlectl",
    "share/man/man1/bundlefs.1", "share/man/man1/bundlectl.1",
    "share/man/man5/bundlefs-spec.5",
    "lib/systemd/system/bundlefs@.service",
    "share/bundlefs/bundlefs.nix", "share/bundlefs/keys.json", "share/bundlefs/package.nix",
    "share/bundlefs/module.nix", "share/bundlefs/src/CMakeLists.txt",
    "share/bundlefs/src/contrib/bundlefs@.service.in",
]


def install(tmp_path):
    dest = tmp_path / "dest"
    env = dict(os.environ, DESTDIR=str(dest))
    run(["cmake", "--install", BUILD, "--prefix", PREFIX], env=env)
    return str(dest) + PREFIX


def test_install_puts_everything_in_place(tmp_path):
    root = install(tmp_path)
    for f in FILES:
        assert os.path.isfile(os.path.join(root, f)), f
    for f in ("bin/bundlefs", "bin/bundlectl"):
        assert os.access(os.path.join(root, f), os.X_OK)
    # Nothing outside the prefix.
    assert os.listdir(tmp_path / "dest") == ["usr"]
    unit = open(os.path.join(root, "lib/systemd/system/bundlefs@.service")).read()
    assert "ExecStart=%s/bin/bundlefs " % PREFIX in unit


def test_man_pages_render_without_warnings(tmp_path):
    root = install(tmp_path)
    for page in ("man1/bundlefs.1", "man1/bundlectl.1", "man5/bundlefs-spec.5"):
        p = subprocess.run(["man", "--warnings", "-l", os.path.join(root, "share/man", page)],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           env=dict(os.environ, MANWIDTH="80"))
        assert p.returncode == 0 and p.stderr == b"", (page, p.stderr)
        text = p.stdout.decode()
        assert "NAME" in text and "SEE ALSO" in text
    # The check can fail: a page with an unknown macro warns.
    bad = tmp_path / "bad.1"
    bad.write_text(".TH BAD 1\n.NOSUCHMACRO\ntext\n")
    p = subprocess.run(["man", "--warnings", "-l", str(bad)], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE)
    assert b"NOSUCHMACRO" in p.stderr


def test_installed_binaries_run(tmp_path, nix, app):
    root = install(tmp_path)
    bundlefs = os.path.join(root, "bin/bundlefs")
    for b in (bundlefs, os.path.join(root, "bin/bundlectl")):
        v = run([b, "--version"]).stdout.decode()
        assert v.startswith(os.path.basename(b) + " ")
    expr = ('(import %s/share/bundlefs/bundlefs.nix {}).buildContainer '
            '{ args = [ "%s/bin/app" ]; readonly = true; }' % (root, app))
    link = tmp_path / "result"
    run(["nix-build", *NIX_OPTIONS, "-o", str(link), "-E", expr])
    m = bfsmount.Mount(bundlefs, tmp_path / "mnt", str(link),
                       ["--state-dir", str(tmp_path / "state")])
    try:
        assert sorted(os.listdir(m.path("app", "rootfs") + STORE)) == sorted(
            os.path.basename(x) for x in nix.closure(app))
        m.stop()
        m.exited()
    finally:
        m.cleanup()


def test_installed_package_nix_builds_the_installed_source(tmp_path):
    root = install(tmp_path)
    src = os.path.join(root, "share/bundlefs/src")
    attrs = package_attrs(os.path.join(root, "share/bundlefs/package.nix"), src)
    check_package(attrs, src)
    # Exactly what package.nix takes of a checkout: both build the same.
    checkout = package_attrs(os.path.join(ROOT, "nix/package.nix"))
    assert sorted(os.listdir(src)) == sorted(attrs["kept"]) == sorted(checkout["kept"])
    assert attrs["name"] == checkout["name"]
    # A tree that configures, as package.nix builds it.
    p = run(["cmake", "-S", src, "-B", str(tmp_path / "build"), "-DBUILD_TESTING=OFF",
             "-DBUNDLEFS_SYSTEM_LIBFUSE=ON"], check=False)
    assert p.returncode == 0, p.stderr.decode()[-3000:]


def test_installed_module_runs_the_installed_unit(tmp_path):
    root = install(tmp_path)
    out = eval_module(os.path.join(root, "share/bundlefs/module.nix"),
                      '{ services.bundlefs.package = "/p"; '
                      'services.bundlefs.mounts.m = { mountPoint = "/m"; spec = "/s.conf"; }; }')
    check_unit(out["systemd"]["services"]["bundlefs-m"], "/p", "/m", [], "/s.conf")
