#!/usr/bin/env python3
"""Prove the order: every `250` the LMTP server sends comes after the syncs
that make its message durable (issue 24).

The server runs under `strace -f` (syncs, links, renames and socket
writes, with the paths of descriptors) through a small burst of concurrent
clients, some of it while another program holds the write lock (so that
replies say "queued" as well as "indexed"). For each message, found on
disk afterwards by its Message-ID, the trace must show, each finished
before the reply's write began:

  1. an fsync or fdatasync of the message file (its tmp/ name, or new/);
  2. its link into new/, then an fsync of new/;
  3. for "Saved (queued)": its queue entry linked, then an fsync of the
     queue directory; for "Saved (indexed)": its queue entry linked, then
     Xapian's commit (an fdatasync of a table and the rename that makes
     the new revision current).

    python3 Tests/Integration/lmtp_order.py PATH/TO/notmuch-deliver

Exit status: 0 passed, 1 failed, 77 cannot run here (no strace; as root
without setpriv), the reason printed after "SKIPPED:".
"""

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lmtp  # noqa: E402  (its scratch environment and helpers)

CONNECTIONS = 4
PER_CONNECTION = 12
TRACED = "fsync,fdatasync,rename,renameat,renameat2,link,linkat,write,sendmsg,writev"


class Call:
    """One system call of the trace: where it started and finished (line
    numbers of the merged trace), its name, its text and its result."""

    def __init__(self, start, name, text):
        self.start, self.end, self.name, self.text, self.result = start, None, name, text, None


def parse_trace(path):
    """The calls, with strace's `<unfinished ...>` and `<... resumed>`
    halves joined (each thread has at most one call in flight)."""
    calls, open_calls = [], {}
    line_re = re.compile(r"^(\d+)\s+(.*)$")
    for number, raw in enumerate(open(path, encoding="utf-8", errors="replace")):
        m = line_re.match(raw.rstrip("\n"))
        if not m:
            continue
        pid, rest = m.group(1), m.group(2)
        resumed = re.match(r"^<\.\.\. (\w+) resumed>(.*)$", rest)
        if resumed:
            call = open_calls.pop(pid, None)
            if call is not None:
                call.text += resumed.group(2)
                call.end = number
                call.result = rest.rsplit("=", 1)[-1].strip() if "=" in rest else None
            continue
        started = re.match(r"^(\w+)\((.*)$", rest)
        if not started:
            continue
        call = Call(number, started.group(1), started.group(2))
        calls.append(call)
        if rest.endswith("<unfinished ...>"):
            call.text = call.text[: -len("<unfinished ...>")]
            open_calls[pid] = call
        else:
            call.end = number
            call.result = rest.rsplit("=", 1)[-1].strip()
    return [c for c in calls if c.end is not None]


def fd_path(text):
    """The path strace -y shows for the first argument (a descriptor)."""
    m = re.match(r"^\d+<([^>]*)>", text)
    return m.group(1) if m else None


def link_paths(call):
    """(source, destination) of a link/linkat/rename*, made absolute from
    the directory descriptors strace -y shows."""
    args = call.text
    if call.name in ("link", "rename"):
        m = re.match(r'^"([^"]*)", "([^"]*)"', args)
        return (m.group(1), m.group(2)) if m else (None, None)
    m = re.match(r'^(\w+|\d+<[^>]*>), "([^"]*)", (\w+|\d+<[^>]*>), "([^"]*)"', args)
    if not m:
        return None, None

    def absolute(dirfd, name):
        if name.startswith("/"):
            return name
        directory = fd_path(dirfd) if dirfd[0].isdigit() else os.getcwd()
        return os.path.join(directory or "", name)
    return absolute(m.group(1), m.group(2)), absolute(m.group(3), m.group(4))


def peer_inode(text):
    """The peer's inode in `N<UNIX-STREAM:[LOCAL->PEER,"path"]>`."""
    m = re.match(r"^\d+<UNIX-STREAM:\[\d+->(\d+)", text)
    return int(m.group(1)) if m else None


