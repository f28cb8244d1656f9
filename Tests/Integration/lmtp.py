#!/usr/bin/env python3
"""The LMTP server (`notmuch-deliver lmtp`) against clients nobody here wrote.

Python's smtplib.LMTP speaks the protocol for the ordinary cases (it reads
one reply after the final dot, so the tests read the other recipients'
replies with its getreply()); raw sockets send the bytes a library would
never send: bare LF, overlong lines, NUL, dot-stuffing, pipelining in one
write, a client that goes away in the middle of DATA. What was stored is
checked with the real notmuch CLI and by looking at the files.

    python3 Tests/Integration/lmtp.py PATH/TO/notmuch-deliver

Exit status: 0 all passed, 1 a test failed, 77 it cannot run here (the
reason is printed after "SKIPPED:"). The server refuses to run as root: run
as root, the servers (and the notmuch commands that look at what they
stored) run as nobody (65534) through setpriv, and one more test checks the
refusal; run as another user, they run as that user and the refusal is not
tested (said so on the output).
"""

import os
import re
import shutil
import signal
import smtplib
import socket
import subprocess
import sys
import tempfile
import threading
import time

from common import Failure, check, skip

NOBODY = 65534
SENDER = "sender@remote.example"


class Environment:
    """A scratch directory owned by the user the servers run as, a personal
    notmuch setup in it (config, mail root, database, rules), and a place
    for virtual mailboxes."""

    def __init__(self, binary):
        self.binary = os.path.abspath(binary)
        self.root_user = os.geteuid() == 0
        self.dir = tempfile.mkdtemp(prefix="nd-lmtp-test.")
        os.chmod(self.dir, 0o700)
        self.mail = os.path.join(self.dir, "mail")
        self.config = os.path.join(self.dir, "notmuch-config")
        self.rules = os.path.join(self.dir, "rules")
        os.mkdir(self.mail)
        for sub in ("vmail", "vquota", "vleft", "vstuck"):
            os.mkdir(os.path.join(self.dir, sub))
        with open(self.config, "w") as f:
            f.write(f"[database]\npath={self.mail}\n[new]\ntags=unread;inbox;\n[deliver]\nrules={self.rules}\n")
        with open(self.rules, "w") as f:
            f.write("+fromtest -- from:sender@remote.example\n")
            f.write("+shopping folder:shop -- extension:shop\n")
        if self.root_user:
            for top, dirs, files in os.walk(self.dir):
                for name in [top] + [os.path.join(top, n) for n in dirs + files]:
                    os.chown(name, NOBODY, NOBODY)
        self.servers = []
        self.run(["notmuch", "new", "--quiet"], check_status=True)

    def prefix(self):
        """How a command is run as the servers' user."""
        if self.root_user:
            return ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups"]
        return []

    def env(self, config=None):
        env = {k: v for k, v in os.environ.items() if not k.startswith(("NOTMUCH_", "LISTEN_"))}
        env["HOME"] = self.dir
        env["NOTMUCH_CONFIG"] = config or self.config
        return env

    def run(self, argv, config=None, check_status=False, stdin=None):
        result = subprocess.run(self.prefix() + argv, env=self.env(config), input=stdin,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
        if check_status and result.returncode != 0:
            raise Failure(f"{argv} exited {result.returncode}: {result.stderr.decode(errors='replace')}")
        return result

    def notmuch(self, *args, mailbox=None):
        """notmuch's output, as the servers' user; `mailbox`: a virtual
        mailbox, through a config naming it."""
        config = None
        if mailbox:
            config = os.path.join(self.dir, "view-" + os.path.basename(mailbox) + ".conf")
            with open(config, "w") as f:
                f.write(f"[database]\npath={mailbox}\n")
            os.chmod(config, 0o644)
        result = self.run(["notmuch"] + list(args), config=config)
        check(result.returncode == 0, f"notmuch {' '.join(args)}: {result.stderr.decode(errors='replace')}")
        return result.stdout.decode().strip()

    def count(self, query, mailbox=None):
        return int(self.notmuch("count", query, mailbox=mailbox))

    def start(self, name, *options, personal=True):
        """A server on a unix socket in the scratch directory, with its own log."""
        server = Server(self, name, list(options), personal)
        self.servers.append(server)
        return server

    def stop_all(self):
        for server in self.servers:
            server.stop()

    def vmailbox(self, address, base="vmail"):
        local, domain = address.split("@")
        return os.path.join(self.dir, base, domain, local)


class Server:
    def __init__(self, environment, name, options, personal):
        self.environment = environment
        self.socket = os.path.join(environment.dir, f"{name}.sock")
        self.log = os.path.join(environment.dir, f"{name}.log")
        self.stderr_path = os.path.join(environment.dir, f"{name}.stderr")
        argv = [environment.binary, "lmtp", "--listen", f"unix:{self.socket}", "--log", self.log] + options
        if "--timeout" not in options:
            argv += ["--timeout", "30"]
        self.stderr = open(self.stderr_path, "wb")
        self.process = subprocess.Popen(environment.prefix() + argv, env=environment.env(),
                                        stdin=subprocess.DEVNULL, stdout=self.stderr, stderr=self.stderr)
        deadline = time.monotonic() + 20
        while True:
            if self.process.poll() is not None:
                raise Failure(f"server {name} exited {self.process.returncode}: {self.errors()}")
            try:
                with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
                    probe.settimeout(5)
                    probe.connect(self.socket)
                    probe.recv(512)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise Failure(f"server {name} did not start listening: {self.errors()}")
                time.sleep(0.05)

    def errors(self):
        self.stderr.flush()
        with open(self.stderr_path, "rb") as f:
            return f.read().decode(errors="replace").strip()

    def lmtp(self):
        client = smtplib.LMTP(self.socket, timeout=30)
        code, _ = client.ehlo("client.test")
        check(code == 250, f"LHLO answered {code}")
        return client

    def raw(self):
        return Raw(self.socket)

    def log_lines(self):
        try:
            with open(self.log, encoding="utf-8", errors="replace") as f:
                return f.read().splitlines()
        except FileNotFoundError:
            return []

    def stop(self):
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=40)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.stderr.close()


class Raw:
    """A client that sends exactly the bytes it is given."""

    def __init__(self, path):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(30)
        self.sock.connect(path)
        self.buffer = b""
        self.greeting = self.reply()

    def send(self, data):
        self.sock.sendall(data)

    def line(self):
        while b"\n" not in self.buffer:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise Failure(f"connection closed by the server (pending: {self.buffer!r})")
            self.buffer += chunk
        line, _, self.buffer = self.buffer.partition(b"\n")
        check(line.endswith(b"\r"), f"reply line without CRLF: {line!r}")
        return line[:-1].decode("utf-8", errors="replace")

    def reply(self):
        """(code, text of the last line) of one possibly multi-line reply."""
        while True:
            line = self.line()
            check(re.match(r"^\d{3}[ -]", line) is not None, f"not a reply line: {line!r}")
            if line[3] == " ":
                return int(line[:3]), line[4:]

    def reply_lines(self):
        """Every line of one reply, codes included."""
        lines = []
        while not lines or lines[-1][3] != " ":
            lines.append(self.line())
            check(re.match(r"^\d{3}[ -]", lines[-1]) is not None, f"not a reply line: {lines[-1]!r}")
        return lines

    def replies(self, n):
        return [self.reply() for _ in range(n)]

    def expect(self, code, enhanced=None, what=""):
        got = self.reply()
        check(got[0] == code and (enhanced is None or got[1].startswith(enhanced + " ")),
              f"{what}: expected {code} {enhanced or ''}, got {got}")
        return got

    def ask(self, command, code, enhanced=None, what=""):
        """Sends one command (or a message and its dot) and checks its one reply."""
        self.send(command)
        return self.expect(code, enhanced, what)

    def open_data(self, recipients=("t@example.org",), sender=SENDER, lhlo=True, what="commands"):
        """LHLO (unless the session had it), MAIL, a RCPT for each recipient
        and DATA in one write: each accepted (250), then DATA's 354."""
        commands = ((b"LHLO x\r\n" if lhlo else b"") + f"MAIL FROM:<{sender}>\r\n".encode()
                    + b"".join(f"RCPT TO:<{r}>\r\n".encode() for r in recipients) + b"DATA\r\n")
        self.send(commands)
        want = [250] * (lhlo + 1 + len(recipients)) + [354]
        codes = [r[0] for r in self.replies(len(want))]
        check(codes == want, f"{what}: replies {codes}, want {want}")

    def closed_by_server(self, within=10):
        """True when the server closes the connection (EOF) before `within` seconds."""
        self.sock.settimeout(within)
        try:
            while True:
                chunk = self.sock.recv(65536)
                if not chunk:
                    return True
                self.buffer += chunk
        except socket.timeout:
            return False
        except ConnectionResetError:
            return True

    def close(self):
        self.sock.close()


def message(msgid, subject, to="t@example.org", body="Hello.\r\n", extra=""):
    return (f"From: Sender <{SENDER}>\r\nTo: <{to}>\r\nSubject: {subject}\r\n"
            f"Message-ID: <{msgid}>\r\n{extra}\r\n{body}")


