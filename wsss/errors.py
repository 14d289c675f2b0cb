"""The one error type that means "bad input or params": the CLI turns it into exit code 2."""


class WsssError(Exception):
    """Bad input, bad params or an unusable artifact; the message names the file or field."""
