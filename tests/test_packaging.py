"""Packaging and the Dockerfile, proved without Docker.

There is no Docker engine here, so the Dockerfile's steps are replayed in a clean
virtualenv standing in for the image's Python: ENV is applied, COPY copies, RUN runs in
the WORKDIR (mapped under a scratch root), then the HEALTHCHECK and the CMD run as
written against the test servers. Only `useradd` is skipped (it needs root and would
change this machine); USER is checked to be that unprivileged user instead.
"""

from __future__ import annotations

import configparser
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tomllib
import venv
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.conftest import wait_for

ROOT = Path(__file__).resolve().parents[1]
SETUPTOOLS_WARNINGS = ("BuildBackendWarning", "SetuptoolsDeprecationWarning", "!!")


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n\s*", " ", (ROOT / "Dockerfile").read_text())
    instructions = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            instructions.append((keyword.upper(), rest.strip()))
    return instructions


def exec_form(arguments: str) -> list[str]:
    """The JSON array of a CMD / HEALTHCHECK CMD."""
    return list(json.loads(arguments[arguments.index("[") :]))


class Image:
    """The Dockerfile's filesystem and environment, replayed under `root` with `python`."""

    def __init__(self, root: Path, python_bin: Path) -> None:
        self.root = root
        self.bin = python_bin
        # This machine's pip settings (index, certificates) and its cache (under HOME) keep
        # the replay working and fast here; the image turns the cache off.
        self.env = {k: v for k, v in os.environ.items() if k.startswith("PIP_")}
        self.env.update(PATH=f"{python_bin}:/usr/bin:/bin", HOME=os.environ.get("HOME", "/"))
        self.workdir = root
        self.user = "root"
        self.output = ""
        self.cmd: list[str] = []
        self.healthcheck: list[str] = []

    def path(self, container_path: str) -> Path:
        return self.root / container_path.lstrip("/")

    def apply(self, keyword: str, arguments: str) -> None:
        if keyword == "ENV":
            for pair in shlex.split(arguments):
                name, _, value = pair.partition("=")
                self.env[name] = value
            self.env.pop("PIP_NO_CACHE_DIR", None)  # see above
        elif keyword == "WORKDIR":
            self.workdir = self.path(arguments)
            self.workdir.mkdir(parents=True, exist_ok=True)
        elif keyword == "COPY":
            *sources, destination = shlex.split(arguments)
            target = self.workdir / destination
            for source in sources:
                origin = ROOT / source
                if origin.is_dir():
                    shutil.copytree(origin, target, ignore=shutil.ignore_patterns("__pycache__"))
                else:
                    shutil.copy(origin, target)
        elif keyword == "RUN":
            if arguments.startswith("useradd "):
                assert "--uid 10001 app" in arguments
                return
            result = subprocess.run(
                ["/bin/sh", "-c", arguments],
                cwd=self.workdir,
                env=self.env,
                capture_output=True,
                text=True,
                timeout=600,
            )
            self.output += result.stdout + result.stderr
            assert result.returncode == 0, f"RUN {arguments}\n{result.stdout}\n{result.stderr}"
        elif keyword == "USER":
            self.user = arguments
        elif keyword == "HEALTHCHECK":
            self.healthcheck = exec_form(arguments)
        elif keyword == "CMD":
            self.cmd = exec_form(arguments)
        else:
            assert keyword in {"FROM", "EXPOSE"}, f"the replay does not know {keyword}"


@pytest.fixture(scope="module")
def image(tmp_path_factory) -> Image:
    """The Dockerfile, replayed once for the module."""
    root = tmp_path_factory.mktemp("image")
    python_home = root / "usr" / "local"
    venv.create(python_home, with_pip=True)
    built = Image(root, python_home / "bin")
    for keyword, arguments in dockerfile_instructions():
        built.apply(keyword, arguments)
    return built


