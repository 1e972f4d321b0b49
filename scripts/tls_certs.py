"""x509 certificates for TLS on the COLO links, made with certtool (GnuTLS),
in the file names of QEMU's tls-creds-x509: one CA, and per host one
certificate for both ends of a link; and the rogue clients that a pair
with TLS must refuse (fullstack.py, colo.py, cluster.py)."""

import os
import shutil
import socket
import ssl
import subprocess

# How long the test certificates last
TLS_DAYS = 2


def _certtool(*args):
    subprocess.run(["certtool", *args], check=True, capture_output=True)


def make_ca(directory, name="COLO-FT test CA"):
    os.makedirs(directory, exist_ok=True)
    key, cert = (os.path.join(directory, f) for f in ("ca-key.pem",
                                                      "ca-cert.pem"))
    info = os.path.join(directory, "ca.info")
    with open(info, "w") as f:
        f.write(f"cn = {name}\nca\ncert_signing_key\n"
                f"expiration_days = {TLS_DAYS}\n")
    _certtool("--generate-privkey", "--key-type=ecdsa", "--outfile", key)
    _certtool("--generate-self-signed", "--load-privkey", key,
              "--template", info, "--outfile", cert)
    return directory


def make_host_certificate(directory, ca, dn, ip):
    """A key and a certificate signed by the CA in directory CA, for both
    ends of a link (QEMU's tls-creds-x509 file names), with the CA's
    certificate beside them"""
    os.makedirs(directory, exist_ok=True)
    key = os.path.join(directory, "server-key.pem")
    cert = os.path.join(directory, "server-cert.pem")
    info = os.path.join(directory, "host.info")
    assert dn.startswith("CN=")
    with open(info, "w") as f:
        f.write(f"cn = {dn[3:]}\nip_address = {ip}\ntls_www_server\n"
                f"tls_www_client\nsigning_key\nencryption_key\n"
                f"expiration_days = {TLS_DAYS}\n")
    _certtool("--generate-privkey", "--key-type=ecdsa", "--outfile", key)
    _certtool("--generate-certificate", "--load-privkey", key,
              "--load-ca-certificate", os.path.join(ca, "ca-cert.pem"),
              "--load-ca-privkey", os.path.join(ca, "ca-key.pem"),
              "--template", info, "--outfile", cert)
    shutil.copy(key, os.path.join(directory, "client-key.pem"))
    shutil.copy(cert, os.path.join(directory, "client-cert.pem"))
    shutil.copy(os.path.join(ca, "ca-cert.pem"), directory)
    return directory


# The clients that a pair with TLS must refuse on each of its links: their
# certificate directories in the stack's, and what each lacks
ROGUES = {"rogue-nocert": "no certificate",
          "rogue-ca": "a certificate from another CA",
          "rogue-name": "a certificate from the CA for a name tls-authz "
                        "does not list"}


def make_rogues(directory, ca, peer_dn, ip):
    """The directories of ROGUES (QEMU's tls-creds-x509 file names, client
    end): the pair's CA only; a certificate with the peer's name from
    another CA (with that CA); one from the pair's CA with another name.
    A rogue does not check the server's certificate."""
    nocert = os.path.join(directory, "rogue-nocert")
    os.makedirs(nocert, exist_ok=True)
    shutil.copy(os.path.join(ca, "ca-cert.pem"), nocert)
    other = make_ca(os.path.join(directory, "rogue-other-ca"),
                    "COLO-FT rogue CA")
    make_host_certificate(os.path.join(directory, "rogue-ca"), other,
                          peer_dn, ip)
    make_host_certificate(os.path.join(directory, "rogue-name"), ca,
                          "CN=colo-host-rogue", ip)
    return {name: os.path.join(directory, name) for name in ROGUES}


def tls_refused(addr, certdir, timeout=5):
    """Whether the TLS server at ADDR refuses a client with the
    certificate in CERTDIR (none if it holds none): the handshake fails,
    or the server ends the session (TLS 1.3 checks the client's
    certificate after the client's handshake ended). A server that took
    it waits for data: False after TIMEOUT."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    cert = os.path.join(certdir, "client-cert.pem")
    if os.path.exists(cert):
        ctx.load_cert_chain(cert, os.path.join(certdir, "client-key.pem"))
    with socket.create_connection(addr, timeout) as raw:
        try:
            with ctx.wrap_socket(raw) as conn:
                conn.settimeout(timeout)
                return conn.recv(1) == b""
        except (ssl.SSLError, ConnectionError):
            return True
        except TimeoutError:
            return False
