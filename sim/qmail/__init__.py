"""What qmail decides, with no clock and no I/O.

Every module here is pure: bytes or strings in, values out. Programs in `sim.programs`
perform the I/O through a kernel and call these functions for every decision, so the
live mini-MTA and the simulation decide identically. Conventions:

* wire data (SMTP lines, message bodies, envelopes, pipe protocols) is `bytes`;
* addresses, domains and control values are `str`, decoded from bytes as latin-1
  (`sim.qmail.text`), so that every byte round-trips unchanged as qmail is 8-bit clean;
* qmail's reply strings, exit codes and file names live in named tables, word for word.
"""
