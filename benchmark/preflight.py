"""Checks of the environment a run needs, made before Ray starts or anything is recorded:
the results folder, the MLflow tracking URI and the Ray address. Each mistake is a UserError
(exit status 2, one line naming the option, the value and the fix)."""

from __future__ import annotations

import shlex
import socket
import tempfile
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit

from lsmia_bench.kernel.errors import UserError

#: Store schemes MLflow's tracking client accepts (plus plain paths and file: URIs).
TRACKING_SCHEMES = {"sqlite", "postgresql", "mysql", "mssql", "http", "https", "databricks",
                    "file"}
#: How long a tracking server or Ray head may take to answer before the run is refused.
CONNECT_TIMEOUT_S = 5.0


def results_folder(text: str, option: str = "--results") -> Path:
    """The results folder as an absolute path, refused when it is empty, a file, or cannot be
    written (a read-only mount, no permission)."""
    if not text.strip():
        raise UserError(option, text, "Give a folder, e.g. --results results (an empty value "
                        "would write into the current folder).", problem="empty path")
    path = Path(text).expanduser().resolve()
    if path.exists() and not path.is_dir():
        raise UserError(option, str(path), "Give a folder, not a file (e.g. --results "
                        f"{quote(str(path.parent / 'results'))}).", problem="this is a file")
    existing = path
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise UserError(option, str(path), "Give a folder below a folder, not below a file.",
                        problem=f"{existing} is a file")
    problem = _not_writable(existing)
    if problem:
        raise UserError(option, str(path), "Give a folder you can write to (--results DIR).",
                        problem=problem)
    return path


def _not_writable(folder: Path) -> str | None:
    """None when a file can be created in ``folder``, else why not."""
    try:
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".lsmia-write-check-"):
            return None
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        return f"cannot write in {folder} ({reason})"


def tracking_uri(uri: str | None, option: str = "--tracking-uri") -> None:
    """A tracking URI MLflow accepts; an http(s) server must answer within a few seconds."""
    if uri is None:
        return
    scheme = urlsplit(uri).scheme.split("+")[0].lower()
    if "://" not in uri and ":" not in uri.split("/")[0]:
        return  # a plain path: MLflow's file store
    if scheme not in TRACKING_SCHEMES:
        raise UserError(option, uri, "Use sqlite:///path/to/mlflow.db, http(s)://host:port of "
                        "an MLflow server, or a database URI (postgresql://, mysql://, "
                        "mssql://); or leave it out for a SQLite file in the results folder.",
                        problem=f"MLflow does not know the scheme {scheme!r}")
    if scheme in ("http", "https"):
        health = uri.rstrip("/") + "/health"
        try:
            with urllib.request.urlopen(health, timeout=CONNECT_TIMEOUT_S):  # noqa: S310
                return
        except urllib.error.HTTPError:
            return  # something answers (an older server without /health, a proxy)
        except (urllib.error.URLError, OSError, ValueError) as exc:
            reason = getattr(exc, "reason", exc)
            raise UserError(option, uri, "Start the MLflow server (mlflow server --host "
                            "127.0.0.1 --port PORT) or fix the address; or leave the option "
                            "out for a SQLite file in the results folder.",
                            problem=f"no MLflow server answered within {CONNECT_TIMEOUT_S:g} s "
                            f"({reason})") from None


def ray_address(address: str | None, option: str = "--address") -> None:
    """A Ray head at ``host:port`` or ``ray://host:port`` must accept a connection within a
    few seconds (``auto`` is left to Ray: it reads the local cluster's address file)."""
    if address is None or address == "auto":
        return
    target = address.removeprefix("ray://")
    host, _, port = target.rpartition(":")
    if not host or not port.isdigit():
        raise UserError(option, address, "Give host:port of the Ray head (e.g. 127.0.0.1:6379, "
                        "or ray://host:10001 for Ray Client), or auto.",
                        problem="not an address")
    try:
        with socket.create_connection((host, int(port)), timeout=CONNECT_TIMEOUT_S):
            return
    except OSError as exc:
        raise UserError(option, address, "Start the cluster first (ray start --head --port "
                        f"{port}) or fix the address; leave --address out to run on this "
                        "machine alone.", problem=f"nothing answered within "
                        f"{CONNECT_TIMEOUT_S:g} s ({exc.strerror or exc})") from None


def ray_auth_error(exc: BaseException, address: str | None) -> UserError | None:
    """A UserError when ``exc`` (raised by ``ray.init``) is a token authentication failure."""
    text = f"{type(exc).__name__}: {exc}"
    if not any(word in text for word in ("InvalidAuthToken", "Unauthenticated",
                                         "auth token", "authentication")):
        return None
    return UserError("--address", address or "local", "The cluster uses token authentication: "
                     "set RAY_AUTH_MODE=token and the cluster's token (RAY_AUTH_TOKEN) in this "
                     "shell as on the head node (see docs/cluster.md).",
                     problem="Ray refused the connection (authentication)")


def quote(text: str) -> str:
    """A path or URI as it can be pasted into a shell (quoted when it has special characters)."""
    return shlex.quote(text)