def message(msgid, n):
    return (f"From: Sender <{lmtp.SENDER}>\r\nTo: <t@example.org>\r\nSubject: order {n}\r\n"
            f"Message-ID: <{msgid}>\r\n\r\nMessage {n} of the ordered burst.\r\n")


def run_burst(sock_path, tag, replies):
    """CONNECTIONS clients at once, PER_CONNECTION messages each, one
    transaction at a time; `replies` gets (client socket inode, index on
    that connection, Message-ID, reply text)."""
    def client(c):
        raw = lmtp.Raw(sock_path)
        inode = os.fstat(raw.sock.fileno()).st_ino
        raw.send(b"LHLO order.test\r\n")
        raw.reply()
        for k in range(PER_CONNECTION):
            msgid = f"{tag}-{c}-{k}@order.test"
            raw.send(f"MAIL FROM:<{lmtp.SENDER}>\r\nRCPT TO:<t@example.org>\r\nDATA\r\n".encode())
            for _ in range(3):
                raw.reply()
            raw.send(message(msgid, f"{c}.{k}").encode() + b".\r\n")
            code, text = raw.reply()
            replies.append((inode, k, msgid, f"{code} {text}"))
        raw.send(b"QUIT\r\n")
        raw.close()
    threads = [threading.Thread(target=client, args=(c,)) for c in range(CONNECTIONS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)


def main():
    if len(sys.argv) != 2:
        print("usage: lmtp_order.py PATH/TO/notmuch-deliver", file=sys.stderr)
        return 2
    binary = os.path.abspath(sys.argv[1])
    if shutil.which("strace") is None:
        lmtp.skip("the order of syncs and replies (strace is not installed: apt-get install strace)")
    if shutil.which("notmuch") is None:
        lmtp.skip("the order of syncs and replies (the notmuch command is not installed: make deps)")
    if os.geteuid() == 0 and shutil.which("setpriv") is None:
        lmtp.skip("the order of syncs and replies (as root, setpriv is needed to run the server as nobody)")
    env = lmtp.Environment(binary)
    trace = os.path.join(env.dir, "trace")
    sock_path = os.path.join(env.dir, "order.sock")
    failures = []
    server = None
    try:
        argv = ["strace", "-f", "-qq", "-yy", "-s", "200", "-e", f"trace={TRACED}", "-o", trace] + env.prefix() + [
            binary, "lmtp", "--listen", f"unix:{sock_path}", "--log", os.path.join(env.dir, "order.log"),
            "--lock-timeout", "1"]
        server = subprocess.Popen(argv, env=env.env(), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL)
        if not lmtp.wait_until(lambda: os.path.exists(sock_path), 30):
            raise lmtp.Failure("the traced server did not start listening")
        replies = []
        run_burst(sock_path, "free", replies)
        # The same with the write lock held by another program: the
        # replies say queued once the first wait has run out.
        holder = subprocess.Popen(env.prefix() + ["notmuch", "tag", "--batch"], env=env.env(),
                                  stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            time.sleep(0.5)
            run_burst(sock_path, "locked", replies)
        finally:
            holder.stdin.close()
            holder.wait(timeout=30)
        lmtp.check(lmtp.wait_until(lambda: env.count("subject:order") == 2 * CONNECTIONS * PER_CONNECTION, 20),
                   "not every message was indexed once the lock was free")
        # To the server, not to strace: setpriv exec'd it as strace's child.
        with open(f"/proc/{server.pid}/task/{server.pid}/children") as f:
            for child in f.read().split():
                os.kill(int(child), signal.SIGTERM)
        server.wait(timeout=60)
        failures = check_order(env, trace, replies)
    except lmtp.Failure as error:
        failures.append(str(error))
    finally:
        if server and server.poll() is None:
            server.kill()
            server.wait()
        if failures and os.environ.get("KEEP_LMTP_TEST"):
            print(f"kept: {env.dir}")
        else:
            shutil.rmtree(env.dir, ignore_errors=True)
    if failures:
        for failure in failures[:10]:
            print(f"FAIL: {failure}")
        print(f"order of syncs and replies: FAILED ({len(failures)} problems; KEEP_LMTP_TEST=1 keeps the trace)")
        return 1
    return 0


def check_order(env, trace, replies):
    total = 2 * CONNECTIONS * PER_CONNECTION
    lmtp.check(len(replies) == total, f"{len(replies)} replies of {total}")
    bad = [r for r in replies if not r[3].startswith("250 2.0.0 ")]
    lmtp.check(not bad, f"replies other than 250: {bad[:3]}")
    calls = parse_trace(trace)
    mail = os.path.realpath(env.mail)
    new_dir = os.path.join(mail, "new")
    queue_dir = os.path.join(mail, ".notmuch", "notmuch-deliver-queue")
    xapian = os.path.join(mail, ".notmuch", "xapian")

    # Each message's name in new/ (a reader may have moved it to cur/ since).
    name_of = {}
    for sub in ("new", "cur"):
        for name in os.listdir(os.path.join(mail, sub)):
            with open(os.path.join(mail, sub, name), "rb") as f:
                m = re.search(rb"^Message-ID: <([^>]*)>", f.read(), re.M | re.I)
            if m:
                name_of[m.group(1).decode()] = name.split(":2,")[0]

    # The 250 replies after DATA, per connection in order.
    reply_writes = {}
    for call in calls:
        if call.name in ("write", "writev", "sendmsg") and "250 2.0.0 <" in call.text and "Saved" in call.text:
            peer = peer_inode(call.text)
            if peer is not None:
                reply_writes.setdefault(peer, []).append(call)

    syncs = [c for c in calls if c.name in ("fsync", "fdatasync") and c.result == "0"]
    links = [(c, *link_paths(c)) for c in calls if c.name in ("link", "linkat", "rename", "renameat", "renameat2")
             and c.result == "0"]
    problems = []
    for inode, k, msgid, text in replies:
        writes = reply_writes.get(inode, [])
        if k >= len(writes):
            problems.append(f"{msgid}: its reply is not in the trace")
            continue
        reply = writes[k]
        before = reply.start
        name = name_of.get(msgid)
        if name is None:
            problems.append(f"{msgid}: no file in new/ or cur/ holds it")
            continue
        into_new = [(c, src) for c, src, dst in links if dst == os.path.join(new_dir, name) and c.end < before]
        if not into_new:
            problems.append(f"{msgid}: replied before its link into new/{name}")
            continue
        linked, source = into_new[0]
        if not any(s.end < before and fd_path(s.text) in (source, os.path.join(new_dir, name)) for s in syncs):
            problems.append(f"{msgid}: replied before its file's data was synced ({source})")
        if not any(linked.end < s.start and s.end < before and fd_path(s.text) == new_dir for s in syncs):
            problems.append(f"{msgid}: replied before new/ was synced after its link")
        entries = [c for c, src, dst in links if c.end < before and os.path.dirname(dst) == queue_dir
                   and src in (source, os.path.join(new_dir, name))]
        if not entries:
            problems.append(f"{msgid}: replied ({text}) before its queue entry was made")
            continue
        entry = entries[-1]
        if "(queued)" in text:
            if not any(entry.end < s.start and s.end < before and fd_path(s.text) == queue_dir for s in syncs):
                problems.append(f"{msgid}: replied queued before the queue directory was synced after its entry")
        else:
            committed = [c for c, src, dst in links if dst == os.path.join(xapian, "iamglass")
                         and entry.end < c.start and c.end < before]
            synced = [s for s in syncs if entry.end < s.start and s.end < before
                      and (fd_path(s.text) or "").startswith(xapian + "/")]
            if not committed or not synced:
                problems.append(f"{msgid}: replied '{text}' before a Xapian commit after its queue entry")
    queued = sum("(queued)" in r[3] for r in replies)
    if not problems:
        print(f"ok: order: {total} replies over {CONNECTIONS} connections ({queued} queued, {total - queued} "
              f"indexed), each after its file, new/ and queue entry or commit were synced ({len(syncs)} syncs traced)")
    return problems


if __name__ == "__main__":
    sys.exit(main())
