"""Before `make run` opens the window: can Qt's X11 platform plugin load on this machine?

On a fresh Debian/Ubuntu/Fedora machine the pip wheel of PySide6 brings Qt but not the system's
xcb libraries its platform plugin links against, and Qt's own message names the wrong one
("libxcb-cursor0 is needed" while the missing ones are others). This asks the dynamic loader
directly: `ldd` on PySide6's platforms/libqxcb.so lists every shared library it cannot find, and
each is mapped to its Debian/Ubuntu and Fedora package; the libraries Qt opens itself at run time
(libxcb-cursor, which ldd cannot see) are tried with the loader. Qt is never imported, so the check works
exactly when Qt itself would abort.

`python -m app.qt_check` prints nothing and exits 0 when the plugin loads (or when no X11 window
is wanted: QT_QPA_PLATFORM names another platform, or this is not Linux); otherwise it prints one
line naming the missing libraries, their packages and the install command, and exits 1.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path
from typing import Callable

# soname -> (Debian/Ubuntu package, Fedora package). The libraries Qt 6's xcb plugin and the Qt
# libraries it loads link against, beyond glibc.
PACKAGES: dict[str, tuple[str, str]] = {
    "libxcb-cursor.so.0": ("libxcb-cursor0", "xcb-util-cursor"),
    "libxcb-icccm.so.4": ("libxcb-icccm4", "xcb-util-wm"),
    "libxcb-keysyms.so.1": ("libxcb-keysyms1", "xcb-util-keysyms"),
    "libxcb-image.so.0": ("libxcb-image0", "xcb-util-image"),
    "libxcb-render-util.so.0": ("libxcb-render-util0", "xcb-util-renderutil"),
    "libxcb-util.so.1": ("libxcb-util1", "xcb-util"),
    "libxcb-xkb.so.1": ("libxcb-xkb1", "libxcb"),
    "libxcb-randr.so.0": ("libxcb-randr0", "libxcb"),
    "libxcb-shape.so.0": ("libxcb-shape0", "libxcb"),
    "libxcb-shm.so.0": ("libxcb-shm0", "libxcb"),
    "libxcb-sync.so.1": ("libxcb-sync1", "libxcb"),
    "libxcb-xfixes.so.0": ("libxcb-xfixes0", "libxcb"),
    "libxcb-render.so.0": ("libxcb-render0", "libxcb"),
    "libxcb-xinerama.so.0": ("libxcb-xinerama0", "libxcb"),
    "libxcb-xinput.so.0": ("libxcb-xinput0", "libxcb"),
    "libxcb-glx.so.0": ("libxcb-glx0", "libxcb"),
    "libxcb.so.1": ("libxcb1", "libxcb"),
    "libX11-xcb.so.1": ("libx11-xcb1", "libX11-xcb"),
    "libX11.so.6": ("libx11-6", "libX11"),
    "libXrender.so.1": ("libxrender1", "libXrender"),
    "libSM.so.6": ("libsm6", "libSM"),
    "libICE.so.6": ("libice6", "libICE"),
    "libxkbcommon-x11.so.0": ("libxkbcommon-x11-0", "libxkbcommon-x11"),
    "libxkbcommon.so.0": ("libxkbcommon0", "libxkbcommon"),
    "libEGL.so.1": ("libegl1", "libglvnd-egl"),
    "libGL.so.1": ("libgl1", "libglvnd-glx"),
    "libOpenGL.so.0": ("libopengl0", "libglvnd-opengl"),
    "libGLX.so.0": ("libglx0", "libglvnd-glx"),
    "libfontconfig.so.1": ("libfontconfig1", "fontconfig"),
    "libfreetype.so.6": ("libfreetype6", "freetype"),
    "libdbus-1.so.3": ("libdbus-1-3", "dbus-libs"),
    "libglib-2.0.so.0": ("libglib2.0-0", "glib2"),
    "libgthread-2.0.so.0": ("libglib2.0-0", "glib2"),
}

Ldd = Callable[[str], str]   # path -> ldd's standard output
Loadable = Callable[[str], bool]   # soname -> whether the dynamic loader can open it

# Qt >= 6.5 opens these itself at run time (dlopen), so they are not in ldd's list, yet the plugin
# aborts without them ("xcb-cursor0 or libxcb-cursor0 is needed", seen on a fresh Debian 12 machine
# whose ldd found every link dependency).
DLOPENED = ("libxcb-cursor.so.0",)


def plugin_path() -> Path | None:
    """PySide6's platforms/libqxcb.so, found without importing Qt; None when absent."""
    spec = importlib.util.find_spec("PySide6")
    if spec is None or not spec.submodule_search_locations:
        return None
    for root in spec.submodule_search_locations:
        for candidate in (Path(root) / "Qt" / "plugins" / "platforms" / "libqxcb.so",
                          Path(root) / "plugins" / "platforms" / "libqxcb.so"):
            if candidate.is_file():
                return candidate
    return None


