"""Figure 7's machinery: a postfix instance of the bench's own, a
standalone Dovecot LMTP, the bench's mailbox owner, and postfix's log read
as it grows. Imported by Tests/Bench/bench.py; everything here needs root.

Nothing touches the system's postfix or Dovecot: each runs from its own
configuration, queue and state directories, and SMTP listens on a port of
its own.
"""
import fcntl
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import time

# The mailbox owner of figure 7: local(8) and Dovecot's passwd userdb need a
# real user. A normal (not --system) user, because Dovecot refuses uids
# below first_valid_uid (500).
BENCH_USER = "ndbench"
BENCH_DOMAIN = "bench.example"
RECIPIENT = f"{BENCH_USER}@{BENCH_DOMAIN}"


def unavailable():
    """Why figure 7 cannot run here, or None."""
    if os.geteuid() != 0:
        return "needs root (a postfix instance of its own, a bench user)"
    for tool in ("postfix", "postconf", "postsuper", "smtp-source", "useradd", "usermod", "setpriv"):
        if not shutil.which(tool) and not os.path.exists(f"/usr/sbin/{tool}"):
            package = "util-linux" if tool == "setpriv" else "passwd" if tool.startswith("user") else "postfix"
            return f"{tool} is not installed (apt-get install {package})"
    for program in ("local", "lmtp", "discard"):
        if not os.path.exists(f"/usr/lib/postfix/sbin/{program}"):
            return f"postfix's {program}(8) is missing"
    return None


def dovecot_unavailable():
    """Why Dovecot's LMTP cannot be a peer here, or None."""
    if not shutil.which("dovecot") or not shutil.which("doveadm"):
        return "dovecot is not installed (apt-get install dovecot-core dovecot-lmtpd)"
    if not os.path.exists("/usr/lib/dovecot/lmtp"):
        return "Dovecot's LMTP is not installed (apt-get install dovecot-lmtpd)"
    return None


def bench_user(home):
    """(uid, gid) of BENCH_USER, created when missing, its home moved to
    `home` when it is elsewhere (local(8) and Dovecot take HOME from
    passwd)."""
    try:
        entry = pwd.getpwnam(BENCH_USER)
    except KeyError:
        run_or_explain(["useradd", "--home-dir", home, "--no-create-home", "--shell", "/usr/sbin/nologin",
                        "--user-group", "--comment", "notmuch-deliver bench", BENCH_USER])
        entry = pwd.getpwnam(BENCH_USER)
    if entry.pw_dir != home:
        # Fails while a process of the user runs (another bench's server).
        run_or_explain(["usermod", "--home", home, BENCH_USER])
    return entry.pw_uid, entry.pw_gid


