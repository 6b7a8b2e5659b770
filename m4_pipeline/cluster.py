"""Joining or starting Ray, quietly: the local Ray, a cluster (token authentication included).

Ray's console lines are kept off the terminal (its session logs keep them all), so that the
progress bars and our own one-line errors stay readable.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from .errors import BuildError

__all__ = ["init_ray", "quiet_ray", "ray_where"]


def init_ray(address: str | None = None, num_cpus: int | None = None, temp_dir: str | None = None,
             *, verbose: bool = False):  # fmt: skip
    """Join ``address`` (or ``RAY_ADDRESS``) if given, else start an embedded local Ray.

    A cluster started with ``ray start --head`` uses token authentication when a token exists
    (Ray's default), but a driver given an explicit address does not turn it on by itself: when
    ``RAY_AUTH_MODE`` is unset and a token is at hand (``RAY_AUTH_TOKEN``, ``RAY_AUTH_TOKEN_PATH``
    or ``~/.ray/auth_token``) it is turned on here (a cluster without authentication accepts it
    too). Ray's own console lines are kept off the terminal (they stay in its session logs)."""
    import ray

    if ray.is_initialized():
        return ray
    quiet_ray(verbose)
    address = address or os.environ.get("RAY_ADDRESS") or None
    kwargs = {"include_dashboard": False, "log_to_driver": False, "logging_level": logging.WARNING}
    if address:
        import m4_pipeline

        _use_token_if_available()
        # Ship this package to the cluster's workers (they may not have it installed; the native
        # dependencies - ffmpeg, open3d's EGL, decord - must be installed on every node).
        kwargs["runtime_env"] = {"py_modules": [str(Path(m4_pipeline.__file__).parent)]}
        try:
            ray.init(address=address, **kwargs)
        except (ConnectionError, RuntimeError, ray.exceptions.AuthenticationError) as err:
            raise BuildError(_connect_error(address, err)) from None
    else:
        if temp_dir:
            kwargs["_temp_dir"] = temp_dir
        ray.init(num_cpus=num_cpus, **kwargs)
    quiet_ray(verbose)
    return ray


def ray_where(ray, address: str | None) -> str:
    """The cluster joined, or the local Ray's session folder (its processes' logs and sockets)."""
    if address:
        return address
    try:
        return ray._private.worker._global_node.get_session_dir_path()
    except AttributeError:
        return "local"


def _auth_token_available() -> bool:
    if os.environ.get("RAY_AUTH_TOKEN"):
        return True
    path = os.environ.get("RAY_AUTH_TOKEN_PATH") or str(Path.home() / ".ray" / "auth_token")
    return Path(path).is_file()


def _use_token_if_available() -> None:
    if os.environ.get("RAY_AUTH_MODE") is None and _auth_token_available():
        os.environ["RAY_AUTH_MODE"] = "token"
        from ray._raylet import Config

        Config.initialize("")  # Ray reads the mode once per process: refresh it (as ray start does)


def _connect_error(address: str, err: Exception) -> str:
    text = str(err).splitlines()[0] if str(err) else type(err).__name__
    hint = ""
    if os.environ.get("RAY_AUTH_MODE", "").lower() != "token" and not _auth_token_available():
        hint = ("; if the cluster uses token authentication (Ray's default), give this machine its token: "
                "~/.ray/auth_token, RAY_AUTH_TOKEN_PATH or RAY_AUTH_TOKEN (`ray get-auth-token` on the head "
                "prints it)")  # fmt: skip
    elif "auth" in text.lower() or "Unauthenticated" in text:
        hint = "; the token given does not match the cluster's"
    return f"cannot join the Ray cluster at {address}: {text}{hint}"


def quiet_ray(verbose: bool = False) -> None:
    """Keep Ray's INFO/WARNING lines (Ray Data's execution plans, the token notice) off the
    terminal, where they break the progress bars; its session log files keep them all."""
    if verbose:
        return
    import ray.data  # noqa: F401  (configures its loggers on import: adjust them after)

    for name in ("ray", "ray.data", "ray.train", "ray.tune"):
        for handler in logging.getLogger(name).handlers:
            if isinstance(handler, logging.StreamHandler) and not isinstance(handler, logging.FileHandler):
                handler.setLevel(logging.ERROR)
