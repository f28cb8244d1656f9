"""The LMTP server for make bench and make stress: started as an
unprivileged user (it refuses root), watched, killed, restarted; and a
minimal LMTP client that can time the end of DATA to each reply.

Imported by Tests/Bench/bench.py and Tests/Stress/stress.py.
"""
import os
import pwd
import signal
import socket
import subprocess
import time

# Who the server runs as when the tests run as root: nobody, as the
# mailbox owner of a scratch mail root.
UNPRIVILEGED = 65534


def as_user(uid=UNPRIVILEGED, gid=None):
    """The command prefix that drops root to `uid` (nobody unless told;
    its group `gid`, by default the same number); empty when not root."""
    if os.geteuid() != 0:
        return []
    return ["setpriv", f"--reuid={uid}", f"--regid={uid if gid is None else gid}", "--clear-groups"]


def give_away(path, uid=UNPRIVILEGED, gid=None):
    """Hands a scratch tree to `uid` (nobody unless told); no-op when not root."""
    if os.geteuid() != 0:
        return
    gid = uid if gid is None else gid
    for directory, subdirectories, files in os.walk(path):
        os.lchown(directory, uid, gid)
        for name in files + subdirectories:
            os.lchown(os.path.join(directory, name), uid, gid)


def user_name():
    return pwd.getpwuid(UNPRIVILEGED if os.geteuid() == 0 else os.geteuid()).pw_name


class ChildProcess:
    """A notmuch-deliver the harness started (self.process, a Popen, once
    started): stopped, killed and measured the same way whatever it
    serves. stop_timeout: how long a SIGTERM may take before SIGKILL."""

    process = None
    stop_timeout = 30

    @property
    def pid(self):
        return self.process.pid

    def kill(self):
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()

    def stop(self, timeout=None):
        """SIGTERM, then its exit status; None when it had to be killed."""
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                return self.process.wait(timeout or self.stop_timeout)
            except subprocess.TimeoutExpired:
                self.kill()
                return None
        return self.process.returncode if self.process else None

    def status(self, field):
        """A /proc/PID/status figure in KiB (VmRSS, VmHWM)."""
        with open(f"/proc/{self.pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
        return 0


class Server(ChildProcess):
    """`notmuch-deliver lmtp` on a unix socket in `root`."""

    def __init__(self, deliver, root, env, extra=(), log=None, uid=UNPRIVILEGED, gid=None):
        self.deliver = deliver
        self.uid, self.gid = uid, gid
        self.socket = os.path.join(root, "lmtp.sock")
        self.env = env
        self.extra = list(extra)
        self.log = log or os.path.join(root, "server.log")
        self.process = None
        self.stderr = os.path.join(root, "server.stderr")

    def start(self, timeout=20):
        command = as_user(self.uid, self.gid) + ["env", f"HOME={self.env['HOME']}", f"NOTMUCH_CONFIG={self.env['NOTMUCH_CONFIG']}",
                               self.deliver, "lmtp", "--listen", f"unix:{self.socket}", "--socket-mode", "666",
                               "--log", self.log] + self.extra
        # setpriv and env exec: the process started is the server itself.
        with open(self.stderr, "ab") as err:
            self.process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err,
                                            env=self.env)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the LMTP server exited with {self.process.returncode}: "
                                   + open(self.stderr, errors="replace").read()[-2000:])
            try:
                probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                probe.settimeout(2)
                probe.connect(self.socket)
                greeting = probe.recv(512)
                probe.sendall(b"QUIT\r\n")
                probe.close()
                if greeting.startswith(b"220"):
                    return self
            except OSError:
                pass
            time.sleep(0.02)
        raise RuntimeError("the LMTP server did not come up")

    def threads(self):
        return len(os.listdir(f"/proc/{self.pid}/task"))


class LMTPError(Exception):
    pass


class Client:
    """A bare LMTP client: one connection, transactions over it, replies
    read per recipient, and the wait from the final dot to each reply."""

    def __init__(self, path, timeout=120):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect(path)
        self.buffer = b""
        self.data_end = None
        code, _ = self.reply()
        if code != 220:
            raise LMTPError(f"greeting {code}")
        self.command(b"LHLO bench.example")

    def line(self):
        while b"\r\n" not in self.buffer:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionResetError("the server closed the connection")
            self.buffer += chunk
        line, self.buffer = self.buffer.split(b"\r\n", 1)
        return line

    def reply(self):
        """(code, text of the last line) of one possibly multi-line reply."""
        while True:
            line = self.line()
            if line[3:4] != b"-":
                return int(line[:3]), line[4:].decode(errors="replace")

    def command(self, text):
        self.sock.sendall(text + b"\r\n")
        return self.reply()

    @staticmethod
    def stuffed(data):
        """The data as it goes on the wire: CRLF line ends, dots stuffed,
        ending in CRLF (without the final dot)."""
        lines = data.replace(b"\r\n", b"\n").split(b"\n")
        if lines and lines[-1] == b"":
            lines.pop()
        return b"".join((b"." + line if line.startswith(b".") else line) + b"\r\n" for line in lines)

    def send(self, sender, recipients, data, wire=None):
        """One transaction. Returns ([(code, text)] per recipient in RCPT
        order, seconds from the final dot to the last reply). A recipient
        refused at RCPT gets its RCPT reply. Raises OSError when the
        connection breaks: whatever had no reply must be sent again."""
        code, text = self.command(b"MAIL FROM:<" + sender.encode() + b">")
        if code != 250:
            return [(code, text)] * len(recipients), 0.0
        at_rcpt = []
        for recipient in recipients:
            at_rcpt.append(self.command(b"RCPT TO:<" + recipient.encode() + b">"))
        accepted = [i for i, (c, _) in enumerate(at_rcpt) if c == 250]
        if not accepted:
            self.command(b"RSET")
            return at_rcpt, 0.0
        code, text = self.command(b"DATA")
        if code != 354:
            return [(code, text)] * len(recipients), 0.0
        self.sock.sendall(wire if wire is not None else self.stuffed(data))
        started = time.perf_counter()
        # When the end of DATA went out: the start of the latency to searchable.
        self.data_end = started
        self.sock.sendall(b".\r\n")
        replies = list(at_rcpt)
        for i in accepted:
            replies[i] = self.reply()
        return replies, time.perf_counter() - started

    def close(self):
        try:
            self.sock.sendall(b"QUIT\r\n")
            self.reply()
        except OSError:
            pass
        self.sock.close()