def session_of(text):
    """The session id in a `250 2.0.0 <rcpt> SESSION Saved (...)` reply."""
    m = re.match(r"^2\.0\.0 <[^>]*> (\S+) Saved", text)
    check(m is not None, f"no session id in the reply {text!r}")
    return m.group(1)


def files_under(root):
    """Every file below `root`, .notmuch excluded (maildirsize included)."""
    found = set()
    for top, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if d != ".notmuch"]
        found.update(os.path.relpath(os.path.join(top, f), root) for f in files)
    return found


def wait_until(predicate, seconds=10):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return predicate()


def decode(reply):
    return reply.decode() if isinstance(reply, bytes) else reply


# --- the tests ---------------------------------------------------------------

def test_one_recipient(env, personal, virtual):
    with personal.lmtp() as client:
        check("pipelining" in client.esmtp_features and "enhancedstatuscodes" in client.esmtp_features
              and "8bitmime" in client.esmtp_features, f"LHLO extensions: {client.esmtp_features}")
        code, text = client.mail(SENDER, ["SIZE=200", "BODY=8BITMIME"])
        check(code == 250, f"MAIL FROM: {code} {text}")
        code, text = client.rcpt("t@example.org")
        check(code == 250, f"RCPT TO: {code} {text}")
        code, text = client.data(message("one@remote.example", "one recipient"))
        text = decode(text)
        check(code == 250 and text.startswith("2.0.0 <t@example.org> "), f"after DATA: {code} {text}")
        session = session_of(text)
    tags = env.notmuch("search", "--output=tags", "id:one@remote.example").split()
    check(tags == ["fromtest", "inbox", "unread"], f"tags: {tags} (want new.tags and the rule's fromtest)")
    path = env.notmuch("search", "--output=files", "id:one@remote.example")
    with open(path, "rb") as f:
        stored = f.read()
    check(b"\r" not in stored, "the stored file has CR characters")
    check(stored.startswith(f"Return-Path: <{SENDER}>\nDelivered-To: t@example.org\n".encode()),
          f"stored file does not start with Return-Path and Delivered-To: {stored[:120]!r}")
    check(stored.endswith(b"\n\nHello.\n"), f"stored body: {stored[-40:]!r}")
    check(os.path.basename(os.path.dirname(path)) == "new", f"stored in {path}, not in new/")
    new = env.notmuch("new")
    check(new == "No new mail.", f"notmuch new after the delivery: {new!r}")
    lines = [l for l in personal.log_lines() if f"session={session} " in l]
    check(len(lines) == 1 and "rcpt=<t@example.org> delivered id=<one@remote.example>" in lines[0]
          and "outcome=indexed" in lines[0], f"log lines for session {session}: {lines}")
    return "250 2.0.0, indexed with new.tags and the rule's tag, LF line ends, Return-Path and Delivered-To, one log line"


def test_stdio(env, personal, virtual):
    session = (b"LHLO x\r\nMAIL FROM:<sender@remote.example>\r\nRCPT TO:<t@example.org>\r\nDATA\r\n"
               + message("stdio@remote.example", "over stdio").encode() + b".\r\nQUIT\r\n")
    result = env.run([env.binary, "lmtp", "--stdio", "--log", os.path.join(env.dir, "stdio.log")], stdin=session)
    out = result.stdout.decode(errors="replace")
    check(result.returncode == 0, f"--stdio exited {result.returncode}: {result.stderr!r}")
    codes = re.findall(r"^(\d{3}) ", out, re.M)
    check(codes == ["220", "250", "250", "250", "354", "250", "221"], f"--stdio replies: {out!r}")
    check(env.count("id:stdio@remote.example") == 1, "the --stdio message is not indexed")
    # A file (or /dev/null) cannot be polled: refused with a reason, no crash.
    with open(os.devnull, "wb") as null:
        refused = subprocess.run(env.prefix() + [env.binary, "lmtp", "--stdio"], env=env.env(), input=session,
                                 stdout=null, stderr=subprocess.PIPE, timeout=60)
    check(refused.returncode == 64 and b"--stdio needs" in refused.stderr and b"crashed" not in refused.stderr,
          f"--stdio with stdout on /dev/null: exit {refused.returncode}, {refused.stderr[:300]!r}")
    return "a whole session on stdin/stdout: replies in order, indexed, exit 0; onto /dev/null: refused, 64"


def test_mixed_outcomes(env, personal, virtual):
    alice, bob, carol = "alice@virt.example", "bob@virt.example", "carol@virt.example"
    with virtual.lmtp() as client:
        # bob's mailbox exists before it is made unwritable.
        refused = client.sendmail(SENDER, [bob], message("bob-first@remote.example", "first", bob))
        check(refused == {}, f"first message to bob refused: {refused}")
    bob_box = env.vmailbox(bob)
    check(env.count("id:bob-first@remote.example", mailbox=bob_box) == 1, "bob's first message not indexed")
    os.chmod(os.path.join(bob_box, "new"), 0o500)
    try:
        with virtual.lmtp() as client:
            check(client.mail(SENDER)[0] == 250, "MAIL FROM")
            for rcpt in (alice, bob, carol):
                code, text = client.rcpt(rcpt)
                check(code == 250, f"RCPT {rcpt}: {code} {text}")
            first = client.data(message("mixed@remote.example", "mixed outcomes", alice))
            replies = [(first[0], decode(first[1]))] + [(c, decode(t)) for c, t in (client.getreply(), client.getreply())]
        check([c for c, _ in replies] == [250, 451, 250], f"replies after DATA: {replies}")
        check(replies[1][1].startswith("4.") and f"<{bob}>" in replies[1][1], f"bob's reply: {replies[1]}")
        check(f"<{alice}>" in replies[0][1] and f"<{carol}>" in replies[2][1], f"replies out of order: {replies}")
        session = session_of(replies[0][1])
        check(session == session_of(replies[2][1]), "two session ids in one transaction")
        for rcpt in (alice, carol):
            box = env.vmailbox(rcpt)
            check(env.count("id:mixed@remote.example", mailbox=box) == 1, f"not in {rcpt}'s mailbox")
            tags = env.notmuch("search", "--output=tags", "id:mixed@remote.example", mailbox=box).split()
            check(tags == ["inbox", "unread"], f"{rcpt}: tags {tags}")
        check(env.count("id:mixed@remote.example", mailbox=bob_box) == 0, "indexed in the unwritable mailbox")
        check(os.listdir(os.path.join(bob_box, "tmp")) == [], f"left in bob's tmp/: {os.listdir(os.path.join(bob_box, 'tmp'))}")
        lines = [l for l in virtual.log_lines() if f"session={session} " in l]
        check(len(lines) == 3, f"want 3 log lines (one per recipient) for session {session}: {lines}")
        for rcpt, word in ((alice, " delivered "), (bob, " failed outcome=deferred "), (carol, " delivered ")):
            check(sum(f"rcpt=<{rcpt}>{word}" in l for l in lines) == 1, f"no log line for {rcpt} with '{word.strip()}': {lines}")
    finally:
        os.chmod(os.path.join(bob_box, "new"), 0o700)
    with virtual.lmtp() as client:
        refused = client.sendmail(SENDER, [bob], message("mixed@remote.example", "mixed outcomes", alice))
        check(refused == {}, f"resent to bob: {refused}")
    check(env.count("id:mixed@remote.example", mailbox=bob_box) == 1, "resent message not indexed for bob")
    files = env.notmuch("search", "--output=files", "id:mixed@remote.example", mailbox=bob_box).splitlines()
    check(len(files) == 1, f"bob has the message {len(files)} times: {files}")
    return "alice 250, bob (new/ 0500) 451, carol 250, in RCPT order, one log line each; after the fix bob's arrives once"


def test_repeated_recipient(env, personal, virtual):
    with personal.lmtp() as client:
        client.mail(SENDER)
        check(client.rcpt("t@example.org")[0] == 250 and client.rcpt("t@example.org")[0] == 250, "RCPT twice")
        first = client.data(message("twice@remote.example", "twice"))
        second = client.getreply()
        check(client.noop()[0] == 250, "the session is out of step after the replies")
    check(first[0] == 250 and second[0] == 250, f"replies: {first} {second}")
    check(env.count("id:twice@remote.example") == 1, "the message is not indexed (once)")
    session = session_of(decode(first[1]))
    lines = [l for l in personal.log_lines() if f"session={session} rcpt=<t@example.org>" in l]
    check(len(lines) == 2, f"log lines for the repeated recipient: {lines}")
    return "two RCPTs of one address: two 250 replies, then the session is in step (NOOP 250); indexed once"


