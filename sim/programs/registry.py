"""The program table: qmail's program names, the modules that implement them, setuid owners.

Kernels receive `resolve` rather than importing programs, so `sim.kernel` depends on nothing
here. Modules are imported on first use: a forked qmail-smtpd loads only what it runs.
"""

from __future__ import annotations

import importlib

from sim.kernel.effects import ProgramMain

# name -> ("module:function", setuid account or None). qmail-queue is the only setuid one.
PROGRAMS: dict[str, tuple[str, str | None]] = {
    "tcpserver": ("sim.programs.tcpserver:main", None),
    "qmail-smtpd": ("sim.programs.qmail_smtpd:main", None),
    "qmail-queue": ("sim.programs.qmail_queue:main", "qmailq"),
    "qmail-inject": ("sim.programs.qmail_inject:main", None),
    "sendmail": ("sim.programs.sendmail:main", None),
    "qmail-start": ("sim.programs.qmail_start:main", None),
    "qmail-send": ("sim.programs.qmail_send:main", None),
    "qmail-clean": ("sim.programs.qmail_clean:main", None),
    "splogger": ("sim.programs.splogger:main", None),
    "qmail-lspawn": ("sim.programs.qmail_lspawn:main", None),
    "qmail-getpw": ("sim.programs.qmail_getpw:main", None),
    "qmail-local": ("sim.programs.qmail_local:main", None),
    "qmail-rspawn": ("sim.programs.qmail_rspawn:main", None),
    "qmail-remote": ("sim.programs.qmail_remote:main", None),
    "sh": ("sim.programs.sh:main", None),
    "dnsip": ("sim.programs.dnsip:main", None),
    "dnsmx": ("sim.programs.dnsmx:main", None),
    "mta-monolith": ("sim.programs.monolith:main", None),
    "qmail-popup": ("sim.programs.qmail_popup:main", None),
    "checkpassword": ("sim.programs.checkpassword:main", None),
    "qmail-pop3d": ("sim.programs.qmail_pop3d:main", None),
}


def register(name: str, target: str, setuid: str | None = None) -> None:
    """Add a program (`"package.module:main"`) to the table; tests register tiny ones."""
    PROGRAMS[name] = (target, setuid)


def resolve(name: str) -> tuple[ProgramMain, str | None]:
    """Returns (main, setuid account) for program `name`; KeyError if there is none."""
    target, setuid = PROGRAMS[name]
    module, _, function = target.partition(":")
    return getattr(importlib.import_module(module), function or "main"), setuid
