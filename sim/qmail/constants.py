"""qmail 1.03's compile-time constants and the defaults hard-wired in its programs.

One place for the numbers of the reference's constants cheat-sheet, so the model, the
programs and the tests all use the same values.
"""

SPLIT = 23  # conf-split: queue subdirectories mess/0..22 and friends
SPAWN = 120  # conf-spawn: the byte each spawner sends qmail-send at start
SPAWN_MAX = 255
CONCURRENCY_LOCAL = 10
CONCURRENCY_REMOTE = 20
CHANSKIP = {"local": 10, "remote": 20}  # the retry schedule's per-channel step
QUEUELIFETIME = 604800  # one week
SLEEP_TODO = 1500  # rescan todo/ without a trigger
SLEEP_CLEANUP = 76431  # the 36-hour cleanup scan's period
OSSIFIED = 129600  # 36 h: stale pid/, mess/ and Maildir tmp/ files
DEATH = 86400  # qmail-queue's suicide timer
SLEEP_SYSFAIL = 123
SLEEP_FOREVER = 86400
SLEEP_FUZZ = 1
REPORTMAX = 10000  # qmail-send truncates spawner reports ("we don't trust rspawn")
LSPAWN_REPORTMAX = 3000  # qmail-lspawn truncates qmail-local's output
ADDRESS_MAX_QUEUE = 1003  # qmail-queue exits 11 for an address this long or longer
ADDRESS_MAX_SMTPD = 900  # qmail-smtpd's 555 limit
MAXHOPS = 100
TIMEOUT_SMTPD = 1200
TIMEOUT_REMOTE = 1200
TIMEOUT_CONNECT = 60
TCPTO_RECORDS = 64
TCPTO_RECORD_SIZE = 16
REMOTE_REPLY_MAX = 5000
REMOTE_BUFFER = 1024
MBOX_LOCK_WAIT = 30
MAILDIR_TRIES = 3
MAILDIR_RETRY_SLEEP = 2
MAILDIR_TIMER = 86400
POP3_TIMEOUT = 1200
CHECKPASSWORD_MAX = 512
SPLOGGER_FOLD = 800
CONF_PATRN = 0o002  # mode bits forbidden on ~ and ~/.qmail (world-writable)
BREAK = "-"  # conf-break: user/extension delimiter
TCPSERVER_MAX_CONNECTIONS = 40  # tcpserver -c default

# INSTALL.ids's example accounts: what the trace shows as each program's uid.
QMAIL_UIDS = {
    "root": 0,
    "alias": 7790,
    "qmaild": 7791,
    "qmaill": 7792,
    "qmailp": 7793,
    "qmailq": 7794,
    "qmailr": 7795,
    "qmails": 7796,
}
QMAIL_GIDS = {"qmail": 2107, "nofiles": 2108}
