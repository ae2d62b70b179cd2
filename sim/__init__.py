"""qmailsim: qmail's architecture made visible, runnable and measurable.

`sim.qmail` holds qmail's decisions (pure, no I/O); `sim.kernel` the system-call vocabulary
and the kernels that perform it; `sim.programs` the qmail programs written against it.
"""

__version__ = "0.1.0"