def test_rset(env, personal, virtual):
    with personal.lmtp() as client:
        client.mail(SENDER)
        client.rcpt("t@example.org")
        check(client.rset()[0] == 250, "RSET")
        code, text = client.docmd("DATA")
        check(code == 503, f"DATA after RSET: {code} {text}")
        check(client.sendmail(SENDER, ["t@example.org"], message("rset1@remote.example", "after rset 1")) == {}, "1st")
        check(client.rset()[0] == 250, "RSET between transactions")
        check(client.sendmail(SENDER, ["t@example.org"], message("rset2@remote.example", "after rset 2")) == {}, "2nd")
    for n in (1, 2):
        check(env.count(f"id:rset{n}@remote.example") == 1, f"message {n} of the connection not indexed")
    return "RSET drops the transaction (DATA then 503), two transactions on one connection both delivered"


def test_pipelining(env, personal, virtual):
    c = personal.raw()
    c.ask(b"LHLO x\r\n", 250, what="LHLO")
    c.open_data(["t@example.org", "t+shop@example.org"], lhlo=False, what="pipelined MAIL/RCPT/RCPT/DATA")
    c.send(message("pipe@remote.example", "pipelined").encode() + b".\r\n")
    replies = c.replies(2)
    check(replies[0][0] == 250 and "<t@example.org>" in replies[0][1], f"first reply: {replies[0]}")
    check(replies[1][0] == 250 and "<t+shop@example.org>" in replies[1][1], f"second reply: {replies[1]}")
    # A whole transaction and QUIT in one write, then the client's side shut.
    c.send(b"MAIL FROM:<sender@remote.example>\r\nRCPT TO:<t@example.org>\r\nDATA\r\n"
           + message("pipe2@remote.example", "all in one write").encode() + b".\r\nQUIT\r\n")
    c.sock.shutdown(socket.SHUT_WR)
    codes = [r[0] for r in c.replies(5)]
    check(codes == [250, 250, 354, 250, 221], f"one-write transaction replies: {codes}")
    c.close()
    check(env.count("id:pipe@remote.example") == 1 and env.count("id:pipe2@remote.example") == 1,
          "pipelined messages not indexed")
    return "MAIL/RCPT/RCPT/DATA in one write: replies in order, one per recipient after the dot, each naming its recipient; a whole transaction + QUIT in one write then shutdown(SHUT_WR)"


def test_dot_stuffing_and_bare_lf(env, personal, virtual):
    c = personal.raw()
    c.open_data(what="commands before the stuffed message")
    body = b"..starts with a dot\r\n...\r\n..\r\n. \r\nend\r\n"
    c.ask(message("dots@remote.example", "dots").encode().replace(b"Hello.\r\n", b"") + body + b".\r\n",
          250, "2.0.0", "stuffed message")
    # A bare LF ends no command: 500 at once, its line skipped through the
    # next CRLF, never run (MAIL here would answer 250).
    c.send(b"MAIL FROM:<sender@remote.example>\nRCPT TO:<t@example.org>\r\nNOOP\r\n")
    check([r[0] for r in c.replies(2)] == [500, 250], "a bare-LF command")
    c.ask(b"QUIT\r\n", 221, what="QUIT")
    c.close()
    with open(env.notmuch("search", "--output=files", "id:dots@remote.example"), "rb") as f:
        stored = f.read()
    check(stored.endswith(b"\n\n.starts with a dot\n..\n.\n \nend\n"), f"unstuffed body: {stored[-60:]!r}")
    return "dot-stuffed lines unstuffed ('..x', '...', '..', '. '); a bare-LF command refused (500) and not run"


# Each near miss of CRLF "." CRLF, as a client that passes bare line ends
# through would send it, then a forged transaction (issue 22: SMTP smuggling).
NEAR_MISSES = [b"\n.\n", b"\r\n.\n", b"\n.\r\n", b"\r.\r", b"\r\n.\r"]


def smuggling_session(n, ending, lhlo=True):
    forged = (b"MAIL FROM:<ceo@bank.example>\r\nRCPT TO:<t@example.org>\r\nDATA\r\n"
              b"From: CEO <ceo@bank.example>\r\nSubject: forged\r\n"
              + f"Message-ID: <forged-{n}@bank.example>\r\n\r\nPay now.\r\n".encode())
    return ((b"LHLO x\r\n" if lhlo else b"")
            + b"MAIL FROM:<sender@remote.example>\r\nRCPT TO:<t@example.org>\r\nDATA\r\n"
            + message(f"smuggle-{n}@remote.example", "carrier", body="text").encode()
            + ending + forged + b".\r\nQUIT\r\n")


def check_one_carrier(env, n, ending):
    check(env.count(f"id:smuggle-{n}@remote.example") == 1, f"{ending!r}: the carrier message is not stored once")
    check(env.count(f"id:forged-{n}@bank.example") == 0, f"{ending!r}: a forged message was stored")
    check(env.count("from:ceo@bank.example") == 0, f"{ending!r}: a message from the forged sender was stored")
    with open(env.notmuch("search", "--output=files", f"id:smuggle-{n}@remote.example"), "rb") as f:
        stored = f.read()
    check(b"MAIL FROM:<ceo@bank.example>" in stored and stored.endswith(b"Pay now.\n"),
          f"{ending!r}: the would-be commands are not the carrier's content: {stored[-200:]!r}")


def test_smuggling(env, personal, virtual):
    before = env.count("*")
    for n, ending in enumerate(NEAR_MISSES):
        c = personal.raw()
        c.send(smuggling_session(n, ending))
        codes = [r[0] for r in c.replies(6)]
        check(codes == [250, 250, 250, 354, 250, 221], f"{ending!r}: replies {codes} (want one transaction)")
        check(c.closed_by_server(), f"{ending!r}: the connection stays open after QUIT")
        c.close()
        check_one_carrier(env, n, ending)
    # The same bytes through --stdio.
    n = len(NEAR_MISSES)
    result = env.run([env.binary, "lmtp", "--stdio"], stdin=smuggling_session(n, b"\n.\n"))
    codes = re.findall(r"^(\d{3}) ", result.stdout.decode(errors="replace"), re.M)
    check(result.returncode == 0 and codes == ["220", "250", "250", "250", "354", "250", "221"],
          f"--stdio: exit {result.returncode}, replies {codes}")
    check_one_carrier(env, n, b"\n.\n (stdio)")
    added = env.count("*") - before
    check(added == n + 1, f"{added} messages stored for {n + 1} carriers")
    return (f"{len(NEAR_MISSES)} near misses of CRLF.CRLF over a socket and one over --stdio: one message each "
            "(notmuch: the forged Message-ID absent), the would-be commands in its body")


def test_utf8_addresses(env, personal, virtual):
    c = virtual.raw()
    c.send(b"LHLO x\r\n")
    check("SMTPUTF8" in [line[4:] for line in c.reply_lines()], "LHLO does not offer SMTPUTF8")
    rcpt = "Jörg@Bücher.example"
    c.send(f"MAIL FROM:<jörg@bücher.example> SMTPUTF8 BODY=8BITMIME\r\nRCPT TO:<{rcpt}>\r\nDATA\r\n".encode())
    check([r[0] for r in c.replies(3)] == [250, 250, 354], "MAIL/RCPT/DATA with UTF-8 addresses")
    c.ask(message("utf8@remote.example", "Grüße", to=rcpt).encode() + b".\r\n", 250, "2.0.0", "UTF-8 recipient delivered")
    # Without SMTPUTF8: 553 5.6.7; not UTF-8 or a C1 control: 501.
    c.ask("MAIL FROM:<jörg@bücher.example>\r\n".encode(), 553, "5.6.7", "UTF-8 sender without SMTPUTF8")
    c.send(b"MAIL FROM:<s@remote.example> SMTPUTF8\r\nRCPT TO:<j\xc3rg@example.org>\r\n"
           + "RCPT TO:<j\u0085rg@example.org>\r\nQUIT\r\n".encode())
    replies = c.replies(4)
    check([r[0] for r in replies] == [250, 501, 501, 221]
          and "not valid UTF-8" in replies[1][1] and "control character" in replies[2][1], f"bad addresses: {replies}")
    c.close()
    box = os.path.join(env.dir, "vmail", "bücher.example", "jörg")
    check(os.path.isdir(box), f"no mailbox {box}: {os.listdir(os.path.join(env.dir, 'vmail'))}")
    found = env.notmuch("search", "--output=messages", "subject:Grüße", mailbox=box)
    check(found == "id:utf8@remote.example", f"notmuch search subject:Grüße in {box}: {found!r}")
    with open(env.notmuch("search", "--output=files", "id:utf8@remote.example", mailbox=box), "rb") as f:
        stored = f.read()
    check(stored.startswith(f"Return-Path: <jörg@bücher.example>\nDelivered-To: {rcpt}\n".encode()),
          f"trace headers: {stored[:120]!r}")
    return "SMTPUTF8 offered; Jörg@Bücher.example delivered into vmail/bücher.example/jörg (notmuch search finds it); 553 5.6.7 without SMTPUTF8, 501 for bad UTF-8 and C1"


