"""qmailsim: qmail's architecture made visible, runnable and measurable.

`sim.qmail` holds qmail's decisions (pure, no I/O); `sim.kernel` the system-call vocabulary
and the kernels that perform it; `sim.programs` the qmail programs written against it.
"""

__version__ = "0.1.0"


def __getattr__(name: str) -> object:
    """`sim.run(...)`, imported on first use so that `import sim` stays cheap."""
    if name == "run":
        import importlib

        return importlib.import_module("sim.run")
    raise AttributeError(f"module 'sim' has no attribute {name!r}")
