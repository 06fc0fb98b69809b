"""Packaging: declared dependencies, the lock file, and an installed (non-editable) package that
works outside the checkout.

Nothing here downloads: the wheel is built with this venv's setuptools (--no-build-isolation,
--no-index) and installed with --no-index into a fresh venv whose only extra path is this venv's
site-packages (the dependencies), so the code that runs is the installed copy, not the checkout.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import tomllib
from pathlib import Path

import pytest
from node_helpers import node_fixture
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from smartsla import localnode

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())

anvil = node_fixture("anvil", scope="module")


def _declared() -> list[Requirement]:
    project = PYPROJECT["project"]
    reqs = [Requirement(r) for r in project["dependencies"]]
    for extra in project["optional-dependencies"].values():
        reqs += [Requirement(r) for r in extra]
    return [r for r in reqs if canonicalize_name(r.name) != "smartsla"]  # the dev extra names the others


def _lock() -> dict[str, str]:
    out = {}
    for line in (ROOT / "requirements.lock").read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            name, _, version = line.partition("==")
            assert version, f"requirements.lock: {line!r} is not name==version"
            out[canonicalize_name(name)] = version
    return out


def test_the_lock_pins_every_declared_dependency_within_its_range() -> None:
    lock = _lock()
    problems = []
    for req in _declared():
        name = canonicalize_name(req.name)
        if name == "setuptools":  # pip freeze leaves the build tool out; the dev extra's range holds
            continue
        if name not in lock:
            problems.append(f"{req.name} is declared but not in requirements.lock (run scripts/lock.sh)")
        elif not req.specifier.contains(lock[name], prereleases=True):
            problems.append(f"{req.name}=={lock[name]} in requirements.lock is outside {req}")
    assert not problems, "; ".join(problems)


def test_no_exact_pins_in_the_library_requirements() -> None:
    pinned = [str(r) for r in _declared() if any(s.operator in ("==", "===") for s in r.specifier)]
    assert not pinned, f"exact pins (use a compatible range; exact versions go in requirements.lock): {pinned}"


def test_deptry_finds_every_import_declared_and_every_declaration_used() -> None:
    pytest.importorskip("deptry")
    done = subprocess.run([sys.executable, "-m", "deptry", "."], cwd=ROOT, capture_output=True, text=True,
                          timeout=120, env={**os.environ, "NO_COLOR": "1"})
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_embedded_chain_names_the_extra_to_install_when_it_is_missing(tmp_path: Path) -> None:
    # eth_tester made unimportable, as in an install without the `tester` extra
    code = ("import sys; sys.modules['eth_tester'] = None\n"
            "from smartsla.cli import app\napp(['demo'], prog_name='smartsla')")
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert done.returncode != 0
    assert "pip install 'smartsla[tester]'" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr


def test_anvil_is_found_for_every_platform_the_npm_lock_ships() -> None:
    packages = json.loads((ROOT / "package-lock.json").read_text())["packages"]
    shipped = {key.rsplit("/", 1)[1]: meta for key, meta in packages.items()
               if key.startswith("node_modules/@foundry-rs/anvil-")}
    assert shipped, "package-lock.json ships no @foundry-rs/anvil-<platform> package"
    npm_os = {"linux": "linux", "darwin": "darwin", "win32": "win32"}
    npm_cpu = {"x86_64": "x64", "amd64": "x64", "aarch64": "arm64", "arm64": "arm64"}
    for (system, machine), _ in localnode.ANVIL_PLATFORMS.items():
        path = localnode.anvil_binary(system, machine)
        package = path.parts[1]
        assert package in shipped, f"{system}/{machine} -> {package}, which package-lock.json does not ship"
        meta = shipped[package]
        assert meta["os"] == [npm_os[system]] and meta["cpu"] == [npm_cpu[machine]], (system, machine, meta)
        assert Path(*path.parts[2:]).as_posix() == meta["bin"]["anvil"], (path, meta["bin"])
    covered = {localnode.anvil_binary(s, m).parts[1] for s, m in localnode.ANVIL_PLATFORMS}
    assert covered == set(shipped), f"platforms shipped but never chosen: {set(shipped) - covered}"
    with pytest.raises(localnode.NodeToolMissing, match="ships no Anvil for sunos5/sparc"):
        localnode.anvil_binary("sunos5", "sparc")


# ---------------------------------------------------------------------------- installed, outside the checkout
@pytest.fixture(scope="module")
def installed_smartsla(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv with smartsla installed from a wheel (not editable); returns its bin/ folder."""
    work = tmp_path_factory.mktemp("wheel")
    src = work / "src"  # a copy: building in the checkout would leave build/ behind
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info")
    for name in ("smartsla", "oracle"):
        shutil.copytree(ROOT / name, src / name, ignore=ignore)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, src / name)
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--quiet"]
    subprocess.run([*pip, "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-w", str(work / "dist"),
                    str(src)], check=True, capture_output=True, timeout=120)
    wheel = next((work / "dist").glob("smartsla-*.whl"))
    venv = work / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=60)
    site = Path(subprocess.run([str(venv / "bin" / "python"), "-c", "import sysconfig; print(sysconfig.get_paths()"
                                "['purelib'])"], check=True, capture_output=True, text=True).stdout.strip())
    # the dependencies: this venv's site-packages, after the fresh one (its .pth files are not read,
    # so the checkout's editable install stays out)
    (site / "zz_test_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    # --python: installed for the fresh venv's interpreter (its console script runs that one)
    subprocess.run([sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"),
                    "--disable-pip-version-check", "--quiet", "install", "--no-deps", "--no-index", str(wheel)],
                   check=True, capture_output=True, timeout=120)
    return venv / "bin"


def _run(bin_dir: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SMARTSLA_", "PYTHON"))}
    env["COLUMNS"] = "200"
    return subprocess.run([str(bin_dir / "smartsla"), *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=120)


def test_the_installed_package_is_not_the_checkout(installed_smartsla: Path, tmp_path: Path) -> None:
    installed = installed_smartsla
    done = subprocess.run([str(installed / "python"), "-c", "import smartsla, oracle; print(smartsla.__file__); "
                           "print(oracle.__file__)"], cwd=tmp_path, capture_output=True, text=True, check=True)
    for line in done.stdout.split():
        assert Path(line).is_relative_to(installed.parent), line
        assert not Path(line).is_relative_to(ROOT), line


def test_installed_demo_runs_from_an_empty_folder(installed_smartsla: Path, tmp_path: Path) -> None:
    installed = installed_smartsla
    done = _run(installed, tmp_path, "demo")
    assert done.returncode == 0, done.stderr
    assert "balanced: every one of the" in done.stdout, done.stdout[-2000:]
    assert list(tmp_path.iterdir()) == []  # the embedded chain records nothing


@pytest.mark.anvil
def test_installed_deploy_records_in_the_current_folder(installed_smartsla: Path, tmp_path: Path, anvil) -> None:
    installed = installed_smartsla
    done = _run(installed, tmp_path, "deploy", "--rpc-url", anvil.url)
    assert done.returncode == 0, done.stderr
    record = json.loads((tmp_path / "deployments.json").read_text())
    address = record[str(localnode.CHAIN_IDS["anvil"])]["AgreementFactory"]
    assert address in done.stdout
    # and the installed CLI finds it again there
    listed = _run(installed, tmp_path, "agreements", "--provider", "0x" + "11" * 20, "--rpc-url", anvil.url)
    assert listed.returncode == 0, listed.stderr
    assert address in listed.stdout
