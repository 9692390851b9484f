"""The fleet's token file and Ray's authentication settings, without Ray (runner/fleet/auth.py, the node agent's
checks before `ray start`). tests/e2e/test_fleet_auth_e2e.py checks the refusals against a real cluster."""

from __future__ import annotations

import os
import stat

import pytest

from runner.errors import UserError
from runner.fleet import agent, auth


def _write(path, text: str, mode: int = 0o600):
    path.write_text(text)
    path.chmod(mode)
    return path


def test_a_new_token_is_256_random_bits_only_its_owner_can_read(tmp_path):
    """make_token writes 64 hex digits, mode 0600, in a folder it makes 0700; a second call keeps the first."""
    path = tmp_path / "cfg" / "edgeasr" / "fleet-token"
    assert auth.make_token(path) is True
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    token = auth.read_token(path)
    assert len(token) == 64 and int(token, 16) >= 0
    assert auth.make_token(path) is False and auth.read_token(path) == token
    other = tmp_path / "other"
    auth.make_token(other)
    assert auth.read_token(other) != token


def test_make_token_never_writes_through_a_planted_link(tmp_path):
    """A link where the token should go (even a dangling one) is left alone: nothing is written through it."""
    target = tmp_path / "victim"
    link = tmp_path / "fleet-token"
    link.symlink_to(target)
    assert auth.make_token(link) is False and not target.exists()


def test_read_token_refuses_a_file_others_can_read(tmp_path):
    path = _write(tmp_path / "t", "a" * 64, 0o640)
    with pytest.raises(UserError, match=r"readable by others \(mode 0640\): chmod 600 .*/t$"):
        auth.read_token(path)


def test_read_token_says_where_it_looked_when_there_is_none(tmp_path):
    with pytest.raises(UserError) as err:
        auth.read_token(tmp_path / "absent")
    message = str(err.value)
    assert message.startswith(f"no fleet token at {tmp_path / 'absent'}") and "EDGEASR_FLEET_TOKEN_FILE" in message
    assert "\n" not in message


@pytest.mark.parametrize("content", ["", "short", "two words " * 4, "x" * 5000])
def test_read_token_refuses_what_is_not_one_token(tmp_path, content):
    with pytest.raises(UserError, match="holds no fleet token"):
        auth.read_token(_write(tmp_path / "t", content))


def test_read_token_strips_the_line_end_as_ray_does(tmp_path):
    assert auth.read_token(_write(tmp_path / "t", "  " + "ab" * 16 + " \r\n")) == "ab" * 16


def test_read_token_never_blocks_on_a_fifo_or_reads_a_folder(tmp_path):
    """A FIFO (mode 0600, so the mode check passes) is refused at once, not waited on; so is a folder."""
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo, 0o600)
    with pytest.raises(UserError, match="not a regular file"):
        auth.read_token(fifo)
    folder = tmp_path / "dir"
    folder.mkdir(mode=0o700)
    with pytest.raises(UserError):
        auth.read_token(folder)


