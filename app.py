"""Run the Playground web app: python app.py [--host HOST] [--port PORT]."""

import argparse
import sys

from playground.cli import add_serve_arguments, serve

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="Playground: chat with base and fine-tuned models, compare, curate, train.")
    add_serve_arguments(parser)
    sys.exit(serve(parser.parse_args()))
