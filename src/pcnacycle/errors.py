"""The one exception type that carries a message meant for the user.

Anything raised as :class:`PcnacycleError` is printed by the command line as a
single ``error: ...`` line (no traceback), so its message must name the file,
key or value at fault and say what would be accepted instead.
"""


class PcnacycleError(Exception):
    """Bad input, bad configuration or an impossible request, explained."""
