# Runs every case of the C unit tests (tests/unit) as its own test.
import glob
import os
import subprocess

import pytest

from conftest import BUILD


def cases():
    for exe in sorted(glob.glob(os.path.join(BUILD, "tests", "test_*"))):
        if not os.access(exe, os.X_OK):
            continue
        out = subprocess.run([exe, "--list"], stdout=subprocess.PIPE, text=True, check=True)
        for name in out.stdout.split():
            yield pytest.param(exe, name, id="%s::%s" % (os.path.basename(exe), name))


@pytest.mark.parametrize("exe,name", list(cases()))
def test_unit(exe, name):
    p = subprocess.run([exe, name], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert p.returncode == 0, p.stderr


def test_unit_binaries_exist():
    assert len(list(cases())) >= 15, "unit tests not built in " + BUILD
