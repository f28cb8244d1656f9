#!/usr/bin/env python3
"""make stress: try hard to lose mail.

Parallel deliverers push messages through notmuch-deliver while a
`notmuch new` loop and a tagging client fight for the write lock, and a
share of the deliveries are killed with SIGKILL at random instants. Like an
MTA, a deliverer retries a message until one delivery exits 0. Then one
flush, and a message-by-message check:
  lost        exited 0 at least once, but not in the maildir or not indexed (must be 0)
  duplicated  more than one file for one message
  wrong tags  indexed with tags other than new.tags + rules + command line
  stuck       queue records left, or set aside, after the final flush
Hostile messages are mixed in: a List-Id whose captures make a tag longer
than libnotmuch takes, input that is not mail to libnotmuch (it must get 65,
never 0, and leave no file; only a killed delivery may leave one, in tmp/,
which the final flush removes), a Subject whose encoded words decode to a
forged log line, a header that makes a rule's regex backtrack
catastrophically, a header whose capture is a list of tag operations (it
must become one tag), a header whose capture names a reserved folder
(.notmuch, tmp, new, cur, an absolute or a `..` path: the message must land
in the default folder), header floods under and over the header limit (over
it: refused like not-mail), and a body that smuggles an SMTP transaction
after a bare-LF dot (one message, never two; over LMTP it is sent raw, bare
LFs and all). A lock holder keeps the database busy part of the time.
With --lmtp the same messages go through `notmuch-deliver lmtp` instead
(see lmtp_main below). With --watch, no deliveries: watch.py's seeded
sync-tool generator runs against `notmuch-deliver watch`, which is
SIGKILLed at random instants and restarted (see watch_main below).
Exit status 1 when any figure printed with "must be" is not what it must be:
anything lost, duplicated, wrongly tagged or stuck, a delivery failing in
another way than 75, more or fewer files than messages delivered, any
file in tmp/ after the final flush (which removes what killed deliveries
left), or `notmuch new` finding something
afterwards. With --quota the mailbox fills up: a message deferred as "is
full" is not retried, and maildirsize must agree with a recount (higher by
at most the killed deliveries, which may die between reserving their line
and storing their file; never lower).
"""
import argparse
import json
import base64
import fcntl
import os
import re
import struct
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time

RULES = ("+even -- header:X-Parity~/^even$/\n+ruled -- from:stress.example\n"
         "+list/$1/$2/$3/$4 -- header:List-Id~/^(\\S+) (\\S+) (\\S+) (\\S+)/\n"
         "+slow -- header:X-Slow~/^(a+)+$/\n"
         "+op/$1 -- header:X-Op~/^(.*)$/\n"
         "folder:$1 -- header:X-Folder~/^(.*)$/\n")
# What a message's header tries to do to its tags, and where it tries to file it.
TAG_OPERATIONS = "x -inbox -unread +spam +deleted"
RESERVED_FOLDERS = [".notmuch", "tmp", "new", "cur", ".notmuch/xapian", "../escape", "/abs", "a/tmp/b"]
SMUGGLER = "ceo@bank.example"
CLIENT_TAG = "client-touch"
FORGED = "forged@stress.example"


def kind(i):
    """Which hostile shape message i takes, if any."""
    return {3: "long-tag", 5: "not-mail", 7: "forged-log", 9: "slow-regex", 13: "tag-op", 15: "header-flood",
            17: "reserved-folder", 19: "smuggle"}.get(i % 20, "plain")


