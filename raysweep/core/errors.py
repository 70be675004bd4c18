"""The one error type for bad user input; the CLI prints it as one line and exits with code 2."""

from __future__ import annotations


class SpecError(ValueError):
    """Bad input: names the file, the key, what was expected and what was given."""

    def __init__(self, message: str, *, file: str | None = None, key: str | None = None) -> None:
        self.file = file
        self.key = key
        self.detail = message
        super().__init__(self._render())

    def _render(self) -> str:
        # one line whatever the input: a key or file name with a newline or control character is quoted
        where = ": ".join(part if part.isprintable() else repr(part) for part in (self.file, self.key) if part)
        return f"{where}: {self.detail}" if where else self.detail

    def located(self, *, file: str | None = None, key_prefix: str | None = None) -> SpecError:
        """The same error with the file and/or an outer key path filled in."""
        key = self.key
        if key_prefix:
            key = f"{key_prefix}.{key}" if key else key_prefix
        return SpecError(self.detail, file=file or self.file, key=key)