def test_bad_commands(env, personal, virtual):
    c = personal.raw()
    c.ask(b"HELO client.test\r\n", 500, what="HELO")
    c.ask(b"EHLO client.test\r\n", 500, what="EHLO")
    c.ask(b"LHLO client.test\r\n", 250, what="LHLO")
    c.ask(b"NOOP " + b"x" * 5000 + b"\r\n", 500, "5.5.2", "5,000-byte command line")
    c.ask(b"NOOP\r\n", 250, what="NOOP after the overlong line")
    c.ask(b"NOOP\x00\r\n", 500, what="NUL in a command")
    c.ask(b"MAIL FROM:<sen\x00der@remote.example>\r\n", 500, what="NUL in MAIL FROM")
    c.ask(b"DATA\r\n", 503, what="DATA without MAIL")
    c.ask(b"MAIL FROM:<sender@remote.example>\r\n", 250, what="MAIL")
    c.ask(b"DATA\r\n", 503, what="DATA without RCPT")
    c.ask(b"RCPT TO:<t@example.org>\r\nDATA\r\n", 250, what="RCPT")
    c.expect(354, what="DATA")
    c.ask(message("afterbad@remote.example", "after bad commands").encode() + b".\r\n",
          250, "2.0.0", "message after the bad commands")
    c.close()
    check(env.count("id:afterbad@remote.example") == 1, "message after the bad commands not indexed")
    return "HELO/EHLO 500, 5,000-byte line 500 5.5.2, NUL 500, DATA without MAIL/RCPT 503; the session still delivers"


def test_disconnect_mid_data(env, personal, virtual):
    before = files_under(env.mail)
    c = personal.raw()
    c.open_data()
    c.send(message("middata@remote.example", "cut off").encode() + b"x" * 100000 + b"\r\nmore")
    c.close()
    # A virtual mailbox that does not exist yet: it must not be made.
    ghost = env.vmailbox("ghost@virt.example")
    v = virtual.raw()
    v.open_data(["ghost@virt.example"], what="commands (virtual)")
    v.send(message("middata-v@remote.example", "cut off").encode())
    v.close()
    time.sleep(1.5)
    # The server is still there and has not stored anything.
    with personal.lmtp() as client:
        check(client.noop()[0] == 250, "server gone after the disconnect")
    after = files_under(env.mail)
    check(after == before, f"files appeared: {sorted(after - before)}; vanished: {sorted(before - after)}")
    check(env.count("id:middata@remote.example") == 0, "the cut-off message is indexed")
    check(not os.path.exists(ghost), f"the virtual mailbox {ghost} was created: {files_under(ghost) if os.path.isdir(ghost) else ''}")
    leftovers = [f for f in os.listdir(os.path.join(env.dir, "vmail")) if not os.path.isdir(os.path.join(env.dir, "vmail", f))]
    check(leftovers == [], f"files left in the virtual mail root: {leftovers}")
    return "client gone mid-DATA: no file in new/, cur/ or tmp/, nothing indexed, no virtual mailbox created"


def test_not_mail(env, personal, virtual):
    before = files_under(env.mail)
    c = personal.raw()
    c.open_data()
    c.send(b"just some words\r\nand no header at all\r\n.\r\n")
    code, text = c.reply()
    check(code == 554 and text.startswith("5.6.0 "), f"not-mail data: {code} {text}")
    c.close()
    time.sleep(0.2)
    after = files_under(env.mail)
    check(after == before, f"not-mail data left files: {sorted(after - before)}")
    return "data without From/Subject/To: 554 5.6.0, nothing kept"


def test_too_big(env, personal, virtual):
    before = files_under(env.mail)
    c = personal.raw()
    c.send(b"LHLO x\r\n")
    lines = c.reply_lines()
    check("250 SIZE 65536" in lines, f"SIZE 65536 not advertised for --max-message-size 64K: {lines}")
    c.ask(b"MAIL FROM:<sender@remote.example> SIZE=100000\r\n", 552, "5.3.4", "MAIL with SIZE over the limit")
    c.open_data(["t@example.org", "t+x@example.org"], lhlo=False)
    c.send(message("big@remote.example", "too big").encode() + (b"y" * 998 + b"\r\n") * 100 + b".\r\n")
    replies = c.replies(2)
    check(all(r[0] == 552 and r[1].startswith("5.3.4 ") for r in replies), f"replies to a 100 KB message: {replies}")
    c.ask(b"NOOP\r\n", 250, what="NOOP after the refusal")
    c.close()
    time.sleep(0.2)
    after = files_under(env.mail)
    check(after == before, f"a too-big message left files: {sorted(after - before)}")
    check(env.count("id:big@remote.example") == 0, "the too-big message is indexed")
    return "SIZE=100000 at MAIL 552 5.3.4; 100 KB over --max-message-size 64K: 552 5.3.4 for each recipient, nothing stored"


def test_max_recipients(env, personal, virtual):
    with personal.lmtp() as client:
        client.mail(SENDER)
        codes = [client.rcpt(f"t+r{n}@example.org") for n in range(6)]
        check([c for c, _ in codes[:5]] == [250] * 5, f"first 5 RCPTs: {codes[:5]}")
        check(codes[5][0] == 452, f"6th RCPT over --max-recipients 5: {codes[5]}")
        first = client.data(message("maxrcpt@remote.example", "five recipients"))
        rest = [client.getreply() for _ in range(4)]
        check(client.noop()[0] == 250, "out of step after 5 replies")
    check([first[0]] + [c for c, _ in rest] == [250] * 5, f"replies: {first} {rest}")
    return "6th RCPT with --max-recipients 5: 452; the 5 accepted get 5 replies"


def test_extension(env, personal, virtual):
    with personal.lmtp() as client:
        check(client.sendmail(SENDER, ["t+shop@example.org"], message("shop@remote.example", "order")) == {}, "refused")
    check(env.count("id:shop@remote.example and folder:shop and tag:shopping") == 1,
          "t+shop@ did not reach the rule 'extension:shop' (folder shop, tag shopping)")
    return "+shop recipient: rule extension:shop filed it in folder shop with tag shopping"


def test_shared_file_filed(env, personal, virtual):
    """Two recipients of one mailbox share one file and make one record
    each; a rule files the file while the first record is applied, and the
    second must follow it there, not be set aside as gone."""
    with personal.lmtp() as client:
        client.mail(SENDER)
        for rcpt in ("t+shop@example.org", "u+shop@example.org"):
            code, text = client.rcpt(rcpt)
            check(code == 250, f"RCPT {rcpt}: {code} {text}")
        replies = [client.data(message("shared-shop@remote.example", "shared order")), client.getreply()]
        check(all(code == 250 and b"queued" not in text for code, text in replies), f"replies: {replies}")
    check(env.count("id:shared-shop@remote.example and folder:shop and tag:shopping") == 1,
          "the message is not filed in shop with its tag")
    files = env.notmuch("search", "--output=files", "id:shared-shop@remote.example").splitlines()
    check(len(files) == 1, f"one message, {len(files)} files: {files}")
    listed = env.run([env.binary, "flush", "--list"])
    check(listed.returncode == 0 and b"no deliveries are set aside" in listed.stdout,
          f"records set aside: {listed.stdout.decode(errors='replace')}")
    return "two recipients, one file filed by a rule: one file in shop, nothing set aside"


def as_servers_user(env, path):
    """A file made here, owned by the user the servers run as."""
    if env.root_user:
        os.chown(path, NOBODY, NOBODY, follow_symlinks=False)


def try_rcpt(server, address, wait=8):
    """LHLO, MAIL and RCPT for `address`: its RCPT reply, or None when none
    came within `wait` seconds (the client then gives up and leaves)."""
    client = server.raw()
    client.sock.settimeout(wait)
    try:
        client.send(f"LHLO x\r\nMAIL FROM:<{SENDER}>\r\nRCPT TO:<{address}>\r\n".encode())
        client.replies(2)
        return client.reply(), client
    except (socket.timeout, Failure):
        client.close()
        return None, None


def test_start_removes_leftovers(env, personal, virtual):
    """A server starting removes the files killed deliveries left in tmp/
    (their writer, named in the file's name, is gone from this host), and
    leaves a live writer's and another host's young ones alone."""
    tmp = os.path.join(env.mail, "tmp")
    with personal.lmtp() as client:
        check(client.sendmail(SENDER, ["t@example.org"], message("before-leftovers@remote.example", "x")) == {},
              "a delivery before the leftovers refused")
    dead = subprocess.Popen(["true"])
    dead.wait()
    now = int(time.time())
    host = socket.gethostname()
    names = {
        "dead": f"{now}.M1P{dead.pid}R1Q1.{host}",
        "live": f"{now + 1}.M1P{os.getpid()}R1Q1.{host}",
        "other host": f"{now}.M1P{dead.pid}R1Q1.elsewhere.example",
    }
    for name in names.values():
        with open(os.path.join(tmp, name), "w") as f:
            f.write("From: half-written\n")
        as_servers_user(env, os.path.join(tmp, name))
    server = env.start("leftover-start", "--lock-timeout", "1")
    server.stop()
    left = set(os.listdir(tmp))
    check(names["dead"] not in left, f"the dead writer's file is still in tmp/: {sorted(left)}")
    check(names["live"] in left and names["other host"] in left, f"a live or another host's file was removed: {sorted(left)}")
    for name in (names["live"], names["other host"]):
        os.unlink(os.path.join(tmp, name))
    return "server start: a dead writer's tmp/ file removed; a live writer's and another host's kept"


