"""Out-of-tree drivers: a driver package installed into a venv of its own is served by name.

The example package (tests/fixtures/labd_driver_example, the one docs/writing-a-driver.md
walks through) is built and installed the way a user installs it, into a temporary venv
whose site-packages reaches labd's own through a ``.pth`` file. Its entry point is found
the way every installed package's is, through its ``.dist-info`` on ``sys.path``: labd's
own interpreter, which lacks it, does not know the name. The daemon is a real
``labd serve`` run by the venv's Python, read through the real RPC.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from capabilities import Readable
from labd.client import connect_blocking
from labd.config import parse_config
from labd.errors import ConfigError
from tests.labd.rpc.conftest import REPO, LabdProcess, wait_until_ready

if TYPE_CHECKING:
    from decimal import Decimal

EXAMPLE = REPO / "tests" / "fixtures" / "labd_driver_example"
USB = "USB0::0x1234::0x0100::PM100001::INSTR"
LAN = "TCPIP0::192.168.1.60::inst0::INSTR"

#: A package that declares a driver under a built-in name, to see the built-in win.
CLASHING_PYPROJECT = """
[project]
name = "clashing-labd"
version = "2.0.0"
[project.entry-points."labd.drivers"]
"sim.stage" = "clashing_labd:Stage"
[build-system]
requires = ["uv_build>=0.8,<1"]
build-backend = "uv_build"
[tool.uv.build-backend]
module-root = ""
"""
CLASHING_MODULE = '''
class Stage:
    """Would fail any config that uses it: it takes no parameters."""

    async def open(self) -> None: ...

    async def close(self) -> None: ...
'''


@dataclass(frozen=True)
class Venv:
    python: Path
    site: Path
    """Its site-packages, where the example package is installed."""
    package: Path
    """The example package's source (a copy: building and testing it writes there)."""
    uv: str

    def install(self, source: Path) -> None:
        """Build and install ``source`` the way a user would, with no index: the example's
        only dependency is labd, which the venv reaches already."""
        subprocess.run(
            [self.uv, "pip", "install", "--quiet", "--offline", "--no-cache", "--no-deps",
             "--python", str(self.python), str(source)],
            check=True,
        )  # fmt: skip

    def labd(self, *args: str) -> subprocess.CompletedProcess[str]:
        """A ``labd`` command run by the venv's Python, to its end."""
        return subprocess.run(
            [self.python, "-m", "labd", *args],
            capture_output=True, text=True, timeout=60, env=_env(), cwd=REPO,
        )  # fmt: skip


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory) -> Venv:
    uv = shutil.which("uv")
    if uv is None:
        pytest.skip("uv is not on PATH: it builds and installs the example driver package")
    root = tmp_path_factory.mktemp("out_of_tree")
    package = root / "labd_driver_example"
    shutil.copytree(EXAMPLE, package, ignore=shutil.ignore_patterns("__pycache__", ".*cache"))
    subprocess.run(
        [uv, "venv", "--quiet", "--python", sys.executable, str(root / "venv")], check=True
    )
    python = root / "venv" / "bin" / "python"
    site = Path(
        subprocess.check_output(
            [python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"], text=True
        ).strip()
    )
    labd_site = sysconfig.get_path("purelib")
    (site / "labd_env.pth").write_text(f"import site; site.addsitedir({labd_site!r})\n")
    env = Venv(python, site, package, uv)
    env.install(package)
    return env


def _env() -> dict[str, str]:
    return dict(os.environ, PYTHONPATH=str(REPO), COLUMNS="200")


def serve(venv: Venv, tmp: Path, config: str) -> LabdProcess:
    """``labd serve`` run by the venv's Python; waits until it is ready."""
    tmp.mkdir(parents=True, exist_ok=True)
    config_path = tmp / "lab.toml"
    config_path.write_text(config)
    sock = tmp / "run" / "labd.sock"
    log = tmp / "labd.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [venv.python, "-m", "labd", "serve", "--config", config_path, "--socket", sock],
            stdout=out, stderr=subprocess.STDOUT, env=_env(), cwd=REPO,
        )  # fmt: skip
    return wait_until_ready(proc, sock, log)


