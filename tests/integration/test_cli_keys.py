"""``cloverleaf keygen`` and ``cloverleaf passwd`` as a user runs them (subprocesses, piped stdin).

What they print must work: the key file loads and its public key is the one printed; every
``passwd`` entry parses as YAML, fits the node config's principal schema, never contains the
password, and verifies the password (and only it) with the authentication math, through a
simulated exchange with the client authenticators where the method has one.
"""

from __future__ import annotations

import io
import os
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from cloverleaf.client import CryptosignAuth, ScramAuth, WampCraAuth
from cloverleaf.node import credentials
from cloverleaf.node.config import PrincipalConfig
from cloverleaf.wamp import auth

PASSWORD = "correct horse battery staple"


def cloverleaf(*args: str, stdin: str = "", cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cloverleaf", *args],
        input=stdin, capture_output=True, text=True, cwd=cwd, timeout=60, check=False,
    )  # fmt: skip


# ---------------------------------------------------------------------------------------------
# keygen
# ---------------------------------------------------------------------------------------------


def test_keygen_writes_a_private_key_file_with_mode_0600(tmp_path: Path) -> None:
    result = cloverleaf("keygen", "--out", "client.key", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    path = tmp_path / "client.key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    seed_hex = path.read_text().strip()
    assert len(seed_hex) == 64
    assert seed_hex not in result.stdout  # the secret is only in the file
    lines = result.stdout.splitlines()
    pubkey = lines[-1]
    key = auth.CryptosignKey.from_hex(seed_hex)
    assert key.public_key_hex == pubkey
    assert f"pubkeys: [{pubkey}]" in result.stdout  # says where the public key goes
    assert "client.key" in result.stdout

    # the pair works end to end: the client signs with the file, the router verifies with the printed key
    client = CryptosignAuth.from_keyfile("alice", path)
    assert client.authextra() == {"pubkey": pubkey}
    challenge = auth.new_cryptosign_challenge()
    signature, _ = client.on_challenge({"challenge": challenge, "channel_binding": None})
    assert auth.cryptosign_verify(pubkey, challenge, signature)
    assert PrincipalConfig.model_validate({"role": "user", "pubkeys": [pubkey]}).pubkeys == [pubkey]


def test_keygen_does_not_overwrite_without_force(tmp_path: Path) -> None:
    path = tmp_path / "client.key"
    path.write_text("precious\n")
    path.chmod(0o644)
    result = cloverleaf("keygen", "--out", str(path))
    assert result.returncode == 1
    assert "exists" in result.stderr and "--force" in result.stderr
    assert path.read_text() == "precious\n"

    result = cloverleaf("keygen", "--out", str(path), "--force")
    assert result.returncode == 0, result.stderr
    assert stat.S_IMODE(path.stat().st_mode) == 0o600  # a new file, not the old one's mode
    assert auth.CryptosignKey.from_hex(path.read_text().strip()).public_key_hex == result.stdout.splitlines()[-1]


def test_keygen_without_out_prints_both_keys() -> None:
    result = cloverleaf("keygen")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    pubkey = lines[-1]
    seeds = [line for line in lines[:-1] if len(line) == 64 and all(c in "0123456789abcdef" for c in line)]
    assert len(seeds) == 1
    assert auth.CryptosignKey.from_hex(seeds[0]).public_key_hex == pubkey
    assert "private key" in result.stdout and "secret" in result.stdout


def test_keygen_makes_different_keys() -> None:
    assert cloverleaf("keygen").stdout != cloverleaf("keygen").stdout


# ---------------------------------------------------------------------------------------------
# passwd
# ---------------------------------------------------------------------------------------------


def passwd(method: str, *args: str, password: str = PASSWORD, authid: str = "alice") -> dict[str, Any]:
    """Run ``cloverleaf passwd`` with the password piped in; the parsed, schema-checked entry."""
    result = cloverleaf("passwd", method, "--authid", authid, *args, stdin=password + "\n")
    assert result.returncode == 0, result.stderr
    assert password not in result.stdout and password not in result.stderr
    parsed = yaml.safe_load(result.stdout)
    assert list(parsed) == [authid]
    entry: dict[str, Any] = parsed[authid]
    assert entry["role"] == "user"
    PrincipalConfig.model_validate(entry)
    return entry


@pytest.mark.parametrize("kdf", [None, "argon2id13", "pbkdf2"])
def test_passwd_ticket(kdf: str | None) -> None:
    entry = passwd("ticket", *(["--kdf", kdf] if kdf else []))
    stored = entry["ticket"]
    assert auth.is_ticket_hash(stored)
    assert stored.startswith("pbkdf2-sha256$" if kdf == "pbkdf2" else "$argon2id$")
    assert auth.verify_ticket(PASSWORD, stored)
    assert not auth.verify_ticket(PASSWORD + "!", stored)
    assert not auth.verify_ticket("", stored)


def test_passwd_ticket_salt_and_iterations() -> None:
    entry = passwd("ticket", "--kdf", "pbkdf2", "--iterations", "1000", "--salt", "some salt")
    assert entry["ticket"] == auth.hash_ticket(PASSWORD, salt=b"some salt", scheme="pbkdf2-sha256", iterations=1000)
    assert entry == passwd("ticket", "--kdf", "pbkdf2", "--iterations", "1000", "--salt", "some salt")


def test_passwd_ticket_for_the_web_console_pastes_under_its_principals() -> None:
    from cloverleaf.node.config import ConfigError, parse_config

    result = cloverleaf("passwd", "ticket", "--console", "--authid", "admin", "--kdf", "pbkdf2", "--iterations", "10",
                        stdin=PASSWORD + "\n")  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert 'under transports[...].paths["/console"].principals' in result.stdout
    principals = yaml.safe_load(result.stdout)
    assert list(principals["admin"]) == ["ticket"]
    console = {"type": "console", "realms": ["realm1"], "principals": principals}
    config = {"realms": [{"name": "realm1"}],
              "transports": [{"type": "web", "endpoint": {"port": 8080}, "paths": {"/console": console}}]}  # fmt: skip
    parse_config(config)
    # the transport form (with a role) pasted there says what to do
    principals["admin"]["role"] = "user"
    with pytest.raises(ConfigError) as error:
        parse_config(config)
    assert "no role key" in str(error.value) and "--console" in str(error.value)
    refused = cloverleaf("passwd", "wampcra", "--console", stdin=PASSWORD + "\n")
    assert refused.returncode == 1 and "web console users log in with a ticket" in refused.stderr


@pytest.mark.parametrize("extra_args", [[], ["--iterations", "5000", "--salt", "NaCl"]])
def test_passwd_wampcra(extra_args: list[str]) -> None:
    entry = passwd("wampcra", *extra_args)
    assert set(entry) == {"role", "secret", "salt", "iterations", "keylen"}
    if extra_args:
        assert entry["salt"] == "NaCl" and entry["iterations"] == 5000
    derived = auth.derive_wampcra_key(PASSWORD, entry["salt"], entry["iterations"], entry["keylen"])
    assert entry["secret"] == derived.decode()
    # a salted WAMP-CRA exchange: the router holds only the entry, the client only the password
    challenge = auth.wampcra_challenge(authid="alice", authrole="user", authprovider="static", nonce="n0nce",
                                       timestamp="2024-01-01T00:00:00.000Z", session=1)  # fmt: skip
    extra = auth.wampcra_challenge_extra(challenge, salt=entry["salt"], iterations=entry["iterations"],
                                         keylen=entry["keylen"])  # fmt: skip
    signature, _ = WampCraAuth("alice", PASSWORD).on_challenge(extra)
    assert auth.verify_wampcra(entry["secret"], challenge, signature)
    wrong, _ = WampCraAuth("alice", PASSWORD + "!").on_challenge(extra)
    assert not auth.verify_wampcra(entry["secret"], challenge, wrong)


SCRAM_RUNS = [
    # (--kdf, cost arguments, client authmethods that can use it)
    ("argon2id13", ["--iterations", "2"], ["wamp-scram", "scram"]),
    ("argon2id-13", ["--iterations", "2", "--memory", "1024"], ["scram", "wamp-scram"]),
    ("pbkdf2", ["--iterations", "4096"], ["wamp-scram", "scram"]),
]


@pytest.mark.parametrize(("kdf", "cost", "authmethods"), SCRAM_RUNS, ids=[r[0] for r in SCRAM_RUNS])
def test_passwd_scram(kdf: str, cost: list[str], authmethods: list[str]) -> None:
    entry = passwd("scram", "--kdf", kdf, *cost)
    assert set(entry) == {"role", "scram"}
    credential = auth.ScramCredential.from_config(entry["scram"])
    assert credential.kdf == kdf
    assert credential.iterations == int(cost[1])
    assert credential.memory == (None if kdf == "pbkdf2" else (1024 if "--memory" in cost else 512))
    assert credential == auth.derive_scram_credential(
        PASSWORD, salt=credential.salt, kdf=kdf, iterations=credential.iterations, memory=credential.memory
    )
    for authmethod in authmethods:
        for password, ok in ((PASSWORD, True), (PASSWORD + "!", False)):
            client = ScramAuth("alice", password, authmethod)
            nonce = client.authextra()["nonce"]
            challenge = auth.scram_challenge_extra(credential, authmethod=authmethod, client_nonce=nonce,
                                                   server_nonce=auth.new_scram_nonce())  # fmt: skip
            signature, extra = client.on_challenge(challenge)
            verdict = auth.scram_verify_authenticate(
                credential, authmethod=authmethod, authid="alice", client_nonce=nonce, challenge_extra=challenge,
                signature=signature, authenticate_extra=extra,
            )  # fmt: skip
            assert verdict.ok is ok
            if ok:
                assert client.on_welcome({"authextra": verdict.welcome_authextra})


def test_passwd_scram_defaults_and_fixed_salt() -> None:
    entry = passwd("scram", "--kdf", "pbkdf2", "--salt", "0123456789")
    assert entry["scram"]["iterations"] == credentials.SCRAM_PBKDF2_ITERATIONS
    assert "memory" not in entry["scram"]
    assert bytes.fromhex(entry["scram"]["salt"]) == b"0123456789"
    assert entry == passwd("scram", "--kdf", "pbkdf2", "--salt", "0123456789")
    assert entry != passwd("scram", "--kdf", "pbkdf2", "--salt", "0123456789", password="other")


def test_passwd_scram_default_kdf_is_the_spec_one() -> None:
    result = cloverleaf("passwd", "scram", "--iterations", "2", stdin=PASSWORD)  # no trailing newline
    assert result.returncode == 0, result.stderr
    entry = yaml.safe_load(result.stdout)["AUTHID"]
    assert entry["scram"]["kdf"] == "argon2id13" and entry["scram"]["memory"] == 512
    assert "argon2id-13" in result.stdout  # the hint for Autobahn/Crossbar clients, as a YAML comment
    credential = auth.ScramCredential.from_config(entry["scram"])
    assert credential == auth.derive_scram_credential(PASSWORD, salt=credential.salt, kdf="argon2id13", iterations=2)


@pytest.mark.parametrize(
    ("args", "stdin", "message"),
    [
        (["ticket"], "", "empty"),
        (["ticket"], "\n", "empty"),
        (["wampcra", "--kdf", "argon2id13"], "pw\n", "PBKDF2"),
        (["scram", "--salt", "short"], "pw\n", "salt"),
        (["ticket", "--memory", "1024"], "pw\n", "--memory"),
        (["scram", "--iterations", "0"], "pw\n", "iterations"),
    ],
)
def test_passwd_usage_errors(args: list[str], stdin: str, message: str) -> None:
    result = cloverleaf("passwd", *args, stdin=stdin)
    assert result.returncode == 1
    assert message in result.stderr
    assert result.stdout == ""
    assert "Traceback" not in result.stderr


def test_passwd_prompts_twice_on_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    answers = iter([PASSWORD, PASSWORD])
    prompts: list[str] = []

    def fake_getpass(prompt: str = "") -> str:
        prompts.append(prompt)
        return next(answers)

    monkeypatch.setattr(credentials.getpass, "getpass", fake_getpass)
    out = io.StringIO()
    assert credentials.passwd("ticket", authid="bob", role="admin", kdf="pbkdf2", iterations=1000,
                              stdin=Terminal(), stdout=out) == 0  # fmt: skip
    assert prompts == ["Ticket: ", "Ticket (again): "]
    entry = yaml.safe_load(out.getvalue())["bob"]
    assert entry["role"] == "admin"
    assert auth.verify_ticket(PASSWORD, entry["ticket"])

    answers = iter([PASSWORD, PASSWORD + "?"])
    with pytest.raises(credentials.CredentialError, match="differ"):
        credentials.read_secret("Password", stdin=Terminal())


def test_stdin_line_endings() -> None:
    assert credentials.read_secret("Password", stdin=io.StringIO("pw\r\nsecond line\n")) == "pw"
    assert credentials.read_secret("Password", stdin=io.StringIO(" pw ")) == " pw "  # spaces are kept


def test_keygen_file_is_not_readable_by_others_even_with_a_lax_umask(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        assert credentials.keygen(str(tmp_path / "k"), stdout=io.StringIO()) == 0
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "k").stat().st_mode) == 0o600


def test_passwd_takes_one_line_of_a_shared_standard_input() -> None:
    """Two `cloverleaf passwd` in a script fed one secret per line: each takes its own line (a
    buffered read took them all, and the second found an empty password)."""
    program = f"{sys.executable} -m cloverleaf"
    script = (f"{program} passwd ticket --authid one --kdf pbkdf2 --iterations 10 && "
              f"{program} passwd ticket --authid two --kdf pbkdf2 --iterations 10")  # fmt: skip
    result = subprocess.run(["bash", "-c", script], input="first\nsecond\n", capture_output=True, text=True,
                            timeout=60)  # fmt: skip
    assert result.returncode == 0, result.stderr
    entries = [yaml.safe_load(part.split("\n", 1)[1]) for part in result.stdout.split("# ticket principal")[1:]]
    assert auth.verify_ticket("first", entries[0]["one"]["ticket"])
    assert auth.verify_ticket("second", entries[1]["two"]["ticket"])
