"""The discrete-event model: the outside world around the qmail programs on SimKernel.

`world` builds a run from a scenario: qmail hosts (`host`, their homes in a MemFS and their
boot script), remote MTAs (`remote`), the DNS (`dns`), the workload's senders (`arrivals`,
`clients`) and the faults (`faults`). After the run, `ledger` reads each host's qmail-send log
(`logs`) as qmailanalog does and `summary` turns it into the result. `sim.run` is the API.
"""
