"""The composition root: builds the Services every handler is given, once at startup; no module-level state."""

import os
import threading
from functools import partial
from pathlib import Path

from .chat.personas import load_personas
from .chat.services import Services
from .core.errors import FileProblem
from .core.redaction import configured_secrets
from .core.store import Store
from .finetune.store import fine_tuned_models
from .providers import EndpointConfig
from .providers.lookup import LookupProvider
from .providers.openai import load_providers_file, make_provider, openai_endpoint
from .providers.registry import Registry

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def home_dir(environ: dict | None = None) -> Path:
    environ = os.environ if environ is None else environ
    return Path(environ.get("PLAYGROUND_HOME") or Path.cwd() / ".playground")


def build_services(
    home: Path | None = None,
    personas_dir: Path = PROJECT_ROOT / "personas",
    datasets_dir: Path = PROJECT_ROOT / "datasets",
    providers_file: Path | None = None,
    environ: dict | None = None,
    detect_local: bool = True,
    discover: bool = True,
) -> Services:
    environ = dict(os.environ if environ is None else environ)
    home = Path(home) if home else home_dir(environ)
    store = Store(home / "playground.db")
    # Replies that were streaming when an earlier app died are marked interrupted (another live app's are not).
    store.recover_interrupted()
    problems: list[str] = []
    configs: list[EndpointConfig] = []
    if (openai := openai_endpoint(environ)) is not None:
        configs.append(openai)
    providers_file = providers_file or (home / "providers.json")
    if providers_file.exists():
        try:
            configs += load_providers_file(providers_file)
        except FileProblem as e:
            problems.append(str(e))
    secrets = configured_secrets(environ, [c.api_key_env for c in configs])  # any endpoint's error may echo any key
    registry = Registry([make_provider(c, environ, secrets) for c in configs], LookupProvider(store, datasets_dir),
                        partial(fine_tuned_models, store))
    personas, persona_problems = load_personas(personas_dir)
    problems += [str(p) for p in persona_problems]
    services = Services(store, registry, personas, home, Path(datasets_dir), Path(personas_dir), problems)
    if discover:
        # Model lists and local servers are looked up beside startup, never in its way.
        threading.Thread(target=_discover, args=(registry, detect_local), daemon=True).start()
    else:
        registry.listed.set()  # no lookup is coming: pickers must not wait for one
    return services


def _discover(registry: Registry, detect_local: bool) -> None:
    registry.refresh()
    if detect_local:
        registry.detect_local_servers()