def test_stuck_mailbox(env, personal, virtual):
    """A mailbox whose files hang an open (a FIFO for maildirsize) or whose
    lock another program holds for ever: its recipient gets 451 4.3.0, the
    other mailboxes are served, the connection slots are freed, and SIGTERM
    still ends the server."""
    template = os.path.join(env.dir, "vstuck", "%d", "%u")
    server = env.start("stuck", "--mail-root", template, "--max-connections", "3", "--timeout", "3",
                       "--lock-timeout", "20")
    with server.lmtp() as client:
        for user in ("alice", "bob"):
            check(client.sendmail(SENDER, [f"{user}@stuck.example"], message(f"first-{user}@remote.example", "first")) == {},
                  f"first message to {user} refused")
    alice = env.vmailbox("alice@stuck.example", base="vstuck")
    bob = env.vmailbox("bob@stuck.example", base="vstuck")
    fifo = os.path.join(alice, "maildirsize")
    os.mkfifo(fifo, 0o600)
    as_servers_user(env, fifo)
    # Three tries for alice with three connections allowed: each is answered
    # 451 4.3.0 at once, and leaves.
    for n in range(3):
        reply, client = try_rcpt(server, "alice@stuck.example")
        check(reply is not None, f"try {n + 1} for alice (FIFO maildirsize): no RCPT reply within 8 s")
        check(reply[0] == 451 and reply[1].startswith("4.3.0 ") and "maildirsize" in reply[1],
              f"try {n + 1} for alice (FIFO maildirsize): {reply}")
        client.close()
    with server.lmtp() as client:
        check(client.sendmail(SENDER, ["bob@stuck.example"], message("second-bob@remote.example", "bob")) == {},
              "bob refused while alice's maildirsize is a FIFO")
    check(env.count("id:second-bob@remote.example", mailbox=bob) == 1, "bob's message is not indexed")
    os.unlink(fifo)

    # A lock held for ever on alice's mailbox, with a quota: her delivery
    # waits for the lock (up to --lock-timeout 20), past the server's own
    # deadline (--timeout 3), which answers 451 and frees the connection.
    with open(fifo, "w") as f:
        f.write("100000000S\n")
    as_servers_user(env, fifo)
    holder = os.open(alice, os.O_RDONLY | os.O_DIRECTORY)
    import fcntl
    fcntl.flock(holder, fcntl.LOCK_EX)
    try:
        stuck = server.raw()
        stuck.sock.settimeout(15)
        stuck.open_data(["alice@stuck.example"], what="transaction for alice")
        stuck.send(message("stuck-alice@remote.example", "stuck").encode() + b".\r\n")
        try:
            code, text = stuck.reply()
        except socket.timeout:
            raise Failure("no reply for alice's stuck delivery within 15 s (--timeout 3)")
        check(code == 451 and text.startswith("4.3.0 ") and "did not finish within 3 s" in text,
              f"alice's stuck delivery: {code} {text}")
        stuck.close()
        # The mailbox takes nothing more while that delivery is stuck: at once.
        for n in range(2):
            reply, client = try_rcpt(server, "alice@stuck.example")
            check(reply is not None and reply[0] == 451 and "stuck" in reply[1],
                  f"try {n + 2} for alice while her delivery is stuck: {reply}")
            client.close()
        with server.lmtp() as client:
            check(client.sendmail(SENDER, ["bob@stuck.example"], message("third-bob@remote.example", "bob")) == {},
                  "bob refused while alice's delivery is stuck")
    finally:
        fcntl.flock(holder, fcntl.LOCK_UN)
        os.close(holder)
    # The stuck thread comes back, finds it was given up, and removes what it wrote.
    check(wait_until(lambda: not os.listdir(os.path.join(alice, "tmp")), 10), "alice's tmp/ not emptied")
    check(env.count("id:stuck-alice@remote.example", mailbox=alice) == 0, "the abandoned message was indexed")
    check(not any(b"<stuck-alice@remote.example>" in open(os.path.join(alice, "new", f), "rb").read()
                  for f in os.listdir(os.path.join(alice, "new"))), "the abandoned message is in alice's new/")
    with server.lmtp() as client:
        check(client.sendmail(SENDER, ["alice@stuck.example"], message("later-alice@remote.example", "later")) == {},
              "alice refused once her lock was released")

    # Two recipients, the second one stuck: the first, queued before the
    # deadline, is answered from its own delivery (250); the second 451.
    holder = os.open(alice, os.O_RDONLY | os.O_DIRECTORY)
    fcntl.flock(holder, fcntl.LOCK_EX)
    try:
        both = server.raw()
        both.sock.settimeout(20)
        both.open_data(["bob@stuck.example", "alice@stuck.example"], what="transaction for bob and alice")
        both.send(message("both@remote.example", "both").encode() + b".\r\n")
        try:
            first, second = both.replies(2)
        except socket.timeout:
            raise Failure("no replies for bob and a stuck alice within 20 s")
        check(first[0] == 250, f"bob, staged before the deadline: {first}")
        check(second[0] == 451 and "did not finish" in second[1], f"alice, stuck: {second}")
        both.close()
    finally:
        fcntl.flock(holder, fcntl.LOCK_UN)
        os.close(holder)
    check(wait_until(lambda: not os.listdir(os.path.join(alice, "tmp")), 10), "alice's tmp/ not emptied (2)")
    check(env.count("id:both@remote.example", mailbox=bob) == 1, "bob's copy of the two-recipient message is not indexed")
    check(env.count("id:both@remote.example", mailbox=alice) == 0, "alice's given-up copy was indexed")
    def alice_accepted():
        reply, client = try_rcpt(server, "alice@stuck.example")
        if client:
            client.close()
        return reply is not None and reply[0] == 250
    check(wait_until(alice_accepted, 10), "alice still refused after her stuck delivery came back")

    # SIGTERM with a delivery stuck for good: the server still stops.
    holder = os.open(alice, os.O_RDONLY | os.O_DIRECTORY)
    fcntl.flock(holder, fcntl.LOCK_EX)
    try:
        stuck = server.raw()
        stuck.open_data(["alice@stuck.example"], what="transaction for alice at SIGTERM")
        stuck.send(message("term-alice@remote.example", "at SIGTERM").encode() + b".\r\n")
        time.sleep(0.5)
        server.process.send_signal(signal.SIGTERM)
        # The bound: --timeout + --lock-timeout + 15 s (3 + 20 + 15 here).
        try:
            status = server.process.wait(timeout=38)
        except subprocess.TimeoutExpired:
            raise Failure("the server did not exit within 38 s of SIGTERM with a delivery stuck")
        check(status == 0, f"exit status after SIGTERM: {status}: {server.errors()}")
        stuck.close()
    finally:
        fcntl.flock(holder, fcntl.LOCK_UN)
        os.close(holder)
    return ("FIFO maildirsize: 451 4.3.0 at RCPT for alice (3 tries, 3 connections), bob 250; a lock held for ever: "
            "451 after --timeout, alice refused at once while stuck, bob 250, nothing of it stored; SIGTERM exits")


def test_max_connections(env, personal, virtual):
    limited = env.start("limited", "--max-connections", "2")
    held = [limited.raw(), limited.raw()]
    for c in held:
        check(c.greeting[0] == 220, f"greeting: {c.greeting}")
    third = limited.raw()
    check(third.greeting[0] == 421 and third.greeting[1].startswith("4."), f"3rd connection with 2 open: {third.greeting}")
    check(third.closed_by_server(), "the refused connection was not closed")
    third.close()
    held[0].ask(b"QUIT\r\n", 221, what="QUIT")
    held[0].close()
    def admitted():
        c = Raw(limited.socket)
        c.close()
        return c.greeting[0] == 220
    check(wait_until(admitted, 5), "no connection admitted after one of the two closed")
    held[1].close()
    limited.stop()
    return "--max-connections 2: a 3rd connection gets 421 and is closed; admitted again once one leaves"