def refused(i):
    """Whether message i must be refused as a whole (65, or 5xx over LMTP):
    not mail to libnotmuch, or a header block over the limit."""
    return kind(i) == "not-mail" or (kind(i) == "header-flood" and (i // 20) % 2 == 0)


# The first bytes of a message that must never be stored.
REFUSED_MARKERS = (b"Cc: c", b"X-Flood: over")


def smuggled_tail(i):
    """A second transaction after a dot that only bare LFs surround."""
    return (f"text\n.\nMAIL FROM:<{SMUGGLER}>\nRCPT TO:<me+stress@example.org>\nDATA\n"
            f"From: <{SMUGGLER}>\nMessage-ID: <smuggled-{i}@bank.example>\nSubject: pay now\n\nforged\n.\n")


def message(i):
    parity = "even" if i % 2 == 0 else "odd"
    body = "".join(f"line {n} of message {i}\n" for n in range(random.Random(i).randint(1, 200)))
    if kind(i) == "not-mail":
        return f"Cc: c{i}@stress.example\nDate: Mon, 24 Nov 2025 09:00:00 +0000\nMessage-ID: <stress-{i}@example.org>\n\n{body}".encode()
    subject = f"stress {i}"
    extra = ""
    first = ""
    if kind(i) == "header-flood":
        over = refused(i)
        first = "X-Flood: over\n" if over else "X-Flood: under\n"
        extra = "X-H: v\n" * (12_000 if over else 5_000)
    elif kind(i) == "tag-op":
        extra = f"X-Op: {TAG_OPERATIONS}\n"
    elif kind(i) == "reserved-folder":
        extra = f"X-Folder: {RESERVED_FOLDERS[(i // 20) % len(RESERVED_FOLDERS)]}\n"
    elif kind(i) == "smuggle":
        body += smuggled_tail(i)
    if kind(i) == "long-tag":
        extra = "List-Id: " + " ".join(c * 100 for c in "abcd") + f" {i}\n"
    elif kind(i) == "forged-log":
        forged = f"x\n2026-01-01T00:00:00Z notmuch-deliver[1] info: delivered id=<{FORGED}> \x1b[2J"
        subject = "=?UTF-8?B?" + base64.b64encode(forged.encode()).decode() + "?="
    elif kind(i) == "slow-regex":
        extra = "X-Slow: " + "a" * 40 + "b\n"
    return (f"{first}From: Sender {i} <s{i}@stress.example>\nTo: me@example.org\nSubject: {subject}\n"
            f"Message-ID: <stress-{i}@example.org>\nX-Parity: {parity}\n{extra}\n{body}").encode()


def tags_are_right(i, got):
    expected = {"inbox", "unread", "ruled", "stress"} | ({"even"} if i % 2 == 0 else set())
    got = set(got) - {CLIENT_TAG}
    if kind(i) == "long-tag":
        # One list tag, whatever its bounded form, within libnotmuch's 200 bytes.
        lists = {t for t in got if t.startswith("list/")}
        return len(lists) == 1 and all(len(t.encode()) <= 200 for t in lists) and got - lists == expected
    if kind(i) == "tag-op":
        # One tag, whatever the signs and spaces in the header.
        ops = {t for t in got if t.startswith("op/")}
        return len(ops) == 1 and got - ops == expected
    return got == expected


def misfiled(search, delivered, mail):
    """The files of delivered reserved-folder messages that are not in a
    folder a delivery may use: outside the mail root, or with .notmuch,
    tmp, new or cur among the folder's own components (a rule's capture
    may be changed into a harmless name; it must never be used as it is).
    `search(query)` gives a query's files."""
    def bad(path):
        relative = os.path.relpath(os.path.dirname(path), mail).split(os.sep)
        return relative[0] == ".." or relative[-1] not in ("new", "cur") or \
            any(c in (".notmuch", "tmp", "new", "cur", "..") for c in relative[:-1])
    return [f for i in sorted(delivered) if kind(i) == "reserved-folder"
            for f in search(f"id:stress-{i}@example.org") if bad(f)]


def hold_lock_now_and_then(lock_file, stop):
    """Holds the write lock as Xapian does, 3 s in every 8, so deliveries queue."""
    while not stop.is_set():
        fd = os.open(lock_file, os.O_RDWR)
        try:
            fcntl.fcntl(fd, fcntl.F_OFD_SETLKW, struct.pack("hh4xqqi4x", fcntl.F_WRLCK, 0, 0, 0, 0))
            stop.wait(3)
        finally:
            os.close(fd)
        stop.wait(5)


def scratch_mailbox(prefix, rules_text, quota=None):
    """A new scratch tree for one run: a maildir, a rules file with
    rules_text, a notmuch config that names both (and deliver.quota when
    given), and the environment that points notmuch and notmuch-deliver
    at it. Returns (root, mail, env)."""
    root = tempfile.mkdtemp(prefix=prefix)
    mail = os.path.join(root, "mail")
    config = os.path.join(root, "config")
    rules = os.path.join(root, "rules")
    os.makedirs(mail)
    with open(rules, "w") as f:
        f.write(rules_text)
    with open(config, "w") as f:
        f.write(f"[database]\npath={mail}\n[new]\ntags=unread;inbox;\n[maildir]\nsynchronize_flags=true\n"
                f"[deliver]\nrules={rules}\nlock_timeout=2\n" + (f"quota={quota}\n" if quota else ""))
    return root, mail, dict(os.environ, NOTMUCH_CONFIG=config, HOME=root)


def run_workers(worker, count):
    """worker(0) .. worker(count - 1), each on its own thread, until all end."""
    threads = [threading.Thread(target=worker, args=(w,)) for w in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def remove_unless_kept(root, keep):
    """--keep leaves the scratch tree for inspection; otherwise it goes."""
    if keep:
        print(f"kept: {root}")
    else:
        shutil.rmtree(root, ignore_errors=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--deliver", default=".build/release/notmuch-deliver")
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--messages", type=int, default=2000, help="per worker")
    parser.add_argument("--kill-share", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--quota", help="deliver.quota for the mailbox (e.g. 2M): refusals must all be 75, "
                        "and maildirsize must agree with a recount")
    parser.add_argument("--keep", action="store_true", help="keep the maildir and database for inspection")
    parser.add_argument("--lmtp", action="store_true", help="deliver through the LMTP server, killed and restarted")
    parser.add_argument("--kill-every", type=float, default=2.0,
                        help="--lmtp, --watch: mean seconds between SIGKILLs of the server or watcher (0: never)")
    parser.add_argument("--watch", action="store_true",
                        help="a sync tool's file operations under `notmuch-deliver watch`, SIGKILLed and restarted")
    parser.add_argument("--operations", type=int, default=6000, help="--watch: the generator's operations")
    args = parser.parse_args()
    if args.lmtp:
        return lmtp_main(args)
    if args.watch:
        return watch_main(args)
    deliver = os.path.abspath(args.deliver)
    random.seed(args.seed)

    root, mail, env = scratch_mailbox("nd-stress-", RULES, args.quota)
    subprocess.run(["notmuch", "new", "--quiet"], env=env, check=True)

    stop = threading.Event()
    counters = {"over-quota": 0, "kills": 0, "killed-not-mail": 0, "tempfails": 0, "other": 0, "deliveries": 0, "refused": 0,
                "accepted-not-mail": 0}
    lock = threading.Lock()
    delivered = set()

    def background(command, pause):
        while not stop.is_set():
            subprocess.run(command, env=env, capture_output=True)
            time.sleep(pause)

    loops = [threading.Thread(target=background, args=(["notmuch", "new", "--quiet"], 0.2)),
             threading.Thread(target=background,
                              args=(["notmuch", "tag", f"+{CLIENT_TAG}", "--", "tag:inbox"], 0.1)),
             threading.Thread(target=hold_lock_now_and_then,
                              args=(os.path.join(mail, ".notmuch", "xapian", "flintlock"), stop))]
    for loop in loops:
        loop.start()

    def worker(w):
        rng = random.Random(args.seed * 1000 + w)
        for n in range(args.messages):
            i = w * args.messages + n
            data = message(i)
            while True:
                process = subprocess.Popen([deliver, "+stress", "--log", os.path.join(root, "deliver.log")], env=env, stdin=subprocess.PIPE,
                                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
                killed = False
                if rng.random() < args.kill_share:
                    timer = threading.Timer(rng.uniform(0, 0.06), lambda p=process: p.send_signal(signal.SIGKILL))
                    timer.start()
                    _, err = process.communicate(data)
                    timer.cancel()
                    killed = process.returncode == -signal.SIGKILL
                else:
                    _, err = process.communicate(data)
                # A full mailbox: deferred as it must be, and not retried
                # here (it would stay full for ever).
                full = process.returncode == 75 and b" is full: " in err
                with lock:
                    counters["deliveries"] += 1
                    if killed:
                        counters["kills"] += 1
                        counters["killed-not-mail"] += refused(i)
                    elif full:
                        counters["over-quota"] += 1
                    elif process.returncode == 75:
                        counters["tempfails"] += 1
                    elif process.returncode == 65 and refused(i):
                        counters["refused"] += 1
                    elif process.returncode != 0:
                        counters["other"] += 1
                if process.returncode == 0:
                    with lock:
                        if refused(i):
                            counters["accepted-not-mail"] += 1
                        else:
                            delivered.add(i)
                    break
                if full or (not killed and process.returncode not in (75,)):
                    break

    started = time.monotonic()
    run_workers(worker, args.workers)
    stop.set()
    for loop in loops:
        loop.join()
    elapsed = time.monotonic() - started
    subprocess.run([deliver, "flush"], env=env, check=True)

    # What notmuch has, message by message.
    out = subprocess.run(["notmuch", "search", "--output=messages", "--format=text", "from:stress.example"],
                         env=env, capture_output=True, text=True).stdout.split()
    indexed = {int(m.split("stress-")[1].split("@")[0]) for m in out}
    files = subprocess.run(["notmuch", "search", "--output=files", "--duplicate=2", "from:stress.example"],
                           env=env, capture_output=True, text=True).stdout.split()
    duplicated = len(files)
    lost, wrong = [], []
    for i in sorted(delivered):
        if i not in indexed:
            lost.append(i)
    for i in sorted(indexed):
        got = subprocess.run(["notmuch", "search", "--output=tags", f"id:stress-{i}@example.org"], env=env,
                             capture_output=True, text=True).stdout.split()
        if not tags_are_right(i, got):
            wrong.append(i)
    # maildirsize (with --quota) is the mailbox's, not a message.
    on_disk = sum(len([f for f in fs if f != "maildirsize"]) for d, _, fs in os.walk(mail)
                  if "/.notmuch" not in d and not d.endswith("/tmp"))
    new = subprocess.run(["notmuch", "new"], env=env, capture_output=True, text=True).stdout.strip().splitlines()
    queue = os.path.join(mail, ".notmuch", "notmuch-deliver-queue")
    stuck = [n for d in (queue, os.path.join(queue, "set-aside")) if os.path.isdir(d) for n in os.listdir(d)
             if n.startswith("Q1~") or n.endswith(".record")]
    # Every record of the log is one line of its own: no line a Subject forged.
    with open(os.path.join(root, "deliver.log"), errors="replace") as log:
        record = r"^\d{4}-\d\d-\d\dT\S+Z notmuch-deliver\[\d+\] \w+: "
        forged = [line for line in log if not re.match(record, line) or re.match(record + f"delivered id=<{FORGED}>", line)
                  or line.startswith("2026-01-01T00:00:00Z")]
    # A delivery killed while writing leaves its file in tmp/: at most one
    # file for each kill, and nothing else may be there.
    in_tmp = [os.path.join(d, f) for d, _, fs in os.walk(mail) if "/.notmuch" not in d and d.endswith("/tmp")
              for f in fs]
    not_mail_files = sum(1 for d, _, fs in os.walk(mail) if "/.notmuch" not in d and not d.endswith("/tmp")
                         for f in fs if open(os.path.join(d, f), "rb").read(64).startswith(REFUSED_MARKERS))
    not_mail_in_tmp = sum(1 for path in in_tmp if open(path, "rb").read(64).startswith(REFUSED_MARKERS))
    misfiled_files = misfiled(lambda q: subprocess.run(["notmuch", "search", "--output=files", q], env=env,
                                                       capture_output=True, text=True).stdout.split(), delivered, mail)
    smuggled = int(subprocess.run(["notmuch", "count", f"from:{SMUGGLER}"], env=env, capture_output=True,
                                  text=True).stdout.strip() or 0)

    # What maildirsize says, against a recount: a delivery killed between
    # its reservation and its link leaves the file one message high. It can
    # also be low, by the deliveries admitted but not yet linked into new/
    # when a recount ran (the Maildir++ convention's own gap: the recount
    # sees new/ and cur/ only); the next recount corrects it, so at the end
    # it is low by at most the deliveries in flight at the last one.
    quota_file = os.path.join(mail, "maildirsize")
    quota_lines = []
    if args.quota and os.path.exists(quota_file):
        with open(quota_file) as f:
            quota_lines = f.read().splitlines()[1:]
    said = sum(int(line.split()[1]) for line in quota_lines)
    recount = json.loads(subprocess.run([deliver, "quota", "--json", "--recalculate"], env=env, capture_output=True,
                                        text=True).stdout or "{}").get("messages", 0) if args.quota else 0

    # Every figure that has a "must be" is printed through here, and so
    # counts in the exit status; the others are only informative.
    failures = []

    def must(name, value, expected, at_most=False):
        if (value > expected) if at_most else (value != expected):
            failures.append(name)
        shown = (repr(value), repr(expected)) if isinstance(value, str) else (value, expected)
        return f"{name} {shown[0]} (must be {'at most ' if at_most else ''}{shown[1]})"

    print(f"messages {len(delivered)} of {args.workers * args.messages}, deliveries {counters['deliveries']}, "
          f"kills {counters['kills']}, tempfails {counters['tempfails']}, "
          f"{must('other failures', counters['other'], 0)}, {elapsed:.1f} s")
    print(f"{must('lost', len(lost), 0)}, {must('duplicated', duplicated, 0)}, {must('wrong tags', len(wrong), 0)}, "
          f"{must('stuck records', len(stuck), 0)}, {must('files', on_disk, len(delivered))}, "
          f"{must('files in tmp/ after the flush', len(in_tmp), 0)}, "
          f"{must('notmuch new afterwards', new[-1] if new else '?', 'No new mail.')}")
    print(f"hostile: not-mail and header floods refused {counters['refused']} times, "
          f"{must('accepted', counters['accepted-not-mail'], 0)}, {must('left in the maildir', not_mail_files, 0)}, "
          f"{must('in tmp/', not_mail_in_tmp, counters['killed-not-mail'], at_most=True)}; "
          f"{must('forged log lines', len(forged), 0)}; "
          f"{must('reserved folders used', len(misfiled_files), 0)}, {must('smuggled messages', smuggled, 0)}")
    if args.quota:
        print(f"quota {args.quota}: refused {counters['over-quota']} times (all 75), maildirsize said {said}, "
              f"{must('recount', recount, len(delivered) + counters['accepted-not-mail'])}, "
              f"{must('too high by', said - recount, counters['kills'], at_most=True)}, "
              f"{must('too low by', recount - said, args.workers - 1, at_most=True)}")
    if failures:
        print(f"FAILED: {', '.join(failures)}")
    if lost:
        print(f"lost: {lost[:20]}")
    for i in wrong[:5]:
        got = subprocess.run(["notmuch", "search", "--output=tags", f"id:stress-{i}@example.org"], env=env,
                             capture_output=True, text=True).stdout.split()
        print(f"wrong tags: message {i} ({kind(i)}): {sorted(got)}")
    remove_unless_kept(root, args.keep)
    sys.exit(1 if failures else 0)


# --- LMTP mode -------------------------------------------------------------
#
# The same messages through `notmuch-deliver lmtp`, from --workers
# concurrent clients (Python's smtplib.LMTP, one connection each, kept open
# as postfix caches its connections), one to three recipients per
# transaction (sometimes the same one twice). The server is SIGKILLed at
# random instants and restarted; a client whose connection breaks
# reconnects and sends again, as postfix would, every recipient that had no
# final reply (250 or 5xx). A user's `notmuch tag` loop runs all along, each
# call timed: the server must never keep the write lock longer than a
# commit. Then the server is stopped with SIGTERM (it must exit 0), one
# `notmuch-deliver flush`, and the same message-by-message check as the
# CLI mode's, over the messages that got a 250.

LMTP_RULES = RULES + "+stress -- extension:stress\n"
LMTP_RECIPIENTS = ["me+stress@example.org", "you+stress@example.org"]


def raw_data(client, i, data):
    """DATA with the message's bytes as they are: CRLF line ends, but the
    smuggled tail's bare LFs, which smtplib's data() would make CRLFs.
    Returns the first final reply."""
    import smtplib
    tail = smuggled_tail(i).encode()
    code, text = client.docmd("DATA")
    if code != 354:
        raise smtplib.SMTPDataError(code, text)
    client.send(data[:-len(tail)].replace(b"\n", b"\r\n") + tail + b"\r\n.\r\n")
    return client.getreply()


def lmtp_recipients(rng):
    roll = rng.random()
    if roll < 0.7:
        return [rng.choice(LMTP_RECIPIENTS)]
    if roll < 0.9:
        return list(LMTP_RECIPIENTS)
    return [LMTP_RECIPIENTS[0], LMTP_RECIPIENTS[0]]   # a repeated recipient


def lmtp_main(args):
    import smtplib
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "Bench"))
    from lmtp_harness import Server, as_user, give_away, user_name

    deliver = os.path.abspath(args.deliver)
    random.seed(args.seed)
    root, mail, env = scratch_mailbox("nd-stress-lmtp-", LMTP_RULES)
    os.chmod(root, 0o755)
    log_file = os.path.join(root, "deliver.log")
    give_away(root)
    user = as_user()

    def run(command, **kwargs):
        return subprocess.run(user + command, env=env, capture_output=True, text=True, **kwargs)

    run(["notmuch", "new", "--quiet"], check=True)
    # One `notmuch tag` with nothing else running: what a commit of its own costs.
    alone = []
    for _ in range(5):
        started = time.monotonic()
        run(["notmuch", "tag", f"+{CLIENT_TAG}", "--", "tag:inbox"])
        alone.append(time.monotonic() - started)

    server = Server(deliver, root, env, log=log_file).start()
    print(f"LMTP stress: {args.workers} clients x {args.messages} messages, server as {user_name()}, "
          f"SIGKILL every {args.kill_every} s on average", flush=True)

    stop = threading.Event()
    clients_done = threading.Event()
    lock = threading.Lock()
    server_lock = threading.Lock()
    counters = {"transactions": 0, "broken": 0, "server kills": 0, "restarts failed": 0, "tempfails": 0,
                "queued": 0, "refused": 0, "accepted-not-mail": 0, "other": 0, "connects": 0, "tag calls": 0,
                "tag failures": 0}
    delivered = set()
    unanswered_retries = set()
    waits, tag_waits = [], []
    # Replies that waited for a commit (not told "queued"): the longest is
    # at least one commit.
    committed_waits = []

    def killer():
        rng = random.Random(args.seed * 7919)
        while not clients_done.is_set() and args.kill_every > 0:
            if clients_done.wait(min(max(rng.expovariate(1 / args.kill_every), 0.05), 4 * args.kill_every)):
                break
            with server_lock:
                server.kill()
                counters["server kills"] += 1
                # Down for a moment, as a crashed service is before systemd restarts it.
                time.sleep(rng.uniform(0, 0.3))
                try:
                    server.start()
                except RuntimeError as error:
                    print(f"restart failed: {error}", flush=True)
                    counters["restarts failed"] += 1
                    return

    def tagger():
        while not stop.is_set():
            started = time.monotonic()
            result = run(["notmuch", "tag", f"+{CLIENT_TAG}", "--", "tag:inbox"])
            with lock:
                tag_waits.append(time.monotonic() - started)
                counters["tag calls"] += 1
                counters["tag failures"] += result.returncode != 0
            time.sleep(0.1)

    def connect():
        while True:
            try:
                client = smtplib.LMTP(server.socket, timeout=60)
                code, _ = client.ehlo("stress.example")
                with lock:
                    counters["connects"] += 1
                if code == 250:
                    return client
                client.close()
            except (OSError, smtplib.SMTPException):
                pass
            time.sleep(0.05)

    def worker(w):
        rng = random.Random(args.seed * 1000 + w)
        client = None
        for n in range(args.messages):
            i = w * args.messages + n
            data = message(i)
            recipients = lmtp_recipients(rng)
            pending = list(range(len(recipients)))   # no final reply yet
            acked = False
            broken_before = False
            while pending:
                if client is None:
                    client = connect()
                try:
                    with lock:
                        counters["transactions"] += 1
                    code, _ = client.mail("stress@stress.example")
                    if code != 250:
                        raise smtplib.SMTPServerDisconnected(f"MAIL {code}")
                    accepted = []
                    for k in pending:
                        code, text = client.rcpt(recipients[k])
                        if code == 250:
                            accepted.append(k)
                        elif code >= 500:
                            with lock:
                                counters["other"] += 1
                            pending.remove(k)
                    if not accepted:
                        client.rset()
                        time.sleep(0.1)
                        continue
                    started = time.monotonic()
                    replies = [raw_data(client, i, data) if kind(i) == "smuggle" else client.data(data)]
                    replies += [client.getreply() for _ in accepted[1:]]
                    wait = time.monotonic() - started
                except (OSError, smtplib.SMTPException):
                    # The server died under us: whatever had no reply goes again.
                    try:
                        client.close()
                    except Exception:
                        pass
                    client = None
                    broken_before = True
                    with lock:
                        counters["broken"] += 1
                    continue
                with lock:
                    waits.append(wait)
                    if all(code == 250 and "(queued)" not in (text.decode(errors="replace") if isinstance(text, bytes)
                                                               else text) for code, text in replies):
                        committed_waits.append(wait)
                    for k, (code, text) in zip(accepted, replies):
                        text = text.decode(errors="replace") if isinstance(text, bytes) else text
                        if code == 250:
                            pending.remove(k)
                            acked = True
                            counters["queued"] += "(queued)" in text
                            if "(queued)" in text and args.keep:
                                print(f"queued: message {i} ({kind(i)}) to {recipients[k]} (#{k} of "
                                      f"{len(recipients)}), after a broken transaction: {broken_before}, "
                                      f"{wait * 1000:.0f} ms", flush=True)
                            if refused(i):
                                counters["accepted-not-mail"] += 1
                        elif code >= 500 and refused(i):
                            pending.remove(k)
                            counters["refused"] += 1
                        elif 400 <= code < 500:
                            counters["tempfails"] += 1
                        else:
                            pending.remove(k)
                            counters["other"] += 1
                            print(f"message {i} ({kind(i)}): {code} {text}", flush=True)
            if acked and not refused(i):
                with lock:
                    delivered.add(i)
                    if broken_before:
                        unanswered_retries.add(i)
        if client is not None:
            try:
                client.quit()
            except (OSError, smtplib.SMTPException):
                pass

    started = time.monotonic()
    loops = [threading.Thread(target=killer), threading.Thread(target=tagger)]
    for loop in loops:
        loop.start()
    run_workers(worker, args.workers)
    clients_done.set()
    elapsed = time.monotonic() - started
    loops[0].join()
    stop.set()
    loops[1].join()
    with server_lock:
        stopped = server.stop()
    flush = run([deliver, "flush"])

    out = run(["notmuch", "search", "--output=messages", "--format=text", "from:stress.example"]).stdout.split()
    indexed = {int(m.split("stress-")[1].split("@")[0]) for m in out}
    duplicates = run(["notmuch", "search", "--output=files", "--duplicate=2", "from:stress.example"]).stdout.split()
    lost = [i for i in sorted(delivered) if i not in indexed]
    wrong = []
    for i in sorted(indexed):
        got = run(["notmuch", "search", "--output=tags", f"id:stress-{i}@example.org"]).stdout.split()
        if not tags_are_right(i, got):
            wrong.append((i, sorted(got)))
    on_disk = [os.path.join(d, f) for d, _, fs in os.walk(mail) if "/.notmuch" not in d and not d.endswith("/tmp")
               for f in fs]
    in_tmp = [os.path.join(d, f) for d, _, fs in os.walk(mail) if "/.notmuch" not in d and d.endswith("/tmp")
              for f in fs]
    not_mail_files = sum(1 for path in on_disk if open(path, "rb").read(200).startswith(REFUSED_MARKERS))
    misfiled_files = misfiled(lambda q: run(["notmuch", "search", "--output=files", q]).stdout.split(), delivered, mail)
    smuggled = int(run(["notmuch", "count", f"from:{SMUGGLER}"]).stdout.strip() or 0)
    new = run(["notmuch", "new"]).stdout.strip().splitlines()
    queue = os.path.join(mail, ".notmuch", "notmuch-deliver-queue")
    stuck = [n for d in (queue, os.path.join(queue, "set-aside")) if os.path.isdir(d) for n in os.listdir(d)
             if n.startswith("Q1~") or n.endswith(".record")]
    with open(log_file, errors="replace") as log:
        record = r"^\d{4}-\d\d-\d\dT\S+Z notmuch-deliver\[\d+\] \w+: "
        forged = [line for line in log if not re.match(record, line)
                  or re.match(record + rf"(session=\S+ rcpt=<[^>]*> )?delivered id=<{FORGED}>", line)
                  or line.startswith("2026-01-01T00:00:00Z")]

    failures = []

    def must(name, value, expected, at_most=False):
        if (value > expected) if at_most else (value != expected):
            failures.append(name)
        shown = (repr(value), repr(expected)) if isinstance(value, str) else (value, expected)
        if isinstance(value, float):
            shown = (f"{value:.2f}", f"{expected:.2f}")
        return f"{name} {shown[0]} (must be {'at most ' if at_most else ''}{shown[1]})"

    def quantile(values, q):
        ordered = sorted(values)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")

    total = args.workers * args.messages
    print(f"messages {len(delivered)} acknowledged of {total} "
          f"({sum(not refused(i) for i in range(total))} are mail), "
          f"transactions {counters['transactions']}, server kills {counters['server kills']}, "
          f"broken transactions {counters['broken']} (retried), connections {counters['connects']}, "
          f"tempfails {counters['tempfails']}, 250 queued {counters['queued']}, "
          f"{must('other failures', counters['other'], 0)}, "
          f"{must('failed restarts', counters['restarts failed'], 0)}, {elapsed:.1f} s")
    print(f"{must('lost', len(lost), 0)}, {must('duplicated', len(duplicates), 0)}, "
          f"{must('wrong tags', len(wrong), 0)}, {must('stuck records', len(stuck), 0)}, "
          f"{must('files', len(on_disk), len(delivered))}, "
          f"{must('files in tmp/ after the flush', len(in_tmp), 0)}, "
          f"{must('notmuch new afterwards', new[-1] if new else '?', 'No new mail.')}, "
          f"{must('flush exit', flush.returncode, 0)}, {must('SIGTERM exit', stopped, 0)}")
    print(f"hostile: not-mail and header floods refused (5xx) {counters['refused']} times, "
          f"{must('accepted', counters['accepted-not-mail'], 0)}, {must('stored', not_mail_files, 0)}; "
          f"{must('forged log lines', len(forged), 0)}; "
          f"{must('reserved folders used', len(misfiled_files), 0)}, {must('smuggled messages', smuggled, 0)}; "
          f"retried after a kill without a reply: "
          f"{len(unanswered_retries)} messages, stored once each")
    longest_reply = max(waits) if waits else 0.0
    longest_commit = max(committed_waits) if committed_waits else 0.0
    print(f"end of DATA to the last reply: median {statistics.median(waits) * 1000:.0f} ms, "
          f"99% {quantile(waits, 0.99) * 1000:.0f} ms, longest {longest_reply * 1000:.0f} ms; "
          f"longest among replies that waited for their commit {longest_commit * 1000:.0f} ms")
    print(f"notmuch tag: {counters['tag calls']} calls, {must('failed', counters['tag failures'], 0)}, "
          f"alone {statistics.median(alone) * 1000:.0f} ms, under load median "
          f"{statistics.median(tag_waits) * 1000:.0f} ms, 99% {quantile(tag_waits, 0.99) * 1000:.0f} ms, "
          + must("longest (s)", max(tag_waits) if tag_waits else 0.0,
                 longest_commit + 1.0 + statistics.median(alone), at_most=True)
          + " (the bound: one commit, as the longest reply that waited for its commit, plus 1 s, "
          "plus a tag's own time alone)")
    if failures:
        print(f"FAILED: {', '.join(failures)}")
    if lost:
        print(f"lost: {lost[:20]}")
    for path in duplicates[:10]:
        print(f"duplicate file: {path}")
    for i, got in wrong[:5]:
        print(f"wrong tags: message {i} ({kind(i)}): {got}")
    for line in forged[:5]:
        print(f"unexpected log line: {line.rstrip()[:200]}")
    if len(on_disk) != len(delivered):
        named = set(run(["notmuch", "search", "--output=files", "*"]).stdout.split())
        for path in on_disk:
            if path not in named:
                print(f"file not indexed: {path}")
    remove_unless_kept(root, args.keep)
    sys.exit(1 if failures else 0)


def watch_main(args):
    """The watcher killed at any instant loses nothing. Watch.py's seeded
    generator of a sync tool's file operations runs for --operations
    steps while `notmuch-deliver watch` is SIGKILLed every --kill-every
    seconds on average (mid-scan, mid-commit, mid-burst) and started
    again at once. At quiescence the database must equal what a fresh
    `notmuch new` makes of a copy of the tree (messages, filenames, tags
    but the rule's and the user's), every message present with the
    rule's subject must have the rule's tag, the watcher must have exited
    only when killed (and 0 on the final SIGTERM), and `notmuch new`
    afterwards must find nothing. (A user's tag is not checked: killed
    between a move's deletion and its download, a restart's scan removes
    the message, as `notmuch new` would.)"""
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "Integration"))
    import watch

    binary = os.path.abspath(args.deliver)
    if not os.access(binary, os.X_OK):
        print(f"FAILED: {binary} is not built (make build)")
        return 1
    setup = watch.Setup(binary, f"stress-{args.seed}")
    log = os.path.join(setup.dir, "watch.log")
    rng = random.Random(args.seed)
    counters = {"kills": 0, "starts": 0, "exited by itself": 0}
    state = {"process": None}
    stop = threading.Event()

    def start():
        state["started before"] = started_count()
        errors = open(os.path.join(setup.dir, "watch.stderr"), "ab")
        state["process"] = subprocess.Popen([binary, "watch", "--log", log, "--grace", str(watch.GRACE)],
                                            env=setup.env(setup.config), preexec_fn=watch.as_nobody,
                                            stdout=subprocess.DEVNULL, stderr=errors)
        errors.close()
        counters["starts"] += 1

    def started_count():
        if not os.path.exists(log):
            return 0
        with open(log) as f:
            return f.read().count("watch: started")

    def killer():
        while not stop.is_set():
            if stop.wait(min(rng.expovariate(1 / args.kill_every), 4 * args.kill_every)):
                return
            process = state["process"]
            if process.poll() is not None:
                counters["exited by itself"] += 1
            else:
                process.kill()
                counters["kills"] += 1
            process.wait()
            start()

    failures = []
    try:
        watch.prepare(setup, args.seed)
        start()
        deadline = time.time() + 30
        while started_count() == 0 and time.time() < deadline:
            time.sleep(0.05)
        print(f"watch stress: {args.operations} operations (seed {args.seed}), the watcher SIGKILLed every "
              f"{args.kill_every} s on average", flush=True)
        began = time.time()
        loops = [threading.Thread(target=killer)] if args.kill_every > 0 else []

        def run_killer():
            for loop in loops:
                loop.start()

        made = watch.run_generator(setup, args.seed, args.operations, while_running=run_killer)
        stop.set()
        for loop in loops:
            loop.join()
        played = time.time() - began
        # The last start must have finished its scan before quiescence counts.
        deadline = time.time() + 60
        while started_count() <= state["started before"] and time.time() < deadline:
            if state["process"].poll() is not None:
                break
            time.sleep(0.05)
        fresh = watch.without(watch.fresh_view(setup), {watch.RULE_TAG, watch.USER_TAG})
        deadline = time.time() + watch.GRACE + 30
        while True:
            time.sleep(watch.GRACE + 0.3)
            full = setup.state(setup.config, setup.mail)
            diff = watch.differences(watch.without(full, {watch.RULE_TAG, watch.USER_TAG}), fresh)
            if not diff or time.time() > deadline:
                break
        process = state["process"]
        if process.poll() is not None:
            failures.append(f"the last watcher exited by itself ({process.returncode}): {watch.stderr_of(setup)[-500:]}")
        if counters["exited by itself"]:
            failures.append(f"{counters['exited by itself']} watchers exited by themselves: {watch.stderr_of(setup)[-500:]}")
        if diff:
            failures.append(f"the database differs from notmuch new's view ({len(diff)} messages):\n"
                            + "\n".join(diff[:20]))
        unruled = [mid for mid in made["ruled"] if mid in full and watch.RULE_TAG not in full[mid][0]]
        if unruled:
            failures.append(f"{len(unruled)} messages with the rule's subject lack '{watch.RULE_TAG}': {unruled[:5]}")
        time.sleep(1.5)
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            status = process.wait(timeout=60)
            if status != 0:
                failures.append(f"the watcher exited {status} on SIGTERM")
        report = setup.notmuch(setup.config, "new", "--verbose").strip()
        if not report.endswith("No new mail.") or any(w in report for w in ("Added", "Removed", "Detected")):
            failures.append(f"notmuch new after the watcher did something: {report[-500:]!r}")
        print(f"watch stress: {args.operations} operations in {played:.0f} s, {len(fresh)} messages, "
              f"{len(made['ruled'])} with the rule's subject, watcher SIGKILLed {counters['kills']} times and "
              f"restarted; differences from notmuch new's view {len(diff)} (must be 0), "
              f"messages without their rule tag {len(unruled)} (must be 0)")
    except watch.Failure as failure:
        failures.append(str(failure))
    finally:
        stop.set()
        process = state["process"]
        if process and process.poll() is None:
            process.kill()
            process.wait()
        remove_unless_kept(setup.dir, args.keep)
    for failure in failures:
        print(f"FAILED: {failure}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
