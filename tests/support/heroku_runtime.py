"""A stand-in for Heroku's Python runtime archive, made from the interpreter that runs the tests.

Heroku's archives (heroku/heroku-buildpack-python, builds/build_python_runtime.sh and
builds/test_python_runtime.sh) are what lib/python.sh downloads. A stand-in is only worth what
it reproduces, so this one copies the properties the buildpack depends on, and `check()` proves
the one that once hid a broken build before any test uses the archive.

Reproduced:
- Built `--enable-shared`: bin/python3.X holds almost nothing and needs lib/libpythonX.Y.so.1.0.
- No RUNPATH or RPATH in any binary (the interpreter, libpython, the lib-dynload modules), so the
  interpreter starts only with LD_LIBRARY_PATH=<runtime>/lib, as heroku-buildpack-python sets it.
- A libpython that nothing else on the machine satisfies: Heroku's build machine is not the dyno,
  and no system libpython3.13 exists on a stack image. Here the test machine may have a system
  libpython of the test interpreter's version, so the stand-in's libpython gets a soname of its own.
- Layout: entries rooted at `./` (`tar --directory=<install dir> .`), pax format, sorted names,
  zstd with long-distance matching; bin/python3 and the relative bin/python symlinks; no idle,
  pydoc or 2to3 scripts; no test packages; the pip wheel CPython bundles under
  lib/pythonX.Y/ensurepip/_bundled (the build has `--with-ensurepip=no`, which skips running
  ensurepip, not the module).
- Installed under a prefix that matches neither the build directory nor /app, so relocation is
  exercised (Heroku builds into /tmp/python).

Not reproduced:
- The Python version (Heroku's 3.13.x; here the test interpreter's) and its build options
  (PGO, LTO, `-Wl,--strip-all`, distro hardening flags, the system expat).
- The stack image: the system libraries the extension modules link against (libssl3 and
  friends of Ubuntu 22.04/24.04/26.04), its bash and coreutils; every stack is this machine.
- The CPU: the archive is this machine's architecture whatever ARCH the test names.
- sysconfig's recorded build prefix (/tmp/python there, the test interpreter's here) and the
  stdlib bytecode in `unchecked-hash` mode.
- The archive's size and download from Heroku's bucket over HTTPS (served from file:// or a
  loopback HTTP server here).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

STANDIN_SONAME_TAG = "sidekiq-metrics-standin"


def build(dest_dir: Path) -> Path:
    """Writes python-standin-ubuntu-24.04-<arch>.tar.zst into dest_dir and returns its path."""
    for tool in ("patchelf", "zstd"):
        if not shutil.which(tool):
            raise RuntimeError(f"{tool} is not installed: run the README's test command (tests/run)")
    prefix = Path(sys.base_prefix)
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    install = dest_dir / "install-prefix"  # neither the build directory nor /app, as on Heroku
    (install / "bin").mkdir(parents=True)
    (install / "lib").mkdir()

    real_python = (prefix / "bin" / f"python{version}").resolve()
    shutil.copy2(real_python, install / "bin" / f"python{version}")
    os.symlink(f"python{version}", install / "bin" / "python3")
    os.symlink("python3", install / "bin" / "python")

    soname = f"libpython{version}.so.1.0"
    own_soname = f"libpython{version}-{STANDIN_SONAME_TAG}.so.1.0"
    shutil.copy2(prefix / "lib" / soname, install / "lib" / own_soname)

    stdlib = f"python{version}"
    skipped = {"site-packages", "test", "tests", "idle_test", "idlelib", "tkinter", "turtledemo", "lib2to3",
               "__pycache__"}
    shutil.copytree(prefix / "lib" / stdlib, install / "lib" / stdlib, symlinks=True,
                    ignore=lambda _dir, names: [n for n in names if n in skipped or n.startswith("config-")])
    (install / "lib" / stdlib / "site-packages").mkdir()

    subprocess.run(["patchelf", "--set-soname", own_soname, install / "lib" / own_soname], check=True)
    subprocess.run(["patchelf", "--replace-needed", soname, own_soname, install / "bin" / f"python{version}"],
                   check=True)
    for binary in elf_files(install):
        subprocess.run(["patchelf", "--remove-rpath", binary], check=True)

    arch = subprocess.run(["dpkg", "--print-architecture"], capture_output=True, text=True,
                          check=True).stdout.strip()
    archive = dest_dir / f"python-standin-ubuntu-24.04-{arch}.tar.zst"
    subprocess.run(["tar", "--create", "--format=pax", "--sort=name", "--use-compress-program=zstd -3 --long -T0",
                    "--file", archive, "--directory", install, "."], check=True)
    shutil.rmtree(install)
    return archive


def elf_files(root: Path) -> list[Path]:
    found = []
    for path in root.rglob("*"):
        if path.is_file() and not path.is_symlink():
            with path.open("rb") as f:
                if f.read(4) == b"\x7fELF":
                    found.append(path)
    return found


def check(archive: Path, scratch: Path) -> None:
    """Fails unless the archive behaves like Heroku's where the buildpack depends on it."""
    home = scratch / "unpacked"
    home.mkdir()
    subprocess.run(["tar", "--extract", "--zstd", "--file", archive, "--directory", home], check=True)
    members = subprocess.run(["tar", "--list", "--zstd", "--file", archive], capture_output=True, text=True,
                             check=True).stdout.split()
    assert members[0] == "./" and all(m.startswith("./") for m in members), members[:3]

    for binary in elf_files(home):
        dynamic = subprocess.run(["readelf", "--dynamic", binary], capture_output=True, text=True).stdout
        assert "RUNPATH" not in dynamic and "RPATH" not in dynamic, f"{binary} has a RUNPATH"

    env = {"PATH": "/usr/bin:/bin"}
    without = subprocess.run([home / "bin/python3", "-c", "print('started')"], env=env, capture_output=True,
                             text=True)
    assert without.returncode == 127, (without.returncode, without.stdout, without.stderr)
    assert "error while loading shared libraries" in without.stderr, without.stderr

    env["LD_LIBRARY_PATH"] = str(home / "lib")
    started = subprocess.run([home / "bin/python3", "-I", "-c", "import ssl, sys; print(sys.prefix)"], env=env,
                             capture_output=True, text=True)
    assert started.returncode == 0, started.stderr
    assert started.stdout.strip() == str(home), started.stdout  # relocated: the prefix follows the files
    shutil.rmtree(home)
