"""The panels of the qmailsim TUI, one widget per module."""