def test_quota(env, personal, virtual):
    temporary = env.start("quota", "--mail-root", os.path.join(env.dir, "vquota", "%d", "%u"), "--quota", "2C")
    box = env.vmailbox("dana@virt.example", base="vquota")
    with temporary.lmtp() as client:
        for n in (1, 2):
            check(client.sendmail(SENDER, ["dana@virt.example"], message(f"q{n}@remote.example", f"q{n}")) == {},
                  f"message {n} of 2 refused")
        client.mail(SENDER, ["SIZE=300"])
        code, text = client.rcpt("dana@virt.example")
        check(code == 452 and decode(text).startswith("4.2.2 "), f"RCPT to a full mailbox: {code} {text}")
        code, text = client.rcpt("erin@virt.example")
        check(code == 250, f"RCPT to another mailbox in the same transaction: {code} {text}")
        client.rset()
    temporary.stop()
    permanent = env.start("quota-permanent", "--mail-root", os.path.join(env.dir, "vquota", "%d", "%u"),
                          "--quota", "2C", "--quota-permanent")
    with permanent.lmtp() as client:
        client.mail(SENDER)
        code, text = client.rcpt("dana@virt.example")
        check(code == 552 and decode(text).startswith("5.2.2 "), f"RCPT to a full mailbox with --quota-permanent: {code} {text}")
        code, text = client.docmd("DATA")
        check(code == 503, f"DATA with the only recipient refused: {code} {text}")
    permanent.stop()
    check(env.count("*", mailbox=box) == 2, "the full mailbox does not hold exactly 2 messages")
    check(os.listdir(os.path.join(box, "tmp")) == [], "files left in the full mailbox's tmp/")
    return "--quota 2C, mailbox holding 2: RCPT 452 4.2.2 (others still 250); --quota-permanent: 552 5.2.2"


def test_quota_warning(env, personal, virtual):
    """The warning a delivery triggers is not tagged by the rules the
    server was given: the server caches settings per mailbox, and the
    warning's "no rules" must not be served the mailbox's."""
    rules = os.path.join(env.dir, "rules-everything")
    with open(rules, "w") as f:
        f.write("+ruled -- *\n")
    if env.root_user:
        os.chown(rules, NOBODY, NOBODY)
    base = os.path.join(env.dir, "vwarn")
    os.mkdir(base)
    if env.root_user:
        os.chown(base, NOBODY, NOBODY)
    server = env.start("warn", "--mail-root", os.path.join(base, "%d", "%u"), "--quota", "4000",
                       "--quota-warn", "1", "--rules", rules)
    box = os.path.join(base, "virt.example", "wendy")
    with server.lmtp() as client:
        for n in (1, 2):
            check(client.sendmail(SENDER, ["wendy@virt.example"], message(f"w{n}@remote.example", f"w{n}")) == {},
                  f"message {n} refused")
    server.stop()
    check(env.count("tag:quota-warning", mailbox=box) == 1, "no quota warning delivered")
    check(env.count("tag:ruled and not tag:quota-warning", mailbox=box) == 2, "the rules did not tag the mail")
    check(env.count("tag:quota-warning and tag:ruled", mailbox=box) == 0, "the quota warning was tagged by the rules")
    return "--quota-warn 1 with a rule tagging everything: the warning is not tagged, the mail is"


def test_sigterm(env, personal, virtual):
    server = env.start("sigterm")
    busy = server.raw()
    busy.send(b"LHLO x\r\nMAIL FROM:<sender@remote.example>\r\nRCPT TO:<t@example.org>\r\n")
    check([r[0] for r in busy.replies(3)] == [250, 250, 250], "transaction before SIGTERM")
    idle = server.raw()
    idle.ask(b"LHLO x\r\n", 250, what="LHLO")
    server.process.send_signal(signal.SIGTERM)
    code, text = idle.reply()
    check(code == 421 and text.startswith("4."), f"idle connection at SIGTERM: {code} {text}")
    check(idle.closed_by_server(), "the idle connection was not closed")
    idle.close()
    time.sleep(0.3)
    try:
        Raw(server.socket)
        refused = False
    except (OSError, Failure):
        refused = True
    check(refused, "a new connection was served after SIGTERM")
    check(server.process.poll() is None, "the server exited with a transaction in flight")
    busy.ask(b"DATA\r\n", 354, what="DATA after SIGTERM")
    busy.ask(message("sigterm@remote.example", "in flight at SIGTERM").encode() + b".\r\n",
             250, "2.0.0", "the transaction in flight")
    code, text = busy.reply()
    check(code == 421, f"after the transaction's reply: {code} {text}")
    busy.close()
    try:
        status = server.process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        raise Failure("the server did not exit within 20 s of SIGTERM")
    check(status == 0, f"exit status after SIGTERM: {status}: {server.errors()}")
    check(env.count("id:sigterm@remote.example") == 1, "the message in flight is not indexed")
    return "SIGTERM: idle connection 421, no new connections, the transaction in flight finishes (250), then exit 0"


def test_quoted_local_part(env, personal, virtual):
    # postfix keeps addresses unquoted and quotes a local part on the wire
    # when it must: `.dot@virt.example` reaches pipe(8) as that, and an LMTP
    # server as `".dot"@virt.example`. Both must name the same mailbox (the
    # pipe mode refuses `.dot`, 64, so LMTP refuses it at RCPT, 550 5.1.1),
    # and the quotes of a needlessly quoted local part are no part of it.
    with virtual.lmtp() as client:
        client.mail(SENDER)
        code, text = client.rcpt('".dot"@virt.example')
        check(code == 550 and decode(text).startswith("5.1.1 "),
              f'RCPT TO:<".dot"@virt.example>: got {code} {decode(text)}, want 550 5.1.1 as for .dot@ in pipe mode')
        client.rset()
        refused = client.sendmail(SENDER, ['"quoted"@virt.example'], message("quoted@remote.example", "quoted", "quoted@virt.example"))
        check(refused == {}, f"refused: {refused}")
    made = sorted(os.listdir(os.path.join(env.dir, "vmail", "virt.example")))
    check('".dot"' not in made, f'a mailbox named ".dot" with its quotes was created: {made}')
    box = env.vmailbox("quoted@virt.example")
    check(os.path.isdir(box) and env.count("id:quoted@remote.example", mailbox=box) == 1,
          f'"quoted"@virt.example is not in the mailbox of quoted@virt.example; mailboxes: {made}')
    return 'RCPT TO:<".dot"@...> 550 5.1.1 as in pipe mode; "quoted"@... delivered to the mailbox quoted'


def test_rules_reread(env, personal, virtual):
    with open(env.rules, "a") as f:
        f.write("+reloaded -- subject:reread\n")
    time.sleep(1.1)   # a later modification time, whatever the file system's resolution
    with personal.lmtp() as client:
        check(client.sendmail(SENDER, ["t@example.org"], message("reread@remote.example", "reread")) == {}, "refused")
    tags = env.notmuch("search", "--output=tags", "id:reread@remote.example").split()
    check("reloaded" in tags, f"a rule added while the server runs was not applied: tags {tags}")
    with open(env.rules, "a") as f:
        f.write("+broken -- header:(((\n")
    time.sleep(1.1)
    with personal.lmtp() as client:
        check(client.sendmail(SENDER, ["t@example.org"], message("broken@remote.example", "broken rules")) == {},
              "a broken rules file cost a message")
    check(env.count("id:broken@remote.example") == 1, "with a broken rules file the message was not indexed")
    with open(env.rules, "w") as f:
        f.write("+fromtest -- from:sender@remote.example\n+shopping folder:shop -- extension:shop\n")
    return "a rule added while the server runs applies to the next message; a broken rules file costs no mail"


def test_null_sender(env, personal, virtual):
    c = personal.raw()
    c.open_data(sender="", what="a bounce's commands")
    c.ask(b"From: MAILER-DAEMON@remote.example\r\nSubject: Undelivered Mail\r\nMessage-ID: <bounce@remote.example>\r\n\r\n"
          b"8-bit \xc3\xa9 and a NUL \x00 kept\r\n.\r\n", 250, "2.0.0", "a bounce (null sender)")
    c.close()
    with open(env.notmuch("search", "--output=files", "id:bounce@remote.example"), "rb") as f:
        stored = f.read()
    check(stored.startswith(b"Return-Path: <>\n"), f"a bounce's Return-Path: {stored[:40]!r}")
    check(stored.endswith(b"\n\n8-bit \xc3\xa9 and a NUL \x00 kept\n"), f"8-bit body: {stored[-40:]!r}")
    return "MAIL FROM:<> (a bounce): delivered with Return-Path: <>; 8-bit bytes and a NUL in the body kept as sent"


def test_garbage(env, personal, virtual):
    import random
    rng = random.Random(2033)
    tokens = [b"LHLO x\r\n", b"MAIL FROM:<a@remote.example>\r\n", b"RCPT TO:<t@example.org>\r\n", b"DATA\r\n",
              b".\r\n", b"\r\n", b"\n", b"\r", b"..", b"RSET\r\n", b"MAIL FROM:<>\r\n", b"\x00", b"\xff\xfe",
              b"RCPT TO:<" + b"x" * 300 + b"@example.org>\r\n", b"MAIL FROM:<a@b> SIZE=99999999999999999999\r\n",
              b"BDAT 10 LAST\r\n", b"STARTTLS\r\n", b"x" * 5000]
    before = files_under(env.mail)
    for n in range(150):
        c = personal.raw()
        data = b"".join(rng.choice(tokens) if rng.random() < 0.7 else bytes(rng.randrange(256) for _ in range(rng.randrange(1, 40)))
                        for _ in range(rng.randrange(1, 30)))
        try:
            while data:
                cut = rng.randrange(1, len(data) + 1)
                c.send(data[:cut])
                data = data[cut:]
            if n % 2:
                c.sock.shutdown(socket.SHUT_WR)
                c.closed_by_server(5)
        except OSError:
            pass   # the server may close a session of errors early
        c.close()
    time.sleep(0.5)
    check(personal.process.poll() is None, f"the server died: {personal.errors()}")
    with personal.lmtp() as client:
        check(client.noop()[0] == 250, "the server does not answer after the garbage")
    after = files_under(env.mail)
    check(after == before, f"garbage (none of it mail) left files: {sorted(after - before)[:5]}")
    return "150 connections of random commands and bytes in random chunks: the server lives on, stores nothing"