def meter_table(name: str, driver: str, resource: str, venv: Venv, extra: str = "") -> str:
    yaml = venv.site / "acme_labd" / "acme_pm100.yaml"
    return (
        f'[instruments.{name}]\ndriver = "{driver}"\nresource = "{resource}"\n'
        f'visa_library = "{yaml}@sim"\n{extra}'
    )


class HintedForTypeCheckersOnly:
    """A driver of the lab's own code whose hints name a class imported only for mypy."""

    def __init__(self, *, level: Decimal) -> None:
        self.level = level

    async def open(self) -> None: ...

    async def close(self) -> None: ...


def test_labd_alone_does_not_know_the_installed_name() -> None:
    from drivers.registry import driver_names

    assert "acme.meter" not in driver_names()


def test_a_built_in_named_by_its_path_keeps_its_units_and_references() -> None:
    config = parse_config(
        '[instruments.stage]\ndriver = "drivers.sim.stage:SimStage"\nsettle_time = "20 ms"\n'
        '[instruments.meter]\ndriver = "sim.power_meter"\nstage = "stage"\n'
    )
    assert config.instruments[0].params == {"settle_time": pytest.approx(0.02)}


def test_each_bad_path_is_one_line_saying_what_is_wrong() -> None:
    with pytest.raises(ConfigError) as e:
        parse_config(
            '[instruments.a]\ndriver = "drivers.sim.stage:SimStag"\n'
            '[instruments.b]\ndriver = "collections:OrderedDict"\n'
            '[instruments.c]\ndriver = "drivers/sim/stage.py:SimStage"\n',
            source="lab.toml",
        )
    assert str(e.value).splitlines() == [
        f"lab.toml:2: instruments.a.driver: driver 'drivers.sim.stage:SimStag': module"
        f" 'drivers.sim.stage' ({REPO / 'drivers/sim/stage.py'}) has no 'SimStag'"
        " (did you mean 'SimStage'?)",
        "lab.toml:4: instruments.b.driver: driver 'collections:OrderedDict': class"
        " collections:OrderedDict is not a driver: it has no async open() or async close()"
        " (see docs/writing-a-driver.md)",
        "lab.toml:6: instruments.c.driver: 'drivers/sim/stage.py:SimStage' is not a"
        ' module:Class path such as "mypkg.meter:Meter" (dotted module, a colon, the class)',
    ]


def test_hints_that_cannot_be_evaluated_leave_parameters_unchecked(
    caplog: pytest.LogCaptureFixture,
) -> None:
    driver = f"{__name__}:{HintedForTypeCheckersOnly.__name__}"
    config = parse_config(f'[instruments.x]\ndriver = "{driver}"\nlevel = "high"\n')
    assert config.instruments[0].params == {"level": "high"}
    assert f"driver {driver}: the type hints of HintedForTypeCheckersOnly.__init__" in caplog.text


def test_served_by_entry_point_name_and_by_module_class_path(venv: Venv, tmp_path: Path) -> None:
    config = meter_table("meter", "acme.meter", USB, venv, 'wavelength_nm = "0.85 um"\n')
    config += meter_table("meter2", "acme_labd.meter:AcmeMeter", LAN, venv)
    daemon = serve(venv, tmp_path, config)
    try:
        with connect_blocking(daemon.address) as lab:
            infos = {info.name: info for info in lab.instruments()}
            assert {n: (i.driver, i.capabilities) for n, i in infos.items()} == {
                "meter": ("acme.meter", ["Readable", "Configurable"]),
                "meter2": ("acme_labd.meter:AcmeMeter", ["Readable", "Configurable"]),
            }
            for name in ("meter", "meter2"):
                reading = lab.instrument(name).get(Readable).read()
                assert (reading.value, reading.unit) == (pytest.approx(0.00123), "W")
            # Its declared controls are parameters, served like any built-in driver's.
            parameters = lab.instrument("meter").parameters
            assert [p.name for p in parameters.list()] == ["wavelength", "averages"]
            assert parameters.set("wavelength", "0.9 um") == pytest.approx(900)
    finally:
        daemon.stop()
    assert daemon.proc.returncode == 0, daemon.log.read_text()


