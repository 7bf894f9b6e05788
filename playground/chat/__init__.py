"""Chat: ask a model (build the request, stream, measure, log), conversations, personas and character cards."""