def run_ldd(path: str) -> str:
    return subprocess.run(["ldd", path], capture_output=True, text=True, timeout=30, check=False).stdout


def missing_libraries(path: str, ldd: Ldd = run_ldd) -> list[str]:
    """Sonames ldd reports as 'not found' for the plugin (and what it loads), each once, in order."""
    missing: list[str] = []
    for line in ldd(path).splitlines():
        name, _, rest = line.strip().partition("=>")
        if "not found" in rest and name.strip() not in missing:
            missing.append(name.strip())
    return missing


def can_load(soname: str) -> bool:
    import ctypes

    try:
        ctypes.CDLL(soname)
    except OSError:
        return False
    return True


def install_line(missing: list[str]) -> str:
    """One line: what is missing, the packages and the command for Debian/Ubuntu and Fedora."""
    debian: list[str] = []
    fedora: list[str] = []
    unknown: list[str] = []
    for soname in missing:
        if soname not in PACKAGES:
            unknown.append(soname)
            continue
        deb, fed = PACKAGES[soname]
        debian += [deb] if deb not in debian else []
        fedora += [fed] if fed not in fedora else []
    parts = [f"Qt cannot open a window: its X11 plugin needs {', '.join(missing)}, missing on this machine."]
    if debian:
        parts.append(f"Install: sudo apt-get install {' '.join(debian)} (Debian/Ubuntu) "
                     f"or sudo dnf install {' '.join(fedora)} (Fedora), then make run again.")
    if unknown:
        parts.append(f"Find the package holding {', '.join(unknown)} with apt-file search or dnf provides.")
    return " ".join(parts)


def display_expected(env: dict[str, str] | None = None) -> bool:
    """The X11 plugin is what Qt loads: Linux, and QT_QPA_PLATFORM unset or naming xcb."""
    env = os.environ if env is None else env
    platform = env.get("QT_QPA_PLATFORM", "")
    return sys.platform.startswith("linux") and (not platform or platform.startswith("xcb"))


def check(plugin: Path | None = None, ldd: Ldd = run_ldd, env: dict[str, str] | None = None,
          loadable: Loadable = can_load) -> str | None:
    """The one-line message when the X11 plugin cannot load, None when it can (or is not needed)."""
    if not display_expected(env):
        return None
    plugin = plugin_path() if plugin is None else plugin
    if plugin is None:
        return None   # no wheel layout we know: let Qt speak for itself
    try:
        missing = missing_libraries(str(plugin), ldd)
    except (OSError, subprocess.SubprocessError):
        return None   # no ldd (e.g. a musl system): nothing to say beyond what Qt says
    missing += [soname for soname in DLOPENED if soname not in missing and not loadable(soname)]
    return install_line(missing) if missing else None


def main() -> int:
    message = check()
    if message:
        print(message, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
