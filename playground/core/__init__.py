"""The base every capability stands on: errors, messages, sampling params, the SQLite store and its migrations, tokens, prices, prompt files."""
