"""Who may join the fleet: Ray's token authentication for the head, every node and the driver, and TLS where the
user gives certificates.

One token per fleet, made on the head's first start (or by ``python -m runner.fleet.agent token``) in a file only
its owner can read: ``$EDGEASR_FLEET_TOKEN_FILE``, default ``~/.config/edgeasr/fleet-token`` (mode 0600, in a
folder of mode 0700). Nodes and the driver read the same file (copied there, or mounted as a compose secret).
Ray (2.52 and later) gets it as ``RAY_AUTH_MODE=token`` and ``RAY_AUTH_TOKEN_PATH``, and then checks it on every
port it serves: the GCS, the raylets, the runtime-env agent and the Ray Client server that the driver's
``ray://`` reaches (tests/e2e/test_fleet_auth_e2e.py asks Ray's own servers).

Ray's refusal is a traceback after 20 s of retries for a node, and a 30 s "connection timeout" for a Ray Client,
so a node and the driver first ask the head one cheap question with their token (`check_head`) and stop with one
sentence when it says no. Only this module and the agent know Ray's variable names.
"""

from __future__ import annotations

import os
import re
import secrets
import stat
from pathlib import Path
from typing import Mapping

from ..errors import UserError

TOKEN_FILE_ENV = "EDGEASR_FLEET_TOKEN_FILE"
TOKEN_MAX_BYTES = 4096
PROBE_TIMEOUT_S = 10.0
#: Ray's variables: token mode, the token file, and the token itself (never used: environments leak).
RAY_AUTH_MODE, RAY_AUTH_TOKEN_PATH, RAY_AUTH_TOKEN = "RAY_AUTH_MODE", "RAY_AUTH_TOKEN_PATH", "RAY_AUTH_TOKEN"
#: Ray's TLS variables: on for every gRPC port (and the Ray Client's) when RAY_USE_TLS is 1 or true.
RAY_USE_TLS = "RAY_USE_TLS"
TLS_FILES = ("RAY_TLS_SERVER_CERT", "RAY_TLS_SERVER_KEY", "RAY_TLS_CA_CERT")
_TOKEN_RE = re.compile(r"^[\x21-\x7e]{16,1024}$")  # printable, no spaces; Ray's own tokens are 64 hex digits
_HOW = f"copy the head's token file here (mode 0600), or point ${TOKEN_FILE_ENV} at it"


def token_file(env: Mapping[str, str] | None = None) -> Path:
    """Where this machine's fleet token lives: $EDGEASR_FLEET_TOKEN_FILE, else ~/.config/edgeasr/fleet-token."""
    env = os.environ if env is None else env
    given = (env.get(TOKEN_FILE_ENV) or "").strip()
    return Path(given).expanduser() if given else Path.home() / ".config" / "edgeasr" / "fleet-token"


def make_token(path: Path) -> bool:
    """Write a new random token (256 bits, as Ray's own) to ``path`` unless a file is there; True if written.
    The file is created 0600 without following a link, in a folder made 0700."""
    if os.path.lexists(path):
        return False
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    except FileExistsError:  # another head's first start won the race: its token stands
        return False
    except OSError as exc:
        raise UserError(f"cannot write the fleet token {path}: {exc.strerror}") from None
    with os.fdopen(fd, "w") as fh:
        fh.write(secrets.token_hex(32) + "\n")
    return True


