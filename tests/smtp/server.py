"""A real SMTP server on 127.0.0.1 for FaceReko's e-mail tests (tests/common/smtp.rs runs it).

Usage: server.py --port N --dir D [--tls none|starttls|implicit] [--cert F --key F]
                 [--user U --password P] [--reject-recipient ADDR]...

Prints `ready` once listening and runs until SIGTERM. Each accepted message becomes D/NNNNNN.eml
(the bytes as received) and D/NNNNNN.json (the envelope, the session and the parsed message),
numbered after the highest number already in D, so a restarted server appends.
"""

import argparse
import asyncio
import base64
import email
import email.policy
import hashlib
import json
import logging
import signal
import ssl
import sys
from pathlib import Path

from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword


class Mailbox:
    """The aiosmtpd handler: refuses the listed recipients and stores every message it accepts."""

    def __init__(self, folder: Path, rejected: list[str], user, password):
        self.folder = folder
        self.rejected = {address.lower() for address in rejected}
        self.user, self.password = user, password
        numbers = [int(path.stem) for path in folder.glob("*.eml") if path.stem.isdigit()]
        self.next_number = max(numbers, default=0) + 1

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        # With this hook aiosmtpd leaves remembering the client's name to us.
        session.host_name = hostname
        if self.user is None:
            return [line for line in responses if not line.startswith("250-AUTH")]
        return responses

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address.lower() in self.rejected:
            return "550 5.1.1 no such user"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        raw = envelope.original_content
        # Parsed before anything is written, so that a message that breaks the parser leaves no
        # .eml without its .json.
        summary = {
            "mail_from": envelope.mail_from,
            "rcpt_tos": envelope.rcpt_tos,
            "authenticated_as": session.auth_data if session.authenticated else None,
            "tls": server.transport.get_extra_info("ssl_object") is not None,
            **describe(email.message_from_bytes(raw, policy=email.policy.default)),
        }
        stem = f"{self.next_number:06d}"
        self.next_number += 1
        # The .json comes last: once it exists, the test may read both files.
        write_atomically(self.folder / f"{stem}.eml", raw)
        write_atomically(self.folder / f"{stem}.json", json.dumps(summary, indent=2).encode())
        return "250 OK"

    def authenticate(self, server, session, envelope, mechanism, credentials):
        if not isinstance(credentials, LoginPassword):
            return AuthResult(success=False, handled=False)
        user = credentials.login.decode(errors="replace")
        password = credentials.password.decode(errors="replace")
        if (user, password) == (self.user, self.password):
            return AuthResult(success=True, auth_data=user)
        return AuthResult(success=False, handled=False)


def describe(message: email.message.EmailMessage) -> dict:
    """The headers a test looks at, the text and HTML bodies, and every other leaf part."""

    def header(name):
        value = message[name]
        return None if value is None else str(value)

    bodies = {kind: message.get_body(preferencelist=(kind,)) for kind in ("plain", "html")}
    parts = []
    for part in message.walk():
        if part.is_multipart() or any(part is body for body in bodies.values()):
            continue
        data = part.get_payload(decode=True) or b""
        content_id = part["Content-ID"]
        parts.append(
            {
                "content_type": part.get_content_type(),
                "content_id": None if content_id is None else str(content_id).strip().strip("<>"),
                "disposition": part.get_content_disposition(),
                "filename": part.get_filename(),
                "size": len(data),
                "sha256": hashlib.sha256(data).hexdigest(),
                "data_base64": base64.b64encode(data).decode(),
            }
        )
    def content(body):
        # SMTP carries every line with CRLF; the tests compare against text written with \n.
        return None if body is None else body.get_content().replace("\r\n", "\n")

    return {
        "subject": header("Subject"),
        "from": header("From"),
        "to": header("To"),
        "message_id": header("Message-ID"),
        "date": header("Date"),
        "text": content(bodies["plain"]),
        "html": content(bodies["html"]),
        "parts": parts,
    }


def write_atomically(path: Path, data: bytes) -> None:
    partial = path.with_name(f".{path.name}.partial")
    partial.write_bytes(data)
    partial.rename(path)


def tls_context(cert: str, key: str) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    return context


async def serve(args) -> None:
    loop = asyncio.get_running_loop()
    mailbox = Mailbox(Path(args.dir), args.reject_recipient, args.user, args.password)
    context = tls_context(args.cert, args.key) if args.tls != "none" else None

    def session():
        return SMTP(
            mailbox,
            hostname="localhost",  # not the FQDN, whose look-up may hang without DNS
            # STARTTLS is offered only on a plain connection that can be upgraded.
            tls_context=context if args.tls == "starttls" else None,
            authenticator=mailbox.authenticate,
            auth_required=args.user is not None,
            auth_exclude_mechanism=[] if args.user else ["LOGIN", "PLAIN"],
            # aiosmtpd counts only STARTTLS as encryption, so only then must AUTH wait for it.
            auth_require_tls=args.tls == "starttls",
            loop=loop,
        )

    server = await loop.create_server(
        session, "127.0.0.1", args.port, ssl=context if args.tls == "implicit" else None
    )
    # aiosmtpd warns that AUTH does not need TLS when it is implicit: this line tells the truth.
    logging.info(
        "listening on 127.0.0.1:%d, tls %s, auth %s, rejecting %s",
        args.port, args.tls, f"required as {args.user}" if args.user else "off", args.reject_recipient or "nobody",
    )
    # Before `ready`: a test may stop the server as soon as it reads that.
    stopped = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stopped.set)
    print("ready", flush=True)
    await stopped.wait()
    # Not wait_closed(): a client that keeps its connection open must not delay the exit.
    server.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--dir", required=True, help="where messages are stored")
    parser.add_argument("--tls", choices=["none", "starttls", "implicit"], default="none")
    parser.add_argument("--cert", help="PEM certificate chain (starttls, implicit)")
    parser.add_argument("--key", help="PEM private key (starttls, implicit)")
    parser.add_argument("--user", help="with --password: AUTH PLAIN/LOGIN, required before MAIL")
    parser.add_argument("--password")
    parser.add_argument("--reject-recipient", action="append", default=[], metavar="ADDR",
                        help="answer RCPT TO for ADDR with 550 (may be repeated)")
    args = parser.parse_args()
    if args.tls != "none" and not (args.cert and args.key):
        parser.error(f"--tls {args.tls} needs --cert and --key")
    if (args.user is None) != (args.password is None):
        parser.error("--user and --password go together")
    Path(args.dir).mkdir(parents=True, exist_ok=True)
    # Connections, commands refused and tracebacks go to stderr, which the tests keep as the log.
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(levelname)s %(message)s")
    asyncio.run(serve(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
