"""One wording for a statement pglast cannot parse, wherever it is reported."""


def syntax_message(exc: BaseException) -> str:
    """pglast's own words already say "syntax error at or near ..." for most errors: said once."""
    message = str(exc)
    return message if message.startswith("syntax error") else f"syntax error: {message}"
