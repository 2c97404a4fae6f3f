#!/usr/bin/env python3
"""The SMTP server of the notifier's tests (aiosmtpd, Debian's python3-aiosmtpd).

Stores every message it accepts in DIR as two files written atomically,
<n>.json (the envelope: mail_from, rcpt_tos) then <n>.eml (the bytes as
received), and answers RCPT TO with a chosen reply for chosen recipients:
DIR/refuse.json maps an address to a reply, e.g.
{"bad@example.com": "550 5.1.1 no such mailbox"} (read at every RCPT, so a
test changes it while the server runs). Prints "ready HOST PORT" once it
listens; stops on SIGTERM. With --tls starttls (required) or --tls tls
(implicit) it speaks TLS with --cert and --key.
"""

import argparse
import asyncio
import json
import os
import signal
import ssl
import time

from aiosmtpd.smtp import SMTP


class Sink:
    def __init__(self, directory):
        self.directory = directory
        self.count = 0

    def refusals(self):
        try:
            with open(os.path.join(self.directory, "refuse.json"), encoding="utf-8") as f:
                return json.load(f)
        except (OSError, ValueError):
            return {}

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        reply = self.refusals().get(address.lower())
        if reply:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        self.count += 1
        name = "%020d-%06d" % (time.time_ns(), self.count)
        path = os.path.join(self.directory, name)
        content = envelope.original_content or envelope.content
        if isinstance(content, str):
            content = content.encode("utf-8")
        meta = {"mail_from": envelope.mail_from, "rcpt_tos": envelope.rcpt_tos}
        for suffix, data in ((".json", json.dumps(meta).encode()), (".eml", content)):
            with open(path + suffix + ".tmp", "wb") as f:
                f.write(data)
            os.rename(path + suffix + ".tmp", path + suffix)
        return "250 OK stored"


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--dir", required=True)
    parser.add_argument("--tls", choices=["none", "starttls", "tls"], default="none")
    parser.add_argument("--cert")
    parser.add_argument("--key")
    args = parser.parse_args()
    sink = Sink(args.dir)
    context = None
    if args.tls != "none":
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(args.cert, args.key)
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    server = loop.run_until_complete(
        loop.create_server(
            lambda: SMTP(
                sink,
                decode_data=False,
                hostname="sink.test",
                ident="provision test sink",
                tls_context=context if args.tls == "starttls" else None,
                require_starttls=args.tls == "starttls",
            ),
            host=args.host,
            port=args.port,
            reuse_address=True,
            ssl=context if args.tls == "tls" else None,
        )
    )
    loop.add_signal_handler(signal.SIGTERM, loop.stop)
    loop.add_signal_handler(signal.SIGINT, loop.stop)
    print("ready", args.host, args.port, flush=True)
    try:
        loop.run_forever()
    finally:
        server.close()


if __name__ == "__main__":
    main()