def test_parameters_are_checked_by_the_constructor_type_hints(venv: Venv, tmp_path: Path) -> None:
    path = tmp_path / "lab.toml"
    path.write_text(
        meter_table("meter", "acme.meter", USB, venv, 'averages = 2.5\nwavelength_nm = "3 V"\n')
    )
    result = venv.labd("serve", "--config", str(path), "--socket", str(tmp_path / "s.sock"))
    assert result.returncode == 2, result.stderr
    assert result.stderr.splitlines() == [
        f"labd: {path}:5: instruments.meter.averages: must be a whole number, got 2.5",
        f"labd: {path}:6: instruments.meter.wavelength_nm: '3 V' is a voltage, not a length (in nm)",
    ]


def test_a_missing_module_is_one_line_and_exit_2(tmp_path: Path) -> None:
    path = tmp_path / "lab.toml"
    path.write_text('[instruments.x]\ndriver = "nosuch.module:Class"\n')
    result = subprocess.run(
        [sys.executable, "-m", "labd", "serve", "--config", path, "--socket", tmp_path / "s.sock"],
        capture_output=True, text=True, timeout=60, env=_env(), cwd=REPO,
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert result.stderr.splitlines() == [
        f"labd: {path}:2: instruments.x.driver: driver 'nosuch.module:Class': no module named"
        f" 'nosuch' in {sys.executable}; check the spelling, or install the package that"
        " provides it there"
    ]
    assert not (tmp_path / "s.sock").exists()


def test_the_example_package_passes_its_own_tests(venv: Venv) -> None:
    result = subprocess.run(
        [venv.python, "-m", "pytest", "-q", "-p", "no:cacheprovider"],
        capture_output=True, text=True, timeout=120, env=_env(), cwd=venv.package,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "5 passed" in result.stdout


def test_a_built_in_name_wins_over_an_installed_one_with_a_warning(
    venv: Venv, tmp_path: Path
) -> None:
    clashing = tmp_path / "clashing"
    (clashing / "clashing_labd").mkdir(parents=True)
    (clashing / "pyproject.toml").write_text(CLASHING_PYPROJECT)
    (clashing / "clashing_labd" / "__init__.py").write_text(CLASHING_MODULE)
    venv.install(clashing)
    try:
        listing = venv.labd("drivers")
        assert listing.returncode == 0, listing.stderr
        rows = [line for line in listing.stdout.splitlines() if " sim.stage " in line]
        assert len(rows) == 2 and "labd" in rows[0] and "hidden" in rows[1], listing.stdout
        assert any(
            "acme.meter" in line and "acme-labd 0.1.0" in line
            for line in listing.stdout.splitlines()
        )
        warning = (
            "installed package clashing-labd 2.0.0 declares driver 'sim.stage'"
            " (clashing_labd:Stage), which is a built-in name; the built-in"
            " drivers.sim.stage:SimStage is used; to use the other, write driver ="
            ' "clashing_labd:Stage"'
        )
        assert warning in listing.stderr
        # The clashing class takes no parameters: a config giving one is served only if
        # the built-in is used.
        daemon = serve(
            venv, tmp_path, '[instruments.stage]\ndriver = "sim.stage"\nvelocity = 5.0\n'
        )
        daemon.stop()
        assert warning in daemon.log.read_text()
    finally:
        subprocess.run(
            [venv.uv, "pip", "uninstall", "--quiet", "--python", str(venv.python), "clashing-labd"],
            check=True,
        )  # fmt: skip