def test_lock_held(env, personal, virtual):
    # `notmuch tag --batch` opens the database for writing before it reads
    # its input: it holds the write lock until its input ends.
    holder = subprocess.Popen(env.prefix() + ["notmuch", "tag", "--batch"], env=env.env(), stdin=subprocess.PIPE,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        flintlock = os.path.join(env.mail, ".notmuch", "xapian", "flintlock")
        time.sleep(0.5)
        if holder.poll() is not None:
            raise Failure(f"notmuch tag --batch exited: {holder.stderr.read()!r}")
        started = time.monotonic()
        with personal.lmtp() as client:
            client.mail(SENDER)
            client.rcpt("t@example.org")
            code, text = client.data(message("locked@remote.example", "while locked"))
        took = time.monotonic() - started
        check(code == 250 and "queued" in decode(text), f"with the lock held: {code} {decode(text)}")
        check(took < 8, f"the reply took {took:.1f} s with --lock-timeout 1")
        stored = [f for f in files_under(env.mail) if f.startswith(("new/", "cur/"))]
        check(any(b"<locked@remote.example>" in open(os.path.join(env.mail, f), "rb").read() for f in stored),
              "250 given, but the message is not in new/ or cur/")
        check(os.path.exists(flintlock), "no flintlock")
    finally:
        holder.stdin.close()
        holder.wait(timeout=30)
    with personal.lmtp() as client:
        check(client.sendmail(SENDER, ["t@example.org"], message("unlocked@remote.example", "after the lock")) == {}, "refused")
    check(wait_until(lambda: env.count("id:locked@remote.example") == 1, 10),
          "the queued message was not indexed by the next delivery")
    tags = env.notmuch("search", "--output=tags", "id:locked@remote.example").split()
    check(tags == ["fromtest", "inbox", "unread"], f"queued message's tags: {tags}")
    return "write lock held by notmuch tag --batch: 250 (queued) within --lock-timeout 1; indexed with its tags once the lock is free"


def test_pace_under_lock(env, personal, virtual):
    """Issue 22, class 5: while another program holds the write lock, only
    the first wait for it lasts the lock timeout; the groups after it are
    queued at once, until the lock is seen free, and the queue is applied
    then without another message to prompt it. The bound is half of what
    waiting the whole timeout for each group would take (each connection's
    messages one after another): a behaviour check, not a benchmark."""
    import threading
    connections, per_connection, lock_timeout = 2, 20, 1
    total = connections * per_connection
    holder = subprocess.Popen(env.prefix() + ["notmuch", "tag", "--batch"], env=env.env(), stdin=subprocess.PIPE,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    results = []
    try:
        flintlock = os.path.join(env.mail, ".notmuch", "xapian", "flintlock")
        time.sleep(0.5)
        if holder.poll() is not None:
            raise Failure(f"notmuch tag --batch exited: {holder.stderr.read()!r}")

        def client(n):
            try:
                with personal.lmtp() as c:
                    for m in range(per_connection):
                        c.mail(SENDER)
                        c.rcpt("t@example.org")
                        code, text = c.data(message(f"pace-{n}-{m}@remote.example", f"paced {n} {m}"))
                        results.append((code, decode(text)))
            except Exception as error:  # reported below as a missing reply
                results.append((0, repr(error)))

        started = time.monotonic()
        threads = [threading.Thread(target=client, args=(n,)) for n in range(connections)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        took = time.monotonic() - started
        bad = [r for r in results if r[0] != 250 or "queued" not in r[1]]
        check(len(results) == total and not bad, f"{len(results)} replies, not '250 … (queued)': {bad[:3]}")
        bound = per_connection * lock_timeout / 2
        check(took < bound, f"{total} replies took {took:.1f} s with the lock held and --lock-timeout {lock_timeout} "
                            f"(each group waited the whole timeout again?); want under {bound:.0f} s")
        check(env.count("subject:paced") == 0, "indexed while another program held the write lock")
        check(os.path.exists(flintlock), "no flintlock")
    finally:
        holder.stdin.close()
        holder.wait(timeout=30)
    check(wait_until(lambda: env.count("subject:paced") == total, 20),
          f"after the lock was let go, {env.count('subject:paced')} of {total} indexed (no message sent since)")
    queue = os.path.join(env.mail, ".notmuch", "notmuch-deliver-queue")
    check(wait_until(lambda: not [n for n in os.listdir(queue) if n.startswith("Q1~") or n.endswith(".record")], 10),
          f"the queue is not empty: {os.listdir(queue)[:3]}")
    tags = set(env.notmuch("search", "--output=tags", "subject:paced").split())
    check(tags == {"fromtest", "inbox", "unread"}, f"queued messages' tags: {sorted(tags)}")
    files = env.notmuch("search", "--output=files", "subject:paced").splitlines()
    check(len(files) == total, f"{len(files)} files for {total} messages")
    return (f"write lock held, --lock-timeout {lock_timeout}: {total} replies '250 (queued)' over {connections} "
            f"connections in {took:.1f} s; all indexed once the lock was let go, the queue empty")


def test_leftovers(env, personal, virtual):
    """A server killed after replying "queued" (the lock was held) leaves a
    record; the next server applies it when it starts, without waiting for
    another message to that mailbox."""
    template = os.path.join(env.dir, "vleft", "%d", "%u")
    first = env.start("left-1", "--mail-root", template, "--lock-timeout", "1")
    with first.lmtp() as client:
        check(client.sendmail(SENDER, ["dora@left.example"], message("left-1@remote.example", "first")) == {}, "refused")
    mailbox = env.vmailbox("dora@left.example", base="vleft")
    # `notmuch tag --batch` holds the mailbox's write lock until its input ends.
    holder = subprocess.Popen(env.prefix() + ["notmuch", "tag", "--batch"], env=env.env(write_view(env, "left.conf", mailbox)),
                              stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        time.sleep(0.5)
        with first.lmtp() as client:
            client.mail(SENDER)
            client.rcpt("dora@left.example")
            code, text = client.data(message("left-2@remote.example", "queued, then killed"))
        check(code == 250 and "queued" in decode(text), f"with the lock held: {code} {decode(text)}")
        first.process.kill()
        first.process.wait(timeout=30)
    finally:
        holder.stdin.close()
        holder.wait(timeout=30)
    check(env.count("id:left-2@remote.example", mailbox=mailbox) == 0, "indexed before any server ran again")
    second = env.start("left-2", "--mail-root", template)
    check(wait_until(lambda: env.count("id:left-2@remote.example", mailbox=mailbox) == 1, 10),
          "the killed server's queued message was not applied when the next one started")
    second.stop()
    return "a server killed after a 'queued' reply: the next server applies the record when it starts"


def write_view(env, name, mailbox):
    """A notmuch config naming a virtual mailbox, readable by the servers' user."""
    path = os.path.join(env.dir, name)
    with open(path, "w") as f:
        f.write(f"[database]\npath={mailbox}\n")
    os.chmod(path, 0o644)
    return path


def test_concurrent_clients(env, personal, virtual):
    import threading
    results = []

    def client(n):
        try:
            with personal.lmtp() as c:
                for m in range(5):
                    c.mail(SENDER)
                    c.rcpt("t@example.org")
                    results.append(c.data(message(f"conc-{n}-{m}@remote.example", f"concurrent {n} {m}"))[0])
        except Exception as error:  # reported below as a missing reply
            results.append(repr(error))

    threads = [threading.Thread(target=client, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    check(results == [250] * 30, f"replies: {[r for r in results if r != 250]} among {len(results)}")
    # A message that arrived during a commit is answered once it is durably
    # queued, and indexed by the next commit, a moment later.
    check(wait_until(lambda: env.count("subject:concurrent") == 30, 10),
          f"indexed: {env.count('subject:concurrent')} of 30")
    files = env.notmuch("search", "--output=files", "subject:concurrent").splitlines()
    check(len(files) == 30, f"{len(files)} files for 30 messages")
    return "6 connections x 5 messages at once: 30 replies 250, 30 messages indexed, one file each"


def test_timeouts(env, personal, virtual):
    server = env.start("timeout", "--timeout", "2")
    before = files_under(env.mail)
    idle = server.raw()
    data = server.raw()
    data.open_data()
    data.send(message("slow@remote.example", "slowloris").encode())
    started = time.monotonic()
    for c, what in ((idle, "idle"), (data, "silent in DATA")):
        code, text = c.reply()
        check(code == 421 and text.startswith("4.4.2 "), f"{what} client: {code} {text}")
        check(c.closed_by_server(), f"{what} client not closed")
        c.close()
    check(time.monotonic() - started < 6, "timed out too late")
    server.stop()
    check(files_under(env.mail) == before, f"files left: {sorted(files_under(env.mail) - before)}")
    check(env.count("id:slow@remote.example") == 0, "the timed-out message is indexed")
    return "--timeout 2: an idle client and one silent in DATA get 421 4.4.2 and are closed; nothing stored"


def test_root_refused(env, personal, virtual):
    if not env.root_user:
        return None
    result = subprocess.run([env.binary, "lmtp", "--stdio"], stdin=subprocess.DEVNULL, capture_output=True,
                            env=env.env(), timeout=30)
    check(result.returncode == 64, f"as root: exit {result.returncode}, want 64: {result.stderr!r}")
    check(b"root" in result.stderr, f"as root, no reason given: {result.stderr!r}")
    return "run as root: refused, exit 64"


def memory_of(server):
    """(VmRSS, VmHWM) of a server process, in MiB."""
    with open(f"/proc/{server.process.pid}/status") as f:
        fields = dict(line.split(":", 1) for line in f.read().splitlines() if ":" in line)
    return int(fields["VmRSS"].split()[0]) // 1024, int(fields["VmHWM"].split()[0]) // 1024


# What Docs/setup-lmtp.md promises: at the defaults, the server stays below
# this whatever senders do; and returns near its resting size after.
MEMORY_BOUND_MIB = 400
RESTING_SLACK_MIB = 64


def header_flood(msgid, lines):
    """A message whose header block has `lines` lines in all."""
    head = f"From: <{SENDER}>\r\nTo: <t@example.org>\r\nSubject: flood\r\nMessage-ID: <{msgid}>\r\n"
    return (head + "X-H: v\r\n" * (lines - 4) + "\r\nbody\r\n").encode()


def part_flood(msgid, parts):
    """A multipart message of `parts` empty parts."""
    head = (f"From: <{SENDER}>\r\nTo: <t@example.org>\r\nSubject: parts\r\nMessage-ID: <{msgid}>\r\n"
            "MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n")
    return (head + "--b\r\n\r\n\r\n" * parts + "--b--\r\n").encode()


def test_memory(env, personal, virtual):
    """Issue 22, class 7: header and MIME part floods, one after another
    and several at once, against a server at the defaults. The old server
    took about 1 GB per 10 MB flood and kept it (3.8 GB after four at once)."""
    server = env.start("memory", "--max-message-size", "50M")  # the 10 MB floods of the report
    answers = []
    lock = threading.Lock()

    def send(data, to="t@example.org"):
        client = server.lmtp()
        try:
            client.sendmail(SENDER, [to], data)
            answer = (250, "")
        except smtplib.SMTPRecipientsRefused as error:
            code, text = error.recipients[to]
            answer = (code, decode(text))
        except smtplib.SMTPDataError as error:
            answer = (error.smtp_code, decode(error.smtp_error))
        client.quit()
        with lock:
            answers.append(answer)
        return answer

    send(message("memory-warm@remote.example", "warm up").encode())
    resting, _ = memory_of(server)
    under = header_flood("under@remote.example", 9_990)
    got = send(under)
    check(got[0] == 250, f"a header of 9,990 lines (under the limit): {got}")
    big = header_flood("flood@remote.example", 1_500_000)  # 10 MB of `X-H: v`
    for n in range(6):
        got = send(big)
        check(got[0] == 552 and got[1].startswith("5.3.4 "), f"flood {n}: expected 552 5.3.4, got {got}")
    got = send(header_flood("over@remote.example", 10_001))
    check(got[0] == 552 and "10000 lines" in got[1], f"a header of 10,001 lines: {got}")
    got = send(part_flood("parts@remote.example", 60_000))
    check(got[0] == 552 and "'--'" in got[1], f"60,000 MIME parts: {got}")
    embedded = (f"From: <{SENDER}>\r\nTo: <t@example.org>\r\nSubject: embedded\r\nMessage-ID: <embedded@remote.example>\r\n"
                "MIME-Version: 1.0\r\nContent-Type: message/rfc822\r\n\r\n").encode() + big
    got = send(embedded)
    check(got[0] == 552 and got[1].startswith("5.3.4 "), f"a flood in an embedded message: {got}")
    # Under every limit: 19,000 parts of 3 header-free lines (GMime's
    # costliest kind, about 40 MB), gated and trimmed after.
    got = send(part_flood("parts-under@remote.example", 19_000))
    check(got[0] == 250, f"19,000 MIME parts (under the limits): {got}")
    # Four floods and four messages just under the limit at once.
    answers.clear()
    threads = [threading.Thread(target=send, args=(big,)) for _ in range(4)]
    threads += [threading.Thread(target=send, args=(header_flood(f"under-{n}@remote.example", 9_990),))
                for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    check(sorted(code for code, _ in answers) == [250] * 4 + [552] * 4, f"four floods and four under at once: {answers}")
    check(env.count("id:under@remote.example or id:parts-under@remote.example") == 2,
          "the messages under the limits were indexed")
    check(env.count("id:flood@remote.example or id:over@remote.example or id:parts@remote.example "
                    "or id:embedded@remote.example") == 0,
          "a refused flood was indexed")
    # Memory: the highest point stays under the bound, and the server gives
    # back what it took once its commits are done.
    settled = wait_until(lambda: memory_of(server)[0] <= resting + RESTING_SLACK_MIB, seconds=20)
    rss, hwm = memory_of(server)
    check(hwm <= MEMORY_BOUND_MIB, f"the server's memory reached {hwm} MiB (bound {MEMORY_BOUND_MIB})")
    check(settled, f"resident {rss} MiB after the series, resting {resting} MiB")
    server.stop()
    return f"floods refused with 552 5.3.4; resident {resting} MiB at rest, {hwm} MiB at most, {rss} MiB after"


def test_no_new_mail(env, personal, virtual):
    new = env.notmuch("new")
    check(new == "No new mail.", f"notmuch new after all the deliveries: {new!r}")
    return "notmuch new after all the personal deliveries: No new mail."


TESTS = [test_one_recipient, test_stdio, test_mixed_outcomes, test_repeated_recipient, test_rset, test_pipelining,
         test_dot_stuffing_and_bare_lf, test_smuggling, test_utf8_addresses, test_bad_commands,
         test_disconnect_mid_data, test_not_mail, test_too_big,
         test_max_recipients, test_extension, test_shared_file_filed, test_max_connections, test_quota, test_quota_warning,
         test_quoted_local_part,
         test_rules_reread, test_null_sender, test_garbage, test_leftovers, test_stuck_mailbox,
         test_start_removes_leftovers,
         test_lock_held, test_pace_under_lock, test_concurrent_clients, test_timeouts, test_sigterm, test_root_refused,
         test_memory, test_no_new_mail]


def main():
    if len(sys.argv) < 2:
        print("usage: lmtp.py PATH/TO/notmuch-deliver [TEST-NAME...]", file=sys.stderr)
        return 2
    binary = sys.argv[1]
    wanted = sys.argv[2:]
    if not os.access(binary, os.X_OK):
        print(f"FAIL: {binary} is not an executable")
        return 1
    if shutil.which("notmuch") is None:
        skip("LMTP tests (the notmuch command is not installed: make deps)")
    if os.geteuid() == 0 and shutil.which("setpriv") is None:
        skip("LMTP tests (run as root, they need setpriv to start the server as nobody)")
    env = Environment(binary)
    failed = []
    try:
        personal = env.start("personal", "--max-message-size", "64K", "--max-recipients", "5",
                             "--lock-timeout", "1")
        virtual = env.start("virtual", "--mail-root", os.path.join(env.dir, "vmail", "%d", "%u"))
        for test in TESTS:
            name = test.__name__[len("test_"):]
            if wanted and name not in wanted:
                continue
            try:
                what = test(env, personal, virtual)
                if what is None:
                    print(f"not run: {name} (needs root)")
                else:
                    print(f"ok: {name}: {what}")
            except (Failure, smtplib.SMTPException, OSError, subprocess.SubprocessError) as error:
                print(f"FAIL: {name}: {type(error).__name__ + ': ' if not isinstance(error, Failure) else ''}{error}")
                failed.append(name)
    except Failure as error:
        print(f"FAIL: setting up: {error}")
        failed.append("setup")
    finally:
        env.stop_all()
        for server in env.servers:
            bad = [l for l in server.log_lines() if "fatal" in l.lower() or "crash" in l.lower()]
            if bad:
                print(f"FAIL: server {os.path.basename(server.socket)} logged: {bad}")
                failed.append("log")
        if failed and os.environ.get("KEEP_LMTP_TEST"):
            print(f"kept: {env.dir}")
        else:
            shutil.rmtree(env.dir, ignore_errors=True)
    if failed:
        print(f"LMTP tests: FAILED: {' '.join(failed)} (KEEP_LMTP_TEST=1 keeps the scratch directory)")
        return 1
    print("LMTP tests: all passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
