"""Playground: chat, compare, curate and fine-tune language models."""
