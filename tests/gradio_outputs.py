"""Reading a streamed event's outputs as the page ends up showing them."""

UNCHANGED = {"__type__": "update"}


def last_set(outputs: list, index: int):
    """The value the app last set for output `index`: a later bare update means "no change", not a value."""
    for values in reversed(outputs):
        if values[index] != UNCHANGED:
            return values[index]
    raise AssertionError(f"output {index} was never set")
