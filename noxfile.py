"""Sessions of the dt monorepo.

Packages are discovered from ``packages/*/pyproject.toml`` and ``projects/*/pyproject.toml``;
a package's sibling dependencies (from ``dependencies`` and its ``test`` extra) are installed
from the checkout, never from a registry. Every install is constrained by ``constraints.txt``,
which pins torch to the CPU wheel this machine has (an unpinned torch pulls GBs of CUDA).

    nox -s tests               every package installed together, fast suites + import contracts
    nox -s tests-dt-structures one package and only its declared dependencies
    nox -s slow                tests marked slow
    nox -s lint                ruff check, ruff format --check, import-direction contracts
    nox -s build               wheel + sdist of every package into dist/, each installed cleanly
    nox -s bench               benchmarks/*.py (JSON on stdout); pass script names to pick some
    nox -s demo                dt demo: train, evaluate and visualize Mask R-CNN on shapes (CPU)
"""

from __future__ import annotations

import os
import re
import tempfile
import tomllib
from dataclasses import dataclass
from pathlib import Path

import nox

ROOT = Path(__file__).resolve().parent
CONSTRAINTS = ROOT / "constraints.txt"
COMPAT_CONSTRAINTS = ROOT / "constraints-compat.txt"
DIST = ROOT / "dist"

nox.options.reuse_existing_virtualenvs = True
nox.options.sessions = ["lint", "tests"]


@dataclass(frozen=True)
class Package:
    name: str  # distribution name, e.g. "dt-structures"
    path: Path
    import_name: str
    version: str
    siblings: tuple[str, ...]  # sibling distributions needed at run and test time

    @property
    def tests(self) -> Path:
        return self.path / "tests"


def _requirement_name(requirement: str) -> str:
    match = re.match(r"\s*([A-Za-z0-9._-]+)", requirement)
    if match is None:
        raise ValueError(f"cannot parse requirement {requirement!r}")
    return re.sub(r"[-_.]+", "-", match.group(1)).lower()


def _requirement_extras(requirement: str) -> list[str]:
    match = re.match(r"\s*[A-Za-z0-9._-]+\s*\[([^\]]*)\]", requirement)
    return [e.strip() for e in match.group(1).split(",")] if match else []


def _discover() -> dict[str, Package]:
    pyprojects = sorted([*ROOT.glob("packages/*/pyproject.toml"), *ROOT.glob("projects/*/pyproject.toml")])
    metas = {}
    for pyproject in pyprojects:
        project = tomllib.loads(pyproject.read_text())["project"]
        metas[_requirement_name(project["name"])] = (pyproject.parent, project)

    def sibling_closure(name: str, extras: list[str], seen: set[str]) -> None:
        _, project = metas[name]
        requirements = list(project.get("dependencies", []))
        for extra in extras:
            requirements += project.get("optional-dependencies", {}).get(extra, [])
        for requirement in requirements:
            dep = _requirement_name(requirement)
            if dep in metas and dep != name:
                seen.add(dep)
                sibling_closure(dep, _requirement_extras(requirement), seen)

    packages = {}
    for name, (path, project) in metas.items():
        siblings: set[str] = set()
        sibling_closure(name, ["test"], siblings)
        packages[name] = Package(
            name=name,
            path=path,
            import_name=name.replace("-", "_"),
            version=project["version"],
            siblings=tuple(sorted(siblings)),
        )
    return packages


PACKAGES = _discover()


def _install_from_checkout(
    session: nox.Session, names: list[str], constraints: Path = CONSTRAINTS, extra: str | None = "test"
) -> None:
    """Install the named packages (with ``extra``) and their sibling dependencies."""
    wanted = set(names)
    for name in names:
        wanted.update(PACKAGES[name].siblings)
    suffix = f"[{extra}]" if extra else ""
    targets = [f"{PACKAGES[n].path}{suffix}" if n in names else str(PACKAGES[n].path) for n in sorted(wanted)]
    session.install("-c", str(constraints), *targets)


