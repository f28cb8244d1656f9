"""The watcher's benchmark harness: mail trees (built once per size and
seed, cached), copies owned by the watcher's user, `notmuch-deliver watch`
started and stopped, commands run as that user, and the afew peer's
configuration.

Imported by Tests/Bench/watch_figures.py. The watcher refuses root: run
as root, it and everything that writes to a tree run as nobody (65534).
"""
import os
import re
import shutil
import signal
import subprocess
import time

from corpus import Corpus
from lmtp_harness import UNPRIVILEGED, ChildProcess, give_away

# The rules every figure's watcher applies, and the afew filters that do
# the same: every arrival is tagged `bench` (the corpus writes to
# example.* addresses only), mailing-list mail `list` too.
RULES = "+bench -- to:example\n+list -- header:List-Id~/lists\\.example\\.org/\n"
AFEW_CONFIG = """[Filter.0]
query = to:example
tags = +bench
message = bench rule

[HeaderMatchingFilter.0]
header = List-Id
pattern = lists\\.example\\.org
tags = +list

[InboxFilter]
"""


def log(text):
    import sys
    print(text, file=sys.stderr, flush=True)


def as_owner():
    """preexec_fn: drop root to the trees' owner (no extra exec, so a timed
    command is timed alone)."""
    if os.geteuid() == 0:
        os.setgroups([])
        os.setgid(UNPRIVILEGED)
        os.setuid(UNPRIVILEGED)


class Tree:
    """A mail root, its notmuch config and database under `root`."""

    def __init__(self, root):
        self.root = root
        self.mail = os.path.join(root, "mail")
        self.config = os.path.join(root, "notmuch-config")
        self.rules = os.path.join(root, "bench.rules")

    def write_config(self, rules=False, new_tags="unread;inbox;"):
        text = f"[database]\npath={self.mail}\n[new]\ntags={new_tags}\n[maildir]\nsynchronize_flags=true\n"
        if rules:
            with open(self.rules, "w") as f:
                f.write(RULES)
            text += f"[deliver]\nrules={self.rules}\n"
        with open(self.config, "w") as f:
            f.write(text)
        # afew (the peer) reads its filters from $HOME/.config/afew/config.
        afew = os.path.join(self.root, ".config", "afew")
        os.makedirs(afew, exist_ok=True)
        with open(os.path.join(afew, "config"), "w") as f:
            f.write(AFEW_CONFIG)
        give_away(self.root)

    def env(self):
        env = {k: v for k, v in os.environ.items() if not k.startswith("NOTMUCH_") and k != "XDG_CONFIG_HOME"}
        env.update(NOTMUCH_CONFIG=self.config, HOME=self.root)
        return env

    def run(self, command, check=True, **kwargs):
        """`command` as the tree's owner; returns the CompletedProcess."""
        result = subprocess.run(command, env=self.env(), preexec_fn=as_owner, capture_output=True, **kwargs)
        if check and result.returncode != 0:
            raise RuntimeError(f"{' '.join(command)} exited {result.returncode}: "
                               + result.stderr.decode(errors="replace")[-2000:])
        return result

    def found(self, query):
        """Whether `notmuch search` finds `query` (read only: as whoever runs the bench)."""
        out = subprocess.run(["notmuch", "search", "--output=messages", "--limit=1", "--", query],
                             env=self.env(), capture_output=True)
        # A read that meets a commit fails now and then ("revision being
        # read has been discarded"): the caller asks again.
        return out.returncode == 0 and out.stdout.startswith(b"id:")

    def count(self, query="*"):
        out = subprocess.run(["notmuch", "count", "--", query], env=self.env(), capture_output=True, text=True)
        return int(out.stdout) if out.returncode == 0 and out.stdout.strip() else -1

    def deliver_file(self, folder, name, data):
        """A sync tool's arrival: written in tmp/, renamed into new/.
        Returns the time of the rename."""
        tmp = os.path.join(self.mail, folder, "tmp", name)
        with open(tmp, "wb") as f:
            f.write(data)
        if os.geteuid() == 0:
            os.chown(tmp, UNPRIVILEGED, UNPRIVILEGED)
        os.rename(tmp, os.path.join(self.mail, folder, "new", name))
        return time.perf_counter()


