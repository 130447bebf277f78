"""The launcher check: `ldd` output with missing libraries becomes one line naming the packages."""

import sys
from pathlib import Path

import pytest

from app import qt_check

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Qt's X11 plugin exists on Linux only")

LDD_MISSING = """\
\tlinux-vdso.so.1 (0x00007ffd5b7f5000)
\tlibQt6XcbQpa.so.6 => /venv/PySide6/Qt/lib/libQt6XcbQpa.so.6 (0x00007f1c2c200000)
\tlibxcb-icccm.so.4 => not found
\tlibxcb-keysyms.so.1 => not found
\tlibxcb.so.1 => /lib/x86_64-linux-gnu/libxcb.so.1 (0x00007f1c2c1d0000)
\tlibxcb-icccm.so.4 => not found
\tlibfancy-new.so.3 => not found
"""


def fake_plugin(tmp_path: Path) -> Path:
    plugin = tmp_path / "Qt" / "plugins" / "platforms" / "libqxcb.so"
    plugin.parent.mkdir(parents=True)
    plugin.write_bytes(b"\x7fELF")
    return plugin


def test_missing_libraries_are_named_with_their_packages_on_one_line(tmp_path):
    plugin = fake_plugin(tmp_path)
    asked = []

    def ldd(path):
        asked.append(path)
        return LDD_MISSING

    message = qt_check.check(plugin, ldd=ldd, env={}, loadable=lambda _: True)
    assert asked == [str(plugin)]
    assert "\n" not in message
    assert "libxcb-icccm.so.4, libxcb-keysyms.so.1, libfancy-new.so.3" in message   # each once
    assert "sudo apt-get install libxcb-icccm4 libxcb-keysyms1 (Debian/Ubuntu)" in message
    assert "sudo dnf install xcb-util-wm xcb-util-keysyms (Fedora)" in message
    assert "libfancy-new.so.3 with apt-file search" in message   # an unknown library is still named


def test_nothing_to_say_when_every_library_is_found_or_no_x11_window_is_wanted(tmp_path):
    plugin = fake_plugin(tmp_path)
    found = "\tlibxcb.so.1 => /lib/x86_64-linux-gnu/libxcb.so.1 (0x1)\n"
    assert qt_check.check(plugin, ldd=lambda _: found, env={}, loadable=lambda _: True) is None
    assert qt_check.check(plugin, ldd=lambda _: LDD_MISSING, env={"QT_QPA_PLATFORM": "offscreen"}) is None
    assert qt_check.check(plugin, ldd=lambda _: LDD_MISSING, env={"QT_QPA_PLATFORM": "xcb"}) is not None


def test_a_library_qt_opens_at_run_time_is_checked_too(tmp_path):
    """libxcb-cursor is dlopened by Qt >= 6.5, so ldd never lists it; without it the plugin aborts."""
    found = "\tlibxcb.so.1 => /lib/x86_64-linux-gnu/libxcb.so.1 (0x1)\n"
    asked = []

    def loadable(soname):
        asked.append(soname)
        return False

    message = qt_check.check(fake_plugin(tmp_path), ldd=lambda _: found, env={}, loadable=loadable)
    assert asked == ["libxcb-cursor.so.0"]
    assert "needs libxcb-cursor.so.0" in message and "sudo apt-get install libxcb-cursor0 (Debian/Ubuntu)" in message


def test_no_ldd_means_no_claim(tmp_path):
    def no_ldd(_path):
        raise FileNotFoundError("ldd")

    assert qt_check.check(fake_plugin(tmp_path), ldd=no_ldd, env={}) is None


def test_the_installed_wheel_plugin_is_found_without_importing_qt():
    plugin = qt_check.plugin_path()
    assert plugin is not None and plugin.name == "libqxcb.so" and plugin.is_file()