def _pytest(session: nox.Session, packages: list[Package], marker: str) -> None:
    """Run each package's tests in its own pytest process; report every failing package."""
    failed = []
    # A package with no slow tests is fine (pytest's exit 5: nothing selected); no fast tests is not.
    success_codes = [0, 5] if marker == "slow" else [0]
    for package in packages:
        if not package.tests.is_dir():
            continue
        try:
            args = [str(package.tests), "-m", marker, *session.posargs]
            session.run("pytest", *args, success_codes=success_codes)
        except nox.command.CommandFailed:
            failed.append(package.name)
    if failed:
        session.error(f"tests failed in: {', '.join(failed)}")


def _lint_imports(session: nox.Session) -> None:
    """Check the package layering (see .importlinter) on the source trees."""
    src_dirs = [str(p.path / "src") for p in PACKAGES.values()]
    session.run("lint-imports", env={"PYTHONPATH": os.pathsep.join(src_dirs)})


@nox.session
def tests(session: nox.Session) -> None:
    """All packages installed together from the checkout: import contracts, then every fast suite."""
    session.install("-c", str(CONSTRAINTS), "import-linter")
    _install_from_checkout(session, sorted(PACKAGES))
    _lint_imports(session)
    _pytest(session, list(PACKAGES.values()), "not slow")


@nox.session
def slow(session: nox.Session) -> None:
    """Tests marked slow (end-to-end runs), all packages installed together."""
    _install_from_checkout(session, sorted(PACKAGES))
    _pytest(session, list(PACKAGES.values()), "slow")


def _register_package_tests(package: Package) -> None:
    def package_tests(session: nox.Session) -> None:
        _install_from_checkout(session, [package.name])
        _pytest(session, [package], "not slow")

    package_tests.__doc__ = f"{package.name} alone, with only its declared dependencies, in a fresh env."
    nox.session(name=f"tests-{package.name}")(package_tests)


for _package in PACKAGES.values():
    _register_package_tests(_package)


