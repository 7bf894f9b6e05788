"""Domain errors. Each carries a message a person can act on; the UI shows it as is."""


class PlaygroundError(Exception):
    """Base class: the message names the problem and what to do about it."""


class FileProblem(PlaygroundError):
    """A persona, template, providers or dataset file that cannot be used."""

    def __init__(self, path, problem: str, line: int | None = None, field: str | None = None):
        self.path, self.problem, self.line, self.field = str(path), problem, line, field
        where = self.path + (f", line {line}" if line else "") + (f", field '{field}'" if field else "")
        super().__init__(f"{where}: {problem}")


class MissingVariables(PlaygroundError):
    def __init__(self, names: list[str]):
        self.names = names
        listed = ", ".join("{{" + n + "}}" for n in names)
        super().__init__(f"Fill in the variable{'s' if len(names) > 1 else ''} {listed} before sending.")


class EmptyMessage(PlaygroundError):
    def __init__(self):
        super().__init__("The message is empty: type something to send.")


class UnknownModel(PlaygroundError):
    pass
