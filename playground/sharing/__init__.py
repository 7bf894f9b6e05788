"""Sharing a demo: who may log in, the share link, demo mode and its rate limits."""