@nox.session
def demo(session: nox.Session) -> None:
    """Install dt from the checkout and run ``dt demo`` (train, evaluate, visualize on ``shapes``)."""
    _install_from_checkout(session, ["dt-engine"], extra=None)
    session.run("dt", "demo", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    """ruff check, ruff format --check, and the import-direction contracts."""
    session.install("-c", str(CONSTRAINTS), "ruff", "import-linter")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")
    _lint_imports(session)


@nox.session
def build(session: nox.Session) -> None:
    """Wheel and sdist of every package into dist/; each wheel installed in a clean venv and imported."""
    session.install("-c", str(CONSTRAINTS), "build")
    DIST.mkdir(exist_ok=True)
    for package in PACKAGES.values():
        session.run("python", "-m", "build", "--outdir", str(DIST), str(package.path))
    # Siblings must come from dist/, never from a registry that might hold a same-named project.
    sibling_pins = Path(session.create_tmp()) / "dt-pins.txt"
    sibling_pins.write_text("".join(f"{p.name}=={p.version}\n" for p in PACKAGES.values()))
    for package in PACKAGES.values():
        with tempfile.TemporaryDirectory(prefix=f"dt-clean-{package.name}-") as venv:
            session.run("python", "-m", "venv", venv)
            python = str(Path(venv) / "bin" / "python")
            session.run(
                python, "-m", "pip", "install", "--quiet", "--find-links", str(DIST),
                "-c", str(CONSTRAINTS), "-c", str(sibling_pins), package.name,
                external=True,
            )  # fmt: skip
            session.run(python, "-c", f"import {package.import_name}", external=True)


@nox.session
def bench(session: nox.Session) -> None:
    """Run benchmarks/*.py (each prints JSON; ``_*.py`` are shared helpers). ``nox -s bench -- demo.py``
    runs one.

    ops.py compares against torchvision, which imports only beside the compat torch: ``bench-ops``."""
    _install_from_checkout(session, sorted(PACKAGES))
    session.install("-c", str(CONSTRAINTS), "-r", str(ROOT / "benchmarks" / "requirements.txt"))
    found = [p.name for p in (ROOT / "benchmarks").glob("*.py") if not p.name.startswith("_")]
    scripts = session.posargs or sorted(name for name in found if name != "ops.py")
    for script in scripts:
        session.run("python", str(ROOT / "benchmarks" / script))


# dt-ops: one wheel for several torch releases, the CUDA build, the kernel benchmark -----------------


def _dt_ops_wheel(session: nox.Session, outdir: str, *config: str, env: dict[str, str] | None = None) -> Path:
    """Build the dt-ops wheel into outdir (an isolated build: no torch is needed to compile it)."""
    package = PACKAGES["dt-ops"]
    command = ["python", "-m", "pip", "wheel", "--no-deps", "--wheel-dir", outdir, *config]
    session.run(*command, str(package.path), env=env)
    return next(Path(outdir).glob("dt_ops-*.whl"))


@nox.session
def compat(session: nox.Session) -> None:
    """Build the dt-ops wheel once, install that same wheel next to the other torch release of
    constraints-compat.txt (torch 2.14.1 + torchvision 0.29.1) and run dt-ops' tests there."""
    package = PACKAGES["dt-ops"]
    with tempfile.TemporaryDirectory(prefix="dt-ops-wheel-") as outdir:
        wheel = _dt_ops_wheel(session, outdir)
        session.install("-c", str(COMPAT_CONSTRAINTS), "torch", "torchvision", f"{wheel}[test]")
        # A reused venv already holds dt-ops of the same version: replace it with this very wheel.
        session.install("--no-deps", "--force-reinstall", str(wheel))
    show = "import torch, dt_ops; print('torch', torch.__version__, '| dt_ops', dt_ops.__file__)"
    session.run("python", "-c", show)
    session.run("pytest", str(package.tests), "-m", "not slow", *session.posargs)


@nox.session(name="build-cuda")
def build_cuda(session: nox.Session) -> None:
    """Compile dt-ops with its CUDA kernels (DT_OPS_CUDA=ON, nvcc) to prove they build; no GPU is needed.
    ``nox -s build-cuda -- "80;90"`` picks the CUDA architectures (default: the CMakeLists list)."""
    architectures = session.posargs[0] if session.posargs else "75;80;86;89;90"
    config = ["-v", "-C", "build-dir=build/cuda-{wheel_tag}"]
    config += ["-C", f"cmake.define.CMAKE_CUDA_ARCHITECTURES={architectures}"]
    with tempfile.TemporaryDirectory(prefix="dt-ops-cuda-") as outdir:
        wheel = _dt_ops_wheel(session, outdir, *config, env={"DT_OPS_CUDA": "ON"})
        session.install("-c", str(CONSTRAINTS), str(wheel))
        session.install("--no-deps", "--force-reinstall", str(wheel))
    check = (
        "import subprocess, dt_ops._C as c; "
        "assert c.has_cuda and hasattr(c, 'roi_align_forward_cuda'), 'no CUDA kernels in the build'; "
        "deps = subprocess.run(['readelf', '-d', c.__file__], capture_output=True, text=True).stdout; "
        "assert 'libtorch' not in deps and 'libc10' not in deps, deps; "
        "print('CUDA build OK:', c.__file__)"
    )
    session.run("python", "-c", check)


@nox.session(name="bench-ops")
def bench_ops(session: nox.Session) -> None:
    """benchmarks/ops.py: dt-ops against torchvision's CPU kernels (needs the compat torch pair)."""
    with tempfile.TemporaryDirectory(prefix="dt-ops-wheel-") as outdir:
        wheel = _dt_ops_wheel(session, outdir)
        session.install("-c", str(COMPAT_CONSTRAINTS), "torch", "torchvision", str(wheel))
        session.install("--no-deps", "--force-reinstall", str(wheel))
    session.run("python", str(ROOT / "benchmarks" / "ops.py"))