def test_the_token_file_comes_from_the_environment_else_the_users_config(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    assert auth.token_file({}) == tmp_path / ".config" / "edgeasr" / "fleet-token"
    assert auth.token_file({"EDGEASR_FLEET_TOKEN_FILE": "~/t"}) == tmp_path / "t"
    assert auth.token_file({"EDGEASR_FLEET_TOKEN_FILE": "/run/secrets/fleet-token"}).as_posix() == \
        "/run/secrets/fleet-token"


def test_rays_environment_has_token_mode_and_the_file_never_the_token_itself(tmp_path):
    """Ray gets RAY_AUTH_MODE=token and the file's path; a RAY_AUTH_TOKEN in the environment is dropped (it would
    win over the file, and any process of the user can read an environment)."""
    path = tmp_path / "t"
    env = auth.ray_env(path, {"RAY_AUTH_TOKEN": "leaked", "RAY_AUTH_MODE": "disabled", "KEEP": "1"})
    assert env["RAY_AUTH_MODE"] == "token" and env["RAY_AUTH_TOKEN_PATH"] == str(path)
    assert "RAY_AUTH_TOKEN" not in env and env["KEEP"] == "1" and env["EDGEASR_FLEET_TOKEN_FILE"] == str(path)


def test_tls_passes_through_when_its_files_are_given_and_is_one_sentence_when_not(tmp_path):
    files = {name: str(_write(tmp_path / name.lower(), "pem")) for name in auth.TLS_FILES}
    env = auth.ray_env(tmp_path / "t", {"RAY_USE_TLS": "1", **files})
    assert env["RAY_USE_TLS"] == "1" and all(env[k] == v for k, v in files.items())
    assert auth.tls_problem({"RAY_USE_TLS": "0"}) is None and auth.tls_problem({}) is None
    with pytest.raises(UserError, match="RAY_TLS_SERVER_KEY is not set"):
        auth.ray_env(tmp_path / "t", {"RAY_USE_TLS": "true", "RAY_TLS_SERVER_CERT": files["RAY_TLS_SERVER_CERT"]})
    with pytest.raises(UserError, match="RAY_TLS_CA_CERT=.*/nope: not a readable file"):
        auth.ray_env(tmp_path / "t", {"RAY_USE_TLS": "1", **files, "RAY_TLS_CA_CERT": str(tmp_path / "nope")})


@pytest.fixture
def no_ray(monkeypatch):
    """The agent's `ray start` recorded instead of run."""
    calls = []
    monkeypatch.setattr(agent, "start_ray", lambda args, env, block: calls.append((args, env)) or 0)
    return calls


def test_the_heads_first_start_makes_the_token_and_gives_ray_its_path(tmp_path, monkeypatch, no_ray, capsys):
    token = tmp_path / "cfg" / "fleet-token"
    monkeypatch.setenv("EDGEASR_FLEET_TOKEN_FILE", str(token))
    monkeypatch.setenv("RAY_AUTH_TOKEN", "from-the-environment")
    assert agent.main(["head"]) == 0
    assert stat.S_IMODE(token.stat().st_mode) == 0o600 and str(token) in capsys.readouterr().err
    (cmd, env), = no_ray
    assert "--head" in cmd and env["RAY_AUTH_MODE"] == "token" and env["RAY_AUTH_TOKEN_PATH"] == str(token)
    assert "RAY_AUTH_TOKEN" not in env
    assert agent.main(["head"]) == 0 and auth.read_token(token) == auth.read_token(token)  # kept, not remade
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize("role", [["head"], ["node", "--head", "127.0.0.1:1", "--target", "cpu-a"]])
def test_a_token_others_can_read_stops_the_agent_in_one_sentence_before_ray(tmp_path, monkeypatch, no_ray, capsys,
                                                                           role):
    monkeypatch.setenv("EDGEASR_FLEET_TOKEN_FILE", str(_write(tmp_path / "t", "a" * 64, 0o644)))
    assert agent.main(role) == 2 and no_ray == []
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "readable by others" in err


def test_a_node_without_a_token_stops_in_one_sentence_before_ray(tmp_path, monkeypatch, no_ray, capsys):
    """A node never makes a token (only the head does): without one it says where it looked, and exits 2."""
    monkeypatch.setenv("EDGEASR_FLEET_TOKEN_FILE", str(tmp_path / "absent"))
    assert agent.main(["node", "--head", "127.0.0.1:1", "--target", "cpu-a"]) == 2 and no_ray == []
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no fleet token at" in err and not (tmp_path / "absent").exists()


def test_agent_token_makes_the_file_once_and_says_where(tmp_path, monkeypatch, no_ray, capsys):
    token = tmp_path / "fleet-token"
    monkeypatch.setenv("EDGEASR_FLEET_TOKEN_FILE", str(token))
    assert agent.main(["token"]) == 0 and f"made the fleet token {token}" in capsys.readouterr().out
    first = token.read_text()
    assert agent.main(["token"]) == 0 and f"kept the fleet token {token}" in capsys.readouterr().out
    assert token.read_text() == first and no_ray == []
