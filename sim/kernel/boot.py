"""`python -m sim.kernel.boot PROG ARG…`: the entry point of a really exec'd qmail program.

RealKernel in exec mode `execve`s a fresh interpreter here; the kernel's state that a real
exec keeps (host, trace descriptor, the real and effective account) comes in the
QMAILSIM_KERNEL environment variable, which is removed before the program sees its environment.
"""

from __future__ import annotations

import importlib
import json
import os
import sys

from sim.kernel.real import RealKernel


def main() -> int:
    boot = json.loads(os.environ.pop("QMAILSIM_KERNEL"))
    module, _, name = boot["resolver"].partition(":")
    resolve = getattr(importlib.import_module(module), name)
    kernel = RealKernel(
        resolve,
        host=boot["host"],
        trace_fd=boot["trace_fd"],
        exec_mode=True,
        resolver_path=boot["resolver"],
    )
    kernel.ppid = boot["ppid"]
    kernel.ident.ruser, kernel.ident.ruid = boot["ruser"], boot["ruid"]
    kernel.ident.user, kernel.ident.uid = boot["user"], boot["uid"]
    prog, argv = sys.argv[1], sys.argv[2:]
    main_fn, _ = resolve(prog)
    kernel.ident.prog = prog
    return kernel._drive(main_fn([prog, *argv], dict(os.environ))) & 0xFF


if __name__ == "__main__":
    sys.exit(main())