def copy_tree(source, root):
    """A copy of a cached tree (mail, database), owned by the watcher's user."""
    shutil.rmtree(root, ignore_errors=True)
    shutil.copytree(source, root, symlinks=True)
    tree = Tree(root)
    tree.write_config()
    return tree


def maildir(path):
    for sub in ("cur", "new", "tmp"):
        os.makedirs(os.path.join(path, sub), exist_ok=True)


def cached_tree(work, layout, size, folders, seed=21):
    """A tree of `size` messages, all seen (`cur/NAME:2,S`), in one folder
    (`layout` "one", as mbsync writes a Gmail All Mail) or in `folders`
    folders ("many"), indexed by `notmuch new`; built once per layout,
    size and seed, and kept in the bench's work folder."""
    key = f"watch-{layout}-{size}" + (f"x{folders}" if layout == "many" else "") + f"-s{seed}"
    tree = Tree(os.path.join(work, key))
    marker = os.path.join(tree.root, "ready")
    if os.path.exists(marker):
        return tree
    shutil.rmtree(tree.root, ignore_errors=True)
    corpus = Corpus(seed=seed, tag=f"w{layout}")
    names = ["all-mail"] if layout == "one" else [f"f{i:03d}" for i in range(folders)]
    for name in names:
        maildir(os.path.join(tree.mail, name))
    for i in range(size):
        folder = names[i % len(names)]
        with open(os.path.join(tree.mail, folder, "cur", f"1700000000.{i}.bench:2,S"), "wb") as f:
            f.write(corpus.message(i))
    tree.write_config()
    log(f"building a {size}-message tree ({layout} folder{'s' if layout == 'many' else ''}; once, "
        f"cached in {tree.root}) ...")
    started = time.monotonic()
    tree.run(["notmuch", "new", "--quiet"], timeout=7200)
    log(f"  done in {time.monotonic() - started:.0f} s")
    open(marker, "w").close()
    return tree


class WatcherProcess(ChildProcess):
    """`notmuch-deliver watch` on a tree, as its owner."""

    stop_timeout = 60

    def __init__(self, deliver, tree, options=()):
        self.deliver = deliver
        self.tree = tree
        self.options = list(options)
        self.log = os.path.join(tree.root, "watch.log")
        self.stderr = os.path.join(tree.root, "watch.stderr")
        self.process = None

    def start(self, timeout=600):
        if os.path.exists(self.log):
            os.unlink(self.log)
        self.read_to, self.added_so_far = 0, 0
        with open(self.stderr, "ab") as err:
            self.process = subprocess.Popen([self.deliver, "watch", "--log", self.log] + self.options,
                                            env=self.tree.env(), preexec_fn=as_owner, stdin=subprocess.DEVNULL,
                                            stdout=subprocess.DEVNULL, stderr=err)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the watcher exited {self.process.returncode}: "
                                   + open(self.stderr, errors="replace").read()[-2000:])
            if os.path.exists(self.log) and "watch: started" in open(self.log, errors="replace").read():
                return self
            time.sleep(0.02)
        self.stop()
        raise RuntimeError("the watcher did not start")

    def ticks(self):
        """User + system CPU so far, in clock ticks (/proc/PID/stat)."""
        with open(f"/proc/{self.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])

    def log_text(self):
        with open(self.log, errors="replace") as f:
            return f.read()

    def added(self):
        """Messages and filenames added by the commits logged since the
        last start (the log read on from where the last call stopped)."""
        with open(self.log, "rb") as f:
            f.seek(self.read_to)
            text = f.read()
        whole = text[:text.rfind(b"\n") + 1]
        self.read_to += len(whole)
        for match in re.finditer(rb"watch: committed added=(\d+) renamed-or-copied=(\d+)", whole):
            self.added_so_far += int(match.group(1)) + int(match.group(2))
        return self.added_so_far

    def settle(self, quiet=1.0, timeout=600):
        """Waits until the watcher used no CPU for `quiet` seconds."""
        deadline = time.monotonic() + timeout
        last = self.ticks()
        while time.monotonic() < deadline:
            time.sleep(quiet)
            now = self.ticks()
            if now == last:
                return True
            last = now
        return False


def afew_missing():
    """Why the afew peer cannot run, or None."""
    if shutil.which("afew") is None:
        return "afew is not installed (apt-get install afew; make bench installs it when run as root)"
    return None
