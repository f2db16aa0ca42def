"""Issue 15, must 4: real client libraries against real servers, from a gevent-patched app that
calls ``gostg.patch_socket`` (redis-py → redis-server, smtplib → aiosmtpd, ftplib → pyftpdlib,
paramiko → OpenSSH sshd). Each server runs as its own subprocess on 127.0.0.1 and is reached
by the name ``origin.test``, which only the chain's last node (gostg B) knows: the exchange
working at all shows the name went through the 2-hop chain, and B's log shows it as target."""
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import textwrap

import pytest

from . import embedworld
from .embedworld import b_targets, run_app
from .helpers import free_port, wait_for, wait_port

world = embedworld.world      # the module's fixture: the chain, the origins, the DNS stub



def run_patched(world, body, chain="egress", timeout=15):
    """``body`` run by the gevent-patched app with the whole process routed by ``chain``
    ("egress-nodelay" for protocols where the server speaks first: see embedworld.PRELUDE)."""
    return run_app(world, f'gostg.patch_socket(g, chain="{chain}")\n' + textwrap.dedent(body), timeout=timeout)


def _need(binary):
    """The path of ``binary``; skip when it is absent, outside CI only (CI installs it)."""
    path = shutil.which(binary) or (binary if os.path.exists(binary) else None)
    if path is None:
        if os.environ.get("CI"):
            pytest.fail(f"{binary} is not installed (scripts/install TEST_PACKAGES has it)")
        pytest.skip(f"{binary} is not installed")
    return path


@contextlib.contextmanager
def server(argv, port, log, **kw):
    """``argv`` as a subprocess (stdout/stderr to ``log``) until ``port`` on 127.0.0.1 opens;
    stopped by its PID on the way out (SIGTERM, then SIGKILL)."""
    with open(log, "wb") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, **kw)
    try:
        try:
            wait_port(port, timeout=10, proc=proc)
        except (RuntimeError, TimeoutError) as exc:
            raise AssertionError(f"{argv[0]} did not start: {exc}\n{open(log, errors='replace').read()}") from None
        yield proc
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGTERM)
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait(5)


def _reached_by_name(world, *ports):
    """B, the chain's last node, logged a tunnel to ``origin.test:<port>`` for each of ``ports``
    (waited for a moment: B writes the line once its relay first waits)."""
    want = [f"origin.test:{p}" for p in ports]
    assert wait_for(lambda: all(w in b_targets(world) for w in want), timeout=5), (want, b_targets(world))


@pytest.mark.timeout(20)
def test_redis_py_through_the_chain(world, tmp_path):
    """redis-py SET/GET on redis-server by name; the value is there when read directly."""
    redis_server = _need("redis-server")
    port = free_port()
    argv = [redis_server, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
            "--dir", str(tmp_path)]
    with server(argv, port, tmp_path / "redis.log"):
        res = run_patched(world, f"""
            import redis
            r = redis.Redis(host="origin.test", port={port}, socket_timeout=10)
            out("set", r.set("gostg:key", "through the chain"))
            out("get", r.get("gostg:key").decode())
            out("incr", [r.incr("gostg:n"), r.incr("gostg:n")])
        """)
        import redis
        direct = redis.Redis(host="127.0.0.1", port=port, socket_timeout=5)
        assert direct.get("gostg:key") == b"through the chain"
        direct.close()
    assert res == {"set": True, "get": "through the chain", "incr": [1, 2]}
    _reached_by_name(world, port)


@pytest.mark.timeout(20)
def test_smtplib_through_the_chain(world, tmp_path):
    """smtplib (EHLO, MAIL, RCPT, DATA, QUIT) to aiosmtpd by name; the message is in its mailbox."""
    import mailbox
    port = free_port()
    mbox = tmp_path / "maildir"
    argv = [sys.executable, "-m", "aiosmtpd", "-n", "-l", f"127.0.0.1:{port}", "-c", "aiosmtpd.handlers.Mailbox",
            str(mbox)]
    with server(argv, port, tmp_path / "smtpd.log"):
        res = run_patched(world, f"""
            import smtplib
            from email.message import EmailMessage
            m = EmailMessage()
            m["From"], m["To"], m["Subject"] = "app@origin.test", "ops@origin.test", "routed by gostg"
            m.set_content("hello through the chain")
            with smtplib.SMTP("origin.test", {port}, timeout=10) as smtp:
                out("ehlo", smtp.ehlo()[0])
                out("refused", smtp.send_message(m))
                out("noop", smtp.noop()[0])
        """, chain="egress-nodelay")
        assert res == {"ehlo": 250, "refused": {}, "noop": 250}
        box = mailbox.Maildir(str(mbox), create=False)     # aiosmtpd's Mailbox handler writes a Maildir
        got = [(msg["Subject"], msg["To"], msg.get_payload().strip()) for msg in box]

    assert got == [("routed by gostg", "ops@origin.test", "hello through the chain")]
    _reached_by_name(world, port)