def in_image(image: Image, *argv: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        list(argv),
        cwd=image.workdir,
        env={**image.env, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_building_the_package_gives_no_setuptools_warnings(tmp_path):
    """pip hides the build backend's output unless verbose: build verbosely to see it."""
    source = tmp_path / "source"
    source.mkdir()
    for name in ("pyproject.toml", "setup.cfg", "README.md"):
        shutil.copy(ROOT / name, source / name)
    shutil.copytree(
        ROOT / "sync_worker", source / "sync_worker", ignore=shutil.ignore_patterns("__pycache__")
    )
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-v", "--no-deps", str(source), "-w", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert build.returncode == 0, build.stderr
    output = build.stdout + build.stderr
    assert "running build_py" in output  # the backend's output is there to be read
    assert not any(marker in output for marker in SETUPTOOLS_WARNINGS), output


def test_the_image_installs_from_the_lock_and_nothing_shadows_it(image):
    assert not any(image.path("/build").iterdir())  # sources and build/ are gone
    assert image.user == "app"
    assert image.workdir == image.path("/home/app")

    where = in_image(image, "python", "-c", "import sync_worker; print(sync_worker.__file__)")
    package = Path(where.stdout.strip()).parent
    assert package.is_relative_to(image.path("/usr/local/lib")), where
    assert (package / "py.typed").exists()
    dashboard = package / "dashboard"
    assert {p.name for p in (dashboard / "static").iterdir()} >= {"dashboard.css", "dashboard.js"}
    assert (dashboard / "templates" / "overview.html").exists()
    served = in_image(image, "sync-worker", "dashboard", "--help")
    assert served.returncode == 0 and "DASHBOARD_TOKEN" in served.stdout
    assert sorted(p.name for p in (package / "store" / "migrations").glob("*.sql"))[-1] == (
        "0011_relink_required.sql"
    )
    frozen = in_image(image, "pip", "freeze", "--exclude", "sync-worker").stdout.split()
    assert pins(frozen) == pins((ROOT / "requirements.lock").read_text().splitlines())


def pins(lines: list[str]) -> dict[str, str]:
    """{canonical name: version} of `name==version` lines (a lock, or pip freeze)."""
    pinned = {}
    for line in lines:
        if "==" in line and not line.startswith((" ", "#")):
            name, version = line.split("==")
            pinned[canonicalize_name(name)] = version.strip()
    return pinned


def requirements(section: str, key: str) -> list[Requirement]:
    """The requirements setup.cfg lists under [section] key."""
    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg")
    lines = config[section][key].splitlines()
    return [Requirement(line) for line in lines if line.strip() and not line.startswith("#")]


def assert_pinned(requirement: Requirement, pinned: dict[str, str], lock: str) -> None:
    name = canonicalize_name(requirement.name)
    assert name in pinned, f"{name} is not in {lock}: run `make lock`"
    assert requirement.specifier.contains(pinned[name]), (
        f"{lock} pins {name}=={pinned[name]}, setup.cfg asks {requirement.specifier}"
    )


def test_the_locks_agree_with_setup_cfg():
    """`make lock` was run after the last dependency change: every runtime dependency (and
    the dashboard's) is pinned in both locks, every extra's in the development lock, each pin within
    setup.cfg's range, and the development lock keeps every runtime pin."""
    runtime = pins((ROOT / "requirements.lock").read_text().splitlines())
    development_text = (ROOT / "requirements-dev.lock").read_text()
    development = pins(development_text.splitlines())
    for requirement in requirements("options", "install_requires"):
        assert_pinned(requirement, runtime, "requirements.lock")
    for requirement in requirements("options.extras_require", "dashboard"):  # the image's
        assert_pinned(requirement, runtime, "requirements.lock")
    for extra in ("local", "example", "dashboard", "dev"):
        for requirement in requirements("options.extras_require", extra):
            assert_pinned(requirement, development, "requirements-dev.lock")
    assert {name: development.get(name) for name in runtime} == runtime
    # The tools that build the environment are pinned too (`make` builds the package
    # without isolation, with the locked ones), and nothing comes from a path.
    assert "pip" in development
    build = tomllib.loads((ROOT / "pyproject.toml").read_text())["build-system"]["requires"]
    for requirement in map(Requirement, build):
        assert_pinned(requirement, development, "requirements-dev.lock")
    assert " @ " not in development_text


def test_the_healthcheck_and_the_command_run_as_written(image, subprocess_env, tmp_path):
    servers = {
        name: subprocess_env[name]
        for name in ("DATABASE_URL", "REDIS_URL", "STEAM_API_KEY", "STEAM_API_BASE_URL")
    }
    servers["CREDENTIALS_KEY"] = Fernet.generate_key().decode()  # production needs one
    health = in_image(image, *image.healthcheck, **servers)
    assert image.healthcheck == ["sync-worker", "health"]
    assert health.returncode == 0, health.stderr
    assert json.loads(health.stdout)["healthy"] is True

    assert image.cmd[:2] == ["dramatiq", "sync_worker.worker"]
    processes = int(image.cmd[image.cmd.index("--processes") + 1])
    assert int(image.cmd[image.cmd.index("--threads") + 1]) >= 1
    log_path = tmp_path / "cmd.log"
    with log_path.open("w") as log:
        worker = subprocess.Popen(
            image.cmd,
            cwd=image.workdir,
            env={**image.env, **servers, "METRICS_PORT": "0", "LOG_LEVEL": "INFO"},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        wait_for(
            lambda: log_path.read_text().count("Worker process is ready for action") == processes,
            60,
            "the image's worker processes",
        )
        assert '"level": "info"' in log_path.read_text()  # LOG_FORMAT=json from the image
    finally:
        os.killpg(worker.pid, signal.SIGTERM)
        assert worker.wait(timeout=40) == 0, log_path.read_text()[-2000:]
    assert sys.executable not in " ".join(image.cmd)


def test_the_example_extra_runs_the_examples_as_documented():
    """`pip install '.[example]'` alone: the web frameworks, the Socket.IO bridge's
    python-socketio, and the embedded servers the examples fall back on outside production
    (without them the examples answer 503 configuration_error)."""
    example = {canonicalize_name(r.name) for r in requirements("options.extras_require", "example")}
    local = {canonicalize_name(r.name) for r in requirements("options.extras_require", "local")}
    assert local <= example
    assert {"fastapi", "uvicorn", "python-socketio"} <= example
