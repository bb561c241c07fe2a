"""A stand-in for the Cloud Native Buildpacks lifecycle, applying the two spec texts in ../shared/reference-cnb/
(Buildpack API 0.10, Platform API 0.13) to one buildpack. No tool here runs the real lifecycle (`pack` and
`lifecycle` are Go binaries no reachable registry serves), so this one does what the texts say, where the
tests depend on it.

Reproduced:
- detect: no arguments; CNB_BUILD_PLAN_PATH, CNB_BUILDPACK_DIR, CNB_PLATFORM_DIR and the target's CNB_TARGET_*
  variables; working directory the app; exit 0 passes, 100 fails, anything else is an error.
- build: no arguments; CNB_LAYERS_DIR (<layers>/<buildpack id, "/" as "_">), CNB_BP_PLAN_PATH,
  CNB_BUILDPACK_DIR, CNB_PLATFORM_DIR, CNB_TARGET_*; the user's variables as files in <platform>/env/ and,
  as `clear-env` is not set, in the build's environment too; working directory the app; optionally as
  another (non-root) user.
- a rebuild's layers directory as the spec's layer-types table says: a cache+launch layer gets its metadata
  (from the previous image) and its contents (from the cache); a cache-only layer both from the cache; a
  launch-only layer its metadata only, no directory; build-only and ignored layers nothing. Restored
  metadata never holds the `[types]` table, and is written by the lifecycle's own TOML writer, not the
  buildpack's (here: another spacing and order).
- after a build: a launch layer with a directory replaces the image's; with `launch = true` and no directory
  the previous image's layer is reused (and it is an error that there is none); a layer with no
  `launch = true` is not in the image; cache layers are stored with their metadata.
- launch.toml's processes (type, command, args, default, working-dir).
- launch: the image's layers at the build's paths; the launch environment: every launch layer's bin/ prepended
  to PATH and lib/ to LD_LIBRARY_PATH when the directory exists (reversed buildpack order, then layer names
  ascending: one buildpack here), the env/ and env.launch/ (and env.launch/<process>/) files with their
  suffixes (none and .override, .default, .prepend, .append, .delim), then exec.d/ and exec.d/<process>/
  executables, each with a pipe on fd 3 whose TOML `name = "value"` lines are set; CNB_* variables removed.
- processes: a buildpack's process type runs `command` + `args` directly (command[0] looked up in the launch
  PATH); a Procfile line runs as heroku/procfile makes it, direct `bash -c <line>`. No `.profile.d` is
  sourced for either (Buildpack API 0.9+ has no shell processes).

Not reproduced: the OCI image itself (layers are directories, no diff IDs or SHA checks: a cached layer is
always taken to match the image's), the analyzer and exporter's registry work, SBOMs, store.toml and
build.toml, build plans between buildpacks (one buildpack here), the base and run images (this machine is
every target), slices, `/cnb/process` symlinks, image extensions, and Heroku's own platform (its builder,
its router, telemetry drains, dyno names: the tests set DYNO as Fir does).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import tomllib

LAYER_TYPES = ("launch", "build", "cache")
_PATH_VARIABLES = {"bin": "PATH", "lib": "LD_LIBRARY_PATH"}  # the launch column of the Layer Paths table


@dataclass(frozen=True)
class Target:
    arch: str = "amd64"
    distro: str = "ubuntu"
    version: str = "24.04"
    os: str = "linux"

    def env(self) -> dict[str, str]:
        return {"CNB_TARGET_OS": self.os, "CNB_TARGET_ARCH": self.arch, "CNB_TARGET_DISTRO_NAME": self.distro,
                "CNB_TARGET_DISTRO_VERSION": self.version}


@dataclass
class StoredLayer:
    contents: Path | None
    metadata: dict  # the [metadata] table
    types: dict  # the [types] table, as the last build wrote it


@dataclass
class Lifecycle:
    buildpack: Path
    root: Path  # everything of this app: workspace, layers, platform, image, cache
    user: tuple[int, int] | None = None  # (uid, gid) to build as; None: this process's
    image: dict[str, StoredLayer] = field(default_factory=dict)
    cache: dict[str, StoredLayer] = field(default_factory=dict)
    processes: list[dict] = field(default_factory=list)

    def __post_init__(self) -> None:
        descriptor = tomllib.loads((self.buildpack / "buildpack.toml").read_text())
        self.id = descriptor["buildpack"]["id"]
        self.workspace = self.root / "workspace"
        self.platform = self.root / "platform"
        self.layers_root = self.root / "layers"
        self.layers = self.layers_root / self.id.replace("/", "_")
        self.store = self.root / "store"
        for directory in (self.workspace, self.platform / "env", self.store):
            directory.mkdir(parents=True, exist_ok=True)

    # -- detect and build --------------------------------------------------------------------------------

    def set_env(self, **variables: str) -> None:
        """The user's config vars, as Heroku hands them to a build: <platform>/env/<NAME>."""
        for name, value in variables.items():
            (self.platform / "env" / name).write_text(value)

    def _phase_env(self, base: dict[str, str], target: Target) -> dict[str, str]:
        user = {p.name: p.read_text() for p in (self.platform / "env").iterdir()}
        return {**base, **user, "CNB_BUILDPACK_DIR": str(self.buildpack), "CNB_PLATFORM_DIR": str(self.platform),
                **target.env()}

    def detect(self, base: dict[str, str], target: Target = Target()) -> subprocess.CompletedProcess[str]:
        plan = self.root / "plan.toml"
        plan.write_text("")
        return self._run([str(self.buildpack / "bin/detect")],
                         {**self._phase_env(base, target), "CNB_BUILD_PLAN_PATH": str(plan)})

    def build(self, base: dict[str, str], target: Target = Target()) -> subprocess.CompletedProcess[str]:
        self._restore()
        bp_plan = self.root / "bp-plan.toml"
        bp_plan.write_text("")
        result = self._run([str(self.buildpack / "bin/build")],
                           {**self._phase_env(base, target), "CNB_LAYERS_DIR": str(self.layers),
                            "CNB_BP_PLAN_PATH": str(bp_plan)})
        if result.returncode == 0:
            self._export()
        return result

    def _run(self, command: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
        if self.user is not None:
            uid, gid = self.user
            command = ["setpriv", f"--reuid={uid}", f"--regid={gid}", "--clear-groups", *command]
        return subprocess.run(command, cwd=self.workspace, env=env, capture_output=True, text=True, timeout=300)

    def _restore(self) -> None:
        """A fresh layers directory, restored from the previous image and the cache as the layer-types table says."""
        shutil.rmtree(self.layers_root, ignore_errors=True)
        self.layers.mkdir(parents=True)
        for name in sorted({*self.image, *self.cache}):
            in_image, in_cache = self.image.get(name), self.cache.get(name)
            types = (in_image or in_cache).types
            if types.get("cache") and in_cache is not None:
                metadata = in_image.metadata if (types.get("launch") and in_image) else in_cache.metadata
                shutil.copytree(in_cache.contents, self.layers / name, symlinks=True)
            elif types.get("launch") and not types.get("build") and in_image is not None:
                metadata = in_image.metadata  # launch only: metadata, never the directory
            else:
                continue
            (self.layers / f"{name}.toml").write_text(_lifecycle_toml({"metadata": metadata}))
        if self.user is not None:
            for path in (self.layers_root, *self.layers_root.rglob("*")):
                os.chown(path, *self.user, follow_symlinks=False)

    def _export(self) -> None:
        image: dict[str, StoredLayer] = {}
        cache: dict[str, StoredLayer] = {}
        for toml_file in sorted(self.layers.glob("*.toml")):
            name = toml_file.stem
            if name in ("launch", "build", "store"):
                continue
            data = tomllib.loads(toml_file.read_text())
            types = {t: bool(data.get("types", {}).get(t, False)) for t in LAYER_TYPES}
            metadata = data.get("metadata", {})
            directory = self.layers / name
            if types["launch"]:
                if directory.is_dir():
                    image[name] = StoredLayer(self._keep(directory, f"image-{name}"), metadata, types)
                elif name in self.image:
                    image[name] = StoredLayer(self.image[name].contents, metadata, types)
                else:
                    raise AssertionError(f"launch layer {name} has no directory and no previous layer to reuse")
            if types["cache"] and directory.is_dir():
                cache[name] = StoredLayer(self._keep(directory, f"cache-{name}"), metadata, types)
        self.image, self.cache = image, cache
        launch = self.layers / "launch.toml"
        self.processes = tomllib.loads(launch.read_text()).get("processes", []) if launch.exists() else []

    def _keep(self, directory: Path, label: str) -> Path:
        kept = self.store / f"{label}-{len(list(self.store.iterdir()))}"
        shutil.copytree(directory, kept, symlinks=True)
        return kept

    # -- launch ------------------------------------------------------------------------------------------

    def install_image(self) -> None:
        """The run image's /layers: the image's launch layers at the paths they were built at."""
        shutil.rmtree(self.layers_root, ignore_errors=True)
        self.layers.mkdir(parents=True)
        for name, layer in self.image.items():
            shutil.copytree(layer.contents, self.layers / name, symlinks=True)

    def launch_env(self, base: dict[str, str], process: str | None) -> dict[str, str]:
        """The launcher's environment for a process of type `process` (None: a user-defined one)."""
        env = {k: v for k, v in base.items() if not k.startswith("CNB_")}
        for name in sorted(self.image):  # one buildpack: its layers in ascending order of name
            layer = self.layers / name
            for sub, variable in _PATH_VARIABLES.items():
                if (layer / sub).is_dir():
                    env[variable] = str(layer / sub) + (f":{env[variable]}" if env.get(variable) else "")
            for env_dir in ("env", "env.launch", *([f"env.launch/{process}"] if process else [])):
                _apply_env_files(env, layer / env_dir)
        for name in sorted(self.image):
            for exec_dir in ("exec.d", *([f"exec.d/{process}"] if process else [])):
                directory = self.layers / name / exec_dir
                for program in sorted(directory.iterdir()) if directory.is_dir() else ():
                    if program.is_file():
                        env.update(_exec_d(program, env, self.workspace))
        return env

    def start(self, process: str | None, base: dict[str, str], procfile_line: str | None = None,
              **popen: object) -> subprocess.Popen[str]:
        """A process as the launcher execs it: a buildpack process type, or a Procfile line (`bash -c`)."""
        env = self.launch_env(base, process)
        if procfile_line is not None:
            command = ["bash", "-c", procfile_line]
        else:
            (defined,) = [p for p in self.processes if p["type"] == process]
            command = [_which(defined["command"][0], env["PATH"]), *defined["command"][1:], *defined.get("args", [])]
        return subprocess.Popen(command, cwd=self.workspace, env=env, text=True, **popen)  # type: ignore[call-overload]


def _lifecycle_toml(tables: dict[str, dict]) -> str:
    """TOML as the lifecycle's writer lays it out: indented keys, in its own (here: reversed) order."""
    out = []
    for table, values in tables.items():
        out.append(f"[{table}]")
        out += [f'  {key} = "{value}"' for key, value in sorted(values.items(), reverse=True)]
    return "\n".join(out) + "\n"


_SUFFIX = re.compile(r"^(?P<name>[^.]+)(?:\.(?P<suffix>override|default|prepend|append|delim))?$")


def _apply_env_files(env: dict[str, str], directory: Path) -> None:
    """One directory's env files, by the Environment Variable Modification Rules (delimiters first)."""
    if not directory.is_dir():
        return
    files = [p for p in sorted(directory.iterdir()) if p.is_file() and _SUFFIX.match(p.name)]
    delimiters = {_SUFFIX.match(p.name)["name"]: p.read_text() for p in files if p.name.endswith(".delim")}
    for path in files:
        match = _SUFFIX.match(path.name)
        name, suffix, value = match["name"], match["suffix"], path.read_text()
        delim = delimiters.get(name, "")
        if suffix in (None, "override"):
            env[name] = value
        elif suffix == "default":
            if not env.get(name):
                env[name] = value
        elif suffix == "prepend":
            env[name] = value + (delim + env[name] if env.get(name) else "")
        elif suffix == "append":
            env[name] = (env[name] + delim if env.get(name) else "") + value


def _exec_d(program: Path, env: dict[str, str], cwd: Path) -> dict[str, str]:
    """Runs an exec.d program with fd 3 open for writing; its TOML output is the variables to set."""
    read, write = os.pipe()
    try:
        # fd 3 is the pipe: bash (sh may refuse an fd above 9) makes it so, then becomes the program ($0 its path).
        proc = subprocess.Popen(["/bin/bash", "-c", 'exec 3>&"$1" "$0"', str(program), str(write)], cwd=cwd, env=env,
                                pass_fds=(write,), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        os.close(write)
        write = -1
        with os.fdopen(read, "rb") as output:
            read = -1
            data = output.read()
        if proc.wait(30) != 0:
            raise AssertionError(f"exec.d program {program} failed: {proc.stderr.read() if proc.stderr else ''}")
    finally:
        for fd in (read, write):
            if fd >= 0:
                os.close(fd)
    return {k: str(v) for k, v in tomllib.loads(data.decode()).items()}


def _which(command: str, path: str) -> str:
    if "/" in command:
        return command
    for directory in path.split(":"):
        if os.access(candidate := os.path.join(directory, command), os.X_OK):
            return candidate
    raise AssertionError(f"{command} is not on the launch PATH {path}")