FTP_APP = """
    import ftplib, io
    class CountingFTP(ftplib.FTP):
        # plain ftplib: the data connection goes to the control socket's getpeername() host
        # (for a routed socket, the address the app asked for: routed to the same server)
        def makepasv(self):
            host, port = super().makepasv()
            data_ports.append(port)
            return host, port
    data_ports = []
    with CountingFTP(timeout=10) as ftp:
        out("welcome", ftp.connect("origin.test", {port})[:3])
        out("login", ftp.login("app", "secret")[:3])
        out("stor", ftp.storbinary("STOR up.bin", io.BytesIO(b"x" * 100000))[:3])
        got = io.BytesIO()
        out("retr", ftp.retrbinary("RETR hello.txt", got.write)[:3])
        out("data", got.getvalue().decode())
        out("nlst", sorted(ftp.nlst()))
    out("data_ports", data_ports)
"""


@contextlib.contextmanager
def ftp_server(tmp_path):
    """pyftpdlib on 127.0.0.1 (user app/secret, writable) sharing a directory with hello.txt
    → (port, directory)."""
    port = free_port()
    share = tmp_path / "share"
    share.mkdir()
    (share / "hello.txt").write_bytes(b"served by pyftpdlib\n")
    argv = [sys.executable, "-m", "pyftpdlib", "-i", "127.0.0.1", "-p", str(port), "-w", "-d", str(share),
            "-u", "app", "-P", "secret"]
    with server(argv, port, tmp_path / "ftpd.log"):
        yield port, share


@pytest.mark.timeout(20)
def test_ftplib_through_the_chain(world, tmp_path):
    """ftplib login, upload (STOR), download (RETR) and listing (NLST) in passive mode from
    pyftpdlib by name: the control and every data connection go through the chain by name."""
    with ftp_server(tmp_path) as (port, share):
        res = run_patched(world, FTP_APP.format(port=port), chain="egress-nodelay")
        assert (share / "up.bin").read_bytes() == b"x" * 100000
    ports = res.pop("data_ports")
    assert res == {"welcome": "220", "login": "230", "stor": "226", "retr": "226",
                   "data": "served by pyftpdlib\n", "nlst": ["hello.txt", "up.bin"]}
    assert len(ports) == 3, ports
    _reached_by_name(world, port, *ports)



def _sshd_config(tmp_path, port):
    """A host key, a user key allowed in, and a minimal sshd_config, all in ``tmp_path``
    → (config path, user key path, host public key "type base64")."""
    keygen = _need("ssh-keygen")
    for name in ("host_key", "user_key"):
        subprocess.run([keygen, "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / name)], check=True,
                       capture_output=True, timeout=10)
    (tmp_path / "authorized_keys").write_bytes((tmp_path / "user_key.pub").read_bytes())
    cfg = tmp_path / "sshd_config"
    cfg.write_text(textwrap.dedent(f"""\
        ListenAddress 127.0.0.1
        Port {port}
        HostKey {tmp_path / "host_key"}
        AuthorizedKeysFile {tmp_path / "authorized_keys"}
        PasswordAuthentication no
        KbdInteractiveAuthentication no
        UsePAM no
        StrictModes no
        PermitRootLogin prohibit-password
        PidFile {tmp_path / "sshd.pid"}
    """))
    host_pub = " ".join((tmp_path / "host_key.pub").read_text().split()[:2])
    return cfg, tmp_path / "user_key", host_pub


@pytest.mark.timeout(20)
def test_paramiko_through_the_chain(world, tmp_path):
    """paramiko to OpenSSH sshd by name: the host key is checked against ``[origin.test]:port``
    (no unknown-host policy), public-key login, ``echo hello`` runs and its output comes back."""
    import getpass
    sshd = _need("/usr/sbin/sshd")
    if os.geteuid() == 0 and not os.path.isdir("/run/sshd"):
        # sshd's compiled-in privilege separation directory, made at boot by systemd-tmpfiles
        # (which containers do not run); sshd refuses to start as root without it
        os.makedirs("/run/sshd", mode=0o755, exist_ok=True)
    port = free_port()
    cfg, user_key, host_pub = _sshd_config(tmp_path, port)
    with server([sshd, "-D", "-e", "-f", str(cfg)], port, tmp_path / "sshd.log"):
        res = run_patched(world, f"""
            import base64, paramiko
            kind, blob = {host_pub!r}.split()
            client = paramiko.SSHClient()
            client.get_host_keys().add("[origin.test]:{port}", kind,
                                       paramiko.PKey.from_type_string(kind, base64.b64decode(blob)))
            client.set_missing_host_key_policy(paramiko.RejectPolicy())
            client.connect("origin.test", {port}, username={getpass.getuser()!r}, key_filename={str(user_key)!r},
                           look_for_keys=False, allow_agent=False, timeout=10, banner_timeout=10, auth_timeout=10)
            _, stdout, stderr = client.exec_command("echo hello", timeout=10)
            out("stdout", stdout.read().decode())
            out("status", stdout.channel.recv_exit_status())
            client.close()
        """, chain="egress-nodelay")
        log = (tmp_path / "sshd.log").read_text(errors="replace")
    assert res == {"stdout": "hello\n", "status": 0}
    assert "Accepted publickey for " + getpass.getuser() in log, log
    _reached_by_name(world, port)