def run_or_explain(command):
    out = subprocess.run(command, capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed ({out.returncode}): {out.stderr.strip()[-300:]}")


class ExclusiveRun:
    """One figure 7 at a time on the machine: two benches (from two
    worktrees) would share the user, the queue's name and the port."""

    def __init__(self):
        directory = "/run/lock" if os.path.isdir("/run/lock") else "/tmp"
        self.path = os.path.join(directory, "notmuch-deliver-bench-postfix.lock")
        self.file = None

    def __enter__(self):
        self.file = open(self.path, "w")
        try:
            fcntl.flock(self.file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            print(f"   waiting for another bench's figure 7 ({self.path}) ...", file=sys.stderr, flush=True)
            fcntl.flock(self.file, fcntl.LOCK_EX)
        return self

    def __exit__(self, *_):
        self.file.close()


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class LogTail:
    """postfix's log from where it was when made: counts of the delivery
    results for one recipient, read incrementally."""

    def __init__(self, path, recipient):
        self.path = path
        self.wanted = f"to=<{recipient}>"
        self.offset = os.path.getsize(path)
        self.partial = b""
        self.counts = {"sent": 0, "deferred": 0, "bounced": 0}

    def poll(self):
        with open(self.path, "rb") as f:
            f.seek(self.offset)
            chunk = f.read()
        self.offset += len(chunk)
        lines = (self.partial + chunk).split(b"\n")
        self.partial = lines.pop()
        for raw in lines:
            line = raw.decode(errors="replace")
            if self.wanted not in line:
                continue
            for status in self.counts:
                if f"status={status}" in line:
                    self.counts[status] += 1
        return self.counts


class PostfixInstance:
    """A postfix of the bench's own: its own configuration directory, queue
    (/var/spool/postfix-nd-bench), data directory and log, SMTP on a free
    port of 127.0.0.1, no chroot (the LMTP sockets are in the bench's work
    directory). BENCH_DOMAIN is local: local(8) delivers to BENCH_USER with
    mailbox_transport or mailbox_command, as Docs/setup-lmtp.md and
    Docs/setup-postfix.md set up a personal server; postfix's defaults for
    everything else (concurrency included). Whatever is not for
    BENCH_DOMAIN (bounce notices to smtp-source's sender) is discarded."""

    def __init__(self, work):
        self.config = os.path.join(work, "postfix-etc")
        self.queue = "/var/spool/postfix-nd-bench"
        self.data = "/var/lib/postfix-nd-bench"
        self.log = "/var/log/postfix-nd-bench.log"
        self.port = free_port()
        self.running = False

    def postconf(self, *arguments):
        subprocess.run(["postconf", "-c", self.config] + list(arguments), check=True, capture_output=True)

    def start(self):
        shutil.rmtree(self.config, ignore_errors=True)
        os.makedirs(self.config)
        shutil.copy("/etc/postfix/master.cf", os.path.join(self.config, "master.cf"))
        with open(os.path.join(self.config, "main.cf"), "w") as f:
            f.write(f"""# generated by Tests/Bench/bench.py (figure 7)
compatibility_level = 3.6
queue_directory = {self.queue}
data_directory = {self.data}
command_directory = /usr/sbin
daemon_directory = /usr/lib/postfix/sbin
mail_owner = postfix
setgid_group = postdrop
syslog_name = postfix-nd-bench
maillog_file = {self.log}
myhostname = mx.bench.localhost
mydomain = bench.localhost
mydestination = {BENCH_DOMAIN}
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
smtpd_recipient_restrictions = permit_mynetworks, reject
alias_maps =
alias_database =
local_recipient_maps = unix:passwd.byname
biff = no
smtputf8_enable = no
default_transport = discard:not for the bench
mailbox_transport = discard:
""")
        self.postconf("-F", "*/*/chroot = n")
        self.postconf("-MX", "smtp/inet")
        self.postconf("-M", "-e", f"127.0.0.1:{self.port}/inet=127.0.0.1:{self.port} inet n - n - - smtpd")
        self.postconf("-M", "-e", "postlog/unix-dgram=postlog unix-dgram n - n - 1 postlogd")
        subprocess.run(["postfix", "-c", self.config, "stop"], capture_output=True)
        os.makedirs(self.queue, exist_ok=True)
        os.makedirs(self.data, exist_ok=True)
        shutil.chown(self.data, "postfix")
        self.clear_queue()
        subprocess.run(["postfix", "-c", self.config, "check"], check=True, capture_output=True)
        open(self.log, "w").close()
        out = subprocess.run(["postfix", "-c", self.config, "start"], capture_output=True, text=True)
        if out.returncode != 0:
            raise RuntimeError(f"postfix would not start: {out.stderr.strip()}")
        self.running = True

    def deliver_with(self, transport=None, command=None):
        """local(8) hands the mailbox delivery to `transport`
        (mailbox_transport) or runs `command` (mailbox_command) as the
        user; then a reload, so the next message sees it."""
        if transport:
            self.postconf("-e", f"mailbox_transport = {transport}")
            self.postconf("-X", "mailbox_command")
        else:
            self.postconf("-X", "mailbox_transport")
            self.postconf("-e", f"mailbox_command = {command}")
        subprocess.run(["postfix", "-c", self.config, "reload"], check=True, capture_output=True)
        time.sleep(1)

    def clear_queue(self):
        subprocess.run(["postsuper", "-c", self.config, "-d", "ALL"], capture_output=True)

    def stop(self):
        if self.running:
            subprocess.run(["postfix", "-c", self.config, "stop"], capture_output=True)
            self.running = False
        self.clear_queue()

    def inject(self, messages, sessions):
        """smtp-source: `messages` small messages over `sessions` parallel
        SMTP sessions, each kept open between messages."""
        out = subprocess.run(["smtp-source", "-d", "-s", str(sessions), "-m", str(messages), "-l", "2000",
                              "-M", "client.bench.localhost", "-f", "sender@client.bench.localhost",
                              "-t", RECIPIENT, f"127.0.0.1:{self.port}"], capture_output=True, text=True)
        if out.returncode != 0:
            raise RuntimeError(f"smtp-source failed: {out.stderr.strip()[-500:]}")


class DovecotInstance:
    """Dovecot's LMTP alone (Debian's dovecot-lmtpd), as the issue's
    Dovecot peer: passwd userdb, mail in ~/mail as a maildir, mail_fsync =
    optimized (the default, spelled out), its base and state directories
    in the bench's work directory, the LMTP socket open to postfix."""

    def __init__(self, work):
        self.directory = os.path.join(work, "dovecot")
        self.config = os.path.join(self.directory, "dovecot.conf")
        self.base_dir = os.path.join(self.directory, "run")
        self.socket = os.path.join(self.directory, "lmtp.sock")
        self.log = os.path.join(self.directory, "dovecot.log")
        self.running = False

    def start(self, timeout=20):
        shutil.rmtree(self.directory, ignore_errors=True)
        os.makedirs(os.path.join(self.directory, "state"))
        with open(self.config, "w") as f:
            f.write(f"""# generated by Tests/Bench/bench.py (figure 7)
protocols = lmtp
base_dir = {self.base_dir}
state_dir = {self.directory}/state
log_path = {self.log}
ssl = no
mail_location = maildir:~/mail
mail_fsync = optimized
auth_username_format = %n
passdb {{
  driver = passwd
}}
userdb {{
  driver = passwd
}}
service lmtp {{
  unix_listener {self.socket} {{
    mode = 0666
  }}
}}
""")
        # The daemon keeps the descriptors it was given: a pipe would never
        # reach its end, so its start-up errors go to a file.
        errors = os.path.join(self.directory, "start.err")
        with open(errors, "w") as err:
            status = subprocess.run(["dovecot", "-c", self.config], stdin=subprocess.DEVNULL,
                                    stdout=subprocess.DEVNULL, stderr=err).returncode
        if status != 0:
            raise RuntimeError(f"dovecot would not start: {open(errors, errors='replace').read().strip()[-500:]}")
        self.running = True
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
                    probe.settimeout(2)
                    probe.connect(self.socket)
                    if probe.recv(512).startswith(b"220"):
                        probe.sendall(b"QUIT\r\n")
                        return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"Dovecot's LMTP did not come up (see {self.log})")

    def prime(self, user):
        """Lets Dovecot list the mailbox once (its uidlist and index of the
        10,000 messages already there), untimed: a user who delivers with
        Dovecot has them already."""
        out = subprocess.run(["doveadm", "-c", self.config, "mailbox", "status", "-u", user, "messages", "INBOX"],
                             capture_output=True, text=True)
        if out.returncode != 0:
            raise RuntimeError(f"doveadm mailbox status failed: {out.stderr.strip()[-500:]}")
        return int(out.stdout.split("=")[-1])

    def stop(self, timeout=20):
        if not self.running:
            return
        self.running = False
        pid_file = os.path.join(self.base_dir, "master.pid")
        try:
            with open(pid_file) as f:
                pid = int(f.read().split()[0])
        except (OSError, ValueError, IndexError):
            pid = None
        subprocess.run(["doveadm", "-c", self.config, "stop"], capture_output=True)
        if pid is None:
            return
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.05)
        # Still there: its master, and with it the children, by its own id.
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