def read_token(path: Path) -> str:
    """The token in ``path``, checked: a regular file, readable by its owner only, one token. A FIFO or a device
    never blocks or floods the read."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY)
    except FileNotFoundError:
        raise UserError(f"no fleet token at {path}: {_HOW}; the head writes it on its first start "
                        f"(`python -m runner.fleet.agent token` makes it and says where)") from None
    except OSError as exc:
        raise UserError(f"cannot read the fleet token {path}: {exc.strerror} (this process runs as uid "
                        f"{os.getuid()}): make the file this user's, mode 0600") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise UserError(f"the fleet token {path} is not a regular file: {_HOW}")
        if info.st_mode & 0o077:
            raise UserError(f"the fleet token {path} is readable by others (mode {info.st_mode & 0o777:04o}): "
                            f"chmod 600 {path}")
        data = os.read(fd, TOKEN_MAX_BYTES + 1)
    finally:
        os.close(fd)
    token = data.decode("ascii", errors="replace").strip()
    if len(data) > TOKEN_MAX_BYTES or not _TOKEN_RE.match(token):
        raise UserError(f"{path} holds no fleet token (expected one line of 16 to 1024 printable characters "
                        f"without spaces, as the head writes): {_HOW}")
    return token


def _tls_on(env: Mapping[str, str]) -> bool:
    return env.get(RAY_USE_TLS, "0").strip().lower() in ("1", "true")


def tls_problem(env: Mapping[str, str]) -> str | None:
    """Why Ray's TLS settings cannot work (None: off, or each file readable). TLS is on when RAY_USE_TLS is 1
    or true; it then needs the node's certificate and key and the CA that signed every node's certificate."""
    if not _tls_on(env):
        return None
    for name in TLS_FILES:
        value = env.get(name, "").strip()
        if not value:
            return f"{RAY_USE_TLS}={env[RAY_USE_TLS]} needs {', '.join(TLS_FILES)}: {name} is not set"
        if not os.access(value, os.R_OK) or not os.path.isfile(value):
            return f"{name}={value}: not a readable file"
    return None


def ray_env(path: Path, env: Mapping[str, str]) -> dict[str, str]:
    """``env`` for Ray's processes (and the driver): token mode with the token file at ``path``, and no
    RAY_AUTH_TOKEN (it would win over the file, and an environment is readable by every process of its user);
    Ray's TLS variables pass through unchanged."""
    out = {k: v for k, v in env.items() if k != RAY_AUTH_TOKEN}
    out.update({RAY_AUTH_MODE: "token", RAY_AUTH_TOKEN_PATH: str(path), TOKEN_FILE_ENV: str(path)})
    problem = tls_problem(out)
    if problem:
        raise UserError(problem)
    return out


def use_in_this_process(path: Path) -> None:
    """Token authentication for Ray in this process (the driver), after Ray may have been imported: the
    environment, then Ray's cached configuration and token, as Ray's own ``ray.init`` does."""
    os.environ.update(ray_env(path, os.environ))
    os.environ.pop(RAY_AUTH_TOKEN, None)
    from ray._raylet import AuthenticationTokenLoader, Config

    Config.initialize("")
    AuthenticationTokenLoader.instance().reset_cache()


def _channel(address: str, env: Mapping[str, str]):
    import grpc

    if tls_problem(env) is None and _tls_on(env):
        cert, key, ca = (Path(env[name]).read_bytes() for name in TLS_FILES)
        return grpc.secure_channel(address, grpc.ssl_channel_credentials(root_certificates=ca, private_key=key,
                                                                          certificate_chain=cert))
    return grpc.insecure_channel(address)


def head_refuses(address: str, token: str, env: Mapping[str, str] | None = None) -> bool:
    """Whether the head at ``address`` answers UNAUTHENTICATED to ``token``: one call to its Ray Client server for
    ``ray://HOST:PORT``, to its GCS for ``HOST:PORT``. Anything else (it answers, it is not up yet, it speaks
    TLS and we do not) is False: Ray's own connection then reports it."""
    import grpc
    from ray.core.generated import gcs_service_pb2, gcs_service_pb2_grpc, ray_client_pb2, ray_client_pb2_grpc

    env = os.environ if env is None else env
    client = address.startswith("ray://")
    channel = _channel(address.removeprefix("ray://"), env)
    metadata = [("authorization", f"Bearer {token}")]
    try:
        if client:
            ray_client_pb2_grpc.RayletDriverStub(channel).ClusterInfo(
                ray_client_pb2.ClusterInfoRequest(type=ray_client_pb2.ClusterInfoType.PING),
                timeout=PROBE_TIMEOUT_S, metadata=metadata)
        else:
            gcs_service_pb2_grpc.NodeInfoGcsServiceStub(channel).GetClusterId(
                gcs_service_pb2.GetClusterIdRequest(), timeout=PROBE_TIMEOUT_S, metadata=metadata)
    except grpc.RpcError as exc:
        return exc.code() == grpc.StatusCode.UNAUTHENTICATED
    finally:
        channel.close()
    return False


def check_head(address: str, path: Path, who: str, env: Mapping[str, str] | None = None) -> None:
    """Stop with one sentence when the head at ``address`` refuses the token in ``path`` (``who``: this driver,
    this node)."""
    if head_refuses(address, read_token(path), env):
        raise UserError(f"the fleet head at {address} refused this {who}'s token ({path}): it is not the token "
                        f"the head was started with; {_HOW}")
