#!/usr/bin/env python3
"""`notmuch-deliver watch` against `notmuch new`, on what sync tools do.

For each seed, a generator plays a sync tool's file operations on a mail
tree while the watcher runs: arrivals in new/ and cur/ (tmp/ then rename,
or link() as postfix does), new/ -> cur/ renames, flag changes, moves
between folders with the deletion first or the addition first, copies of a
message (the same Message-ID in two files), deletions, folders created
(and filled at once) and removed, non-mail files, ignored folders, slow
writers straight into cur/ or new/, folders renamed, moved out of the
tree and moved in (filled before any watch on them). At quiescence the watcher's database must be
what a fresh `notmuch new` makes of a copy of the final tree: the same
messages, the same filenames, the same tags (less the rule's own tag,
which must be on every message that arrived during the run with the
rule's subject); a user's tag must have survived its message's moves; and
`notmuch new` on the watcher's database, once it stopped (SIGTERM, exit
0), must find nothing to do.

    python3 Tests/Integration/watch.py PATH/TO/notmuch-deliver [--seeds 1,2,3,4] [--operations 1000] [--jobs 4]

By default four seeds of 1,000 operations each, the seeds side by side
(`--jobs`), so that `make test` plays 4,000 operations in about a minute.

Exit status: 0 passed, 1 a check failed, 77 it cannot run here (the
reason after "SKIPPED:"). The watcher refuses to run as root: run as root,
the watcher, the generator and the notmuch commands run as nobody (65534).
"""

import ctypes
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback

from common import Failure, check, skip

NOBODY = 65534
# Run as root, the watcher, the generator and notmuch run as nobody, and
# the files are nobody's. (Root of a user namespace, where nobody is not
# mapped, sets this to False and keeps its own identity.)
DROPS_ROOT = os.geteuid() == 0
GRACE = 0.5
RULE_TAG = "ruled"
USER_TAG = "kept-by-user"


def as_nobody():
    """For subprocesses and the generator's child: drop to nobody when root."""
    if DROPS_ROOT:
        os.setgroups([])
        os.setgid(NOBODY)
        os.setuid(NOBODY)


class Setup:
    """A scratch directory owned by the watcher's user: a mail tree, its
    notmuch config (new.tags, new.ignore, flags synchronised, a rules file)
    and a database."""

    def __init__(self, binary, seed):
        self.binary = binary
        self.dir = tempfile.mkdtemp(prefix=f"nd-watch-{seed}.")
        os.chmod(self.dir, 0o755)
        self.mail = os.path.join(self.dir, "mail")
        self.config = self.write_config(self.mail, rules=True)
        with open(os.path.join(self.dir, "rules"), "w") as f:
            f.write(f"+{RULE_TAG} -- header:Subject~/rule-me/\n")
        os.mkdir(self.mail)
        if DROPS_ROOT:
            for top, dirs, files in os.walk(self.dir):
                for name in [top] + [os.path.join(top, n) for n in dirs + files]:
                    os.chown(name, NOBODY, NOBODY)

    def write_config(self, mail, rules):
        path = os.path.join(self.dir, "config-" + os.path.basename(mail))
        with open(path, "w") as f:
            f.write(f"[database]\npath={mail}\n[new]\ntags=unread;inbox;\n"
                    "ignore=.mbsyncstate;/^ignored-/\n[maildir]\nsynchronize_flags=true\n")
            if rules:
                f.write(f"[deliver]\nrules={os.path.join(self.dir, 'rules')}\n")
        os.chmod(path, 0o644)
        return path

    def env(self, config):
        env = {k: v for k, v in os.environ.items() if not k.startswith("NOTMUCH_")}
        env["HOME"] = self.dir
        env["NOTMUCH_CONFIG"] = config
        return env

    def notmuch(self, config, *args):
        result = subprocess.run(["notmuch"] + list(args), env=self.env(config), preexec_fn=as_nobody,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=120)
        check(result.returncode == 0, f"notmuch {' '.join(args)}: {result.stderr.decode(errors='replace')}")
        return result.stdout.decode()

    def state(self, config, mail):
        """{Message-ID: (tags, relative filenames)} of a database, read
        through libnotmuch (notmuch show would open every file, and fail on
        one a sync tool removed before the watcher did)."""
        return database_state(config, mail)


def database_state(config, mail):
    lib = ctypes.CDLL("libnotmuch.so.5")
    pointer, text = ctypes.c_void_p, ctypes.c_char_p
    lib.notmuch_database_open_with_config.argtypes = [text, ctypes.c_int, text, text, ctypes.POINTER(pointer),
                                                     ctypes.POINTER(text)]
    for name, result in [("notmuch_query_create", pointer), ("notmuch_message_get_message_id", text),
                         ("notmuch_message_get_tags", pointer), ("notmuch_tags_get", text),
                         ("notmuch_message_get_filenames", pointer), ("notmuch_filenames_get", text),
                         ("notmuch_messages_get", pointer)]:
        getattr(lib, name).restype = result
    for name in ("notmuch_query_create", "notmuch_query_search_messages", "notmuch_messages_valid",
                 "notmuch_messages_get", "notmuch_messages_move_to_next", "notmuch_message_get_message_id",
                 "notmuch_message_get_tags", "notmuch_tags_valid", "notmuch_tags_get", "notmuch_tags_move_to_next",
                 "notmuch_message_get_filenames", "notmuch_filenames_valid", "notmuch_filenames_get",
                 "notmuch_filenames_move_to_next", "notmuch_message_destroy", "notmuch_database_destroy"):
        getattr(lib, name).argtypes = None
    database, error = pointer(), text()
    status = lib.notmuch_database_open_with_config(None, 0, config.encode(), None, ctypes.byref(database),
                                                   ctypes.byref(error))
    check(status == 0, f"cannot open the database of {config}: {error.value}")
    lib.notmuch_query_create.argtypes = [pointer, text]
    query = lib.notmuch_query_create(database, b"*")
    messages = pointer()
    lib.notmuch_query_search_messages.argtypes = [pointer, ctypes.POINTER(pointer)]
    check(lib.notmuch_query_search_messages(query, ctypes.byref(messages)) == 0, "search failed")
    for name in ("notmuch_messages_valid", "notmuch_messages_get", "notmuch_messages_move_to_next"):
        getattr(lib, name).argtypes = [pointer]
    for name in ("notmuch_message_get_message_id", "notmuch_message_get_tags", "notmuch_message_get_filenames",
                 "notmuch_message_destroy", "notmuch_tags_valid", "notmuch_tags_get", "notmuch_tags_move_to_next",
                 "notmuch_filenames_valid", "notmuch_filenames_get", "notmuch_filenames_move_to_next",
                 "notmuch_database_destroy"):
        getattr(lib, name).argtypes = [pointer]
    found = {}
    while lib.notmuch_messages_valid(messages):
        message = lib.notmuch_messages_get(messages)
        mid = lib.notmuch_message_get_message_id(message).decode()
        tags, names = set(), set()
        iterator = lib.notmuch_message_get_tags(message)
        while lib.notmuch_tags_valid(iterator):
            tags.add(lib.notmuch_tags_get(iterator).decode())
            lib.notmuch_tags_move_to_next(iterator)
        iterator = lib.notmuch_message_get_filenames(message)
        while lib.notmuch_filenames_valid(iterator):
            names.add(os.path.relpath(lib.notmuch_filenames_get(iterator).decode(), mail))
            lib.notmuch_filenames_move_to_next(iterator)
        found[mid] = (frozenset(tags), frozenset(names))
        lib.notmuch_message_destroy(message)
        lib.notmuch_messages_move_to_next(messages)
    lib.notmuch_database_destroy(database)
    return found


class Generator:
    """A sync tool's file operations on the tree, seeded. Keeps to what
    `notmuch new` itself gives the same answer for whether run once at the
    end or after every step: a message is either one file in new/ (no
    flags) or files in cur/ with a ':2,' part, so that flags say the same
    whatever the order."""

    FLAGS = ["", "S", "FS", "RS", "PS", "DS", "F", "R"]

    def __init__(self, mail, seed):
        self.mail = mail
        self.random = random.Random(seed)
        self.seed = seed
        self.serial = 0
        self.folders = ["INBOX", "work", "lists/dev"]
        self.made_folders = []
        # Message-ID -> set of paths relative to the mail root
        self.files = {}
        self.ruled = set()
        self.protected = set()

    def unique(self):
        self.serial += 1
        return f"{int(time.time())}.{self.seed}_{self.serial}.host"

    def message(self, mid, subject=None):
        subject = subject or (f"rule-me {mid}" if self.random.random() < 0.3 else f"plain {mid}")
        if "rule-me" in subject:
            self.ruled.add(mid)
        return (f"From: sender{self.serial}@example.org\nTo: me@example.org\nSubject: {subject}\n"
                f"Message-ID: <{mid}>\nDate: Thu, 01 Jan 2026 00:00:00 +0000\n\nbody {mid}\n").encode()

    def maildir(self, folder):
        for sub in ("cur", "new", "tmp"):
            os.makedirs(os.path.join(self.mail, folder, sub), exist_ok=True)

    def deliver(self, folder, content, flags=None, linking=False):
        """tmp/ then new/ (no flags) or cur/ with flags; by rename or by link."""
        name = self.unique()
        tmp = os.path.join(self.mail, folder, "tmp", name)
        with open(tmp, "wb") as f:
            f.write(content)
        target = os.path.join(folder, "new", name) if flags is None else os.path.join(folder, "cur", f"{name}:2,{flags}")
        if linking:
            os.link(tmp, os.path.join(self.mail, target))
            os.unlink(tmp)
        else:
            os.rename(tmp, os.path.join(self.mail, target))
        return target

    def content_of(self, mid):
        path = next(iter(self.files[mid]))
        with open(os.path.join(self.mail, path), "rb") as f:
            return f.read()

    def pick(self, where=None):
        choices = [(mid, p) for mid, paths in self.files.items() for p in paths
                   if where is None or f"/{where}/" in p]
        return self.random.choice(sorted(choices)) if choices else (None, None)

    def remove(self, mid, path):
        os.unlink(os.path.join(self.mail, path))
        self.files[mid].discard(path)
        if not self.files[mid]:
            del self.files[mid]

    def seed_tree(self, count):
        for folder in self.folders:
            self.maildir(folder)
        for _ in range(count):
            self.arrive()

    def arrive(self):
        mid = f"m{self.seed}-{self.serial + 1}@example.org"
        folder = self.random.choice(self.folders)
        flags = None if self.random.random() < 0.5 else self.random.choice(self.FLAGS)
        content = self.message(mid)
        self.files[mid] = {self.deliver(folder, content, flags, linking=self.random.random() < 0.3)}
        return mid

    def step(self):
        r = self.random.random()
        if r < 0.25:
            self.arrive()
        elif r < 0.35:
            mid, path = self.pick("new")
            if mid and len(self.files[mid]) == 1:
                new = path.replace("/new/", "/cur/") + ":2," + self.random.choice(self.FLAGS)
                os.rename(os.path.join(self.mail, path), os.path.join(self.mail, new))
                self.files[mid] = {new}
        elif r < 0.50:
            self.flag_change(*self.pick("cur"))
        elif r < 0.62:
            self.move(*self.pick())
        elif r < 0.68:
            mid, path = self.pick("cur")
            if mid:
                folder = self.random.choice(self.folders)
                self.files[mid].add(self.deliver(folder, self.content_of(mid), self.random.choice(self.FLAGS)))
        elif r < 0.76:
            mid, path = self.pick()
            if mid and mid not in self.protected:
                self.remove(mid, path)
        elif r < 0.80:
            folder = f"made/f{self.serial}"
            self.serial += 1
            self.maildir(folder)
            self.folders.append(folder)
            self.made_folders.append(folder)
            # Filled at once: files may come before the watch on the folder.
            for _ in range(self.random.randint(0, 3)):
                mid = f"m{self.seed}-{self.serial + 1}@example.org"
                self.files[mid] = {self.deliver(folder, self.message(mid), self.random.choice([None, "S"]))}
        elif r < 0.83:
            candidates = self.unprotected_made_folders()
            if candidates:
                folder = self.random.choice(candidates)
                shutil.rmtree(os.path.join(self.mail, folder))
                self.forget_folder(folder)
        elif r < 0.88:
            folder = self.random.choice(self.folders)
            where = self.random.choice(["cur", "new", ""])
            with open(os.path.join(self.mail, folder, where, f"notes-{self.serial}.txt"), "w") as f:
                f.write("not a message\n")
            self.serial += 1
        elif r < 0.90:
            folder = self.random.choice(self.folders)
            with open(os.path.join(self.mail, folder, ".mbsyncstate"), "w") as f:
                f.write(f"state {self.serial}\n")
            self.maildir("ignored-stuff")
            self.deliver("ignored-stuff", self.message(f"ignored{self.serial}@example.org"), "S")
        elif r < 0.95:
            self.slow_writer()
        elif r < 0.97:
            self.rename_folder()
        elif r < 0.985:
            self.folder_out()
        else:
            self.folder_in()

    def flag_change(self, mid, path):
        """A flag change: one rename of the ':2,' part."""
        if not mid or ":2," not in path:
            return
        flags = [f for f in self.FLAGS if f != path.split(":2,")[1]]
        new = path.split(":2,")[0] + ":2," + self.random.choice(flags)
        os.rename(os.path.join(self.mail, path), os.path.join(self.mail, new))
        self.trace(f"flags of {mid} {path} -> {new}")
        self.files[mid] = (self.files[mid] - {path}) | {new}

    def move(self, mid, path):
        """mbsync's move: an expunge here and a download there, in either
        order, under a new name with the same flags."""
        if not mid:
            return
        folder = self.random.choice([f for f in self.folders if not path.startswith(f + "/")] or self.folders)
        flags = path.split(":2,")[1] if ":2," in path else None
        content = self.content_of(mid)
        if self.random.random() < 0.5:
            self.remove(mid, path)
            time.sleep(self.random.uniform(0, GRACE / 3))
            target = self.deliver(folder, content, flags)
            self.files.setdefault(mid, set()).add(target)
        else:
            target = self.deliver(folder, content, flags)
            self.files[mid].add(target)
            time.sleep(self.random.uniform(0, GRACE / 3))
            self.remove(mid, path)
        self.trace(f"moved {mid} {path} -> {target}")

    def slow_writer(self):
        """A writer straight into cur/ (or new/), pausing longer than a
        burst's quiet window."""
        mid = f"m{self.seed}-{self.serial + 1}@example.org"
        folder = self.random.choice(self.folders)
        content = self.message(mid)
        if self.random.random() < 0.5:
            name = os.path.join(folder, "cur", self.unique() + ":2,S")
        else:
            name = os.path.join(folder, "new", self.unique())
        with open(os.path.join(self.mail, name), "wb") as f:
            f.write(content[:20])
            f.flush()
            time.sleep(0.15)
            f.write(content[20:])
        self.files[mid] = {name}

    def unprotected_made_folders(self):
        return [f for f in self.made_folders
                if not any(p.startswith(f + "/") for m in self.protected for p in self.files.get(m, ()))]

    def forget_folder(self, folder):
        """A made folder gone from the tree (removed or moved out): it and
        the files in it are no longer expected; a message with no file
        left is gone."""
        self.folders.remove(folder)
        self.made_folders.remove(folder)
        for mid in list(self.files):
            self.files[mid] = {p for p in self.files[mid] if not p.startswith(folder + "/")}
            if not self.files[mid]:
                del self.files[mid]

    def trace(self, what):
        """With KEEP_WATCH_TEST set, what the generator did, in trace.log
        beside the tree (for reading a failure against the watcher's log)."""
        if os.environ.get("KEEP_WATCH_TEST"):
            with open(os.path.join(os.path.dirname(self.mail), "trace.log"), "a") as f:
                f.write(f"{time.strftime('%H:%M:%S')}.{int(time.time() * 1000) % 1000:03d} {what}\n")

    def rename_folder(self):
        """A folder renamed in the tree (a mail client renaming a
        mailbox): one rename of a directory full of mail."""
        if not self.made_folders:
            return
        old = self.random.choice(self.made_folders)
        new = f"made/r{self.serial}"
        self.serial += 1
        os.rename(os.path.join(self.mail, old), os.path.join(self.mail, new))
        self.trace(f"folder renamed {old} -> {new}")
        self.folders[self.folders.index(old)] = new
        self.made_folders[self.made_folders.index(old)] = new
        for mid in self.files:
            self.files[mid] = {new + p[len(old):] if p.startswith(old + "/") else p for p in self.files[mid]}

    def outside(self):
        path = os.path.join(os.path.dirname(self.mail), "outside")
        os.makedirs(path, exist_ok=True)
        return path

    def folder_out(self):
        """A folder moved out of the tree whole: its mail is gone."""
        candidates = self.unprotected_made_folders()
        if not candidates:
            return
        folder = self.random.choice(candidates)
        os.rename(os.path.join(self.mail, folder), os.path.join(self.outside(), f"out{self.serial}"))
        self.serial += 1
        self.forget_folder(folder)

    def folder_in(self):
        """A maildir filled elsewhere and moved into the tree whole: its
        files are there before any watch on it."""
        name = f"in{self.serial}"
        self.serial += 1
        staging = os.path.join(os.path.relpath(self.outside(), self.mail), name)
        self.maildir(staging)
        arrived = {}
        for _ in range(self.random.randint(1, 4)):
            mid = f"m{self.seed}-{self.serial + 1}@example.org"
            arrived[mid] = self.deliver(staging, self.message(mid), self.random.choice([None, "S", "FS"]))
        folder = f"made/{name}"
        os.makedirs(os.path.join(self.mail, "made"), exist_ok=True)
        os.rename(os.path.join(self.mail, staging), os.path.join(self.mail, folder))
        self.folders.append(folder)
        self.made_folders.append(folder)
        for mid, path in arrived.items():
            self.files[mid] = {folder + path[len(staging):]}


def run_generator(setup, seed, operations, while_running=None):
    """In a child as the watcher's user (files owned as a sync tool's
    would be); returns what it made, through a pipe. `while_running` is
    called in the parent once the child runs (threads start after the fork)."""
    reader, writer = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(reader)
        code = 0
        try:
            as_nobody()
            generator = Generator(setup.mail, seed)
            generator.folders = json.load(open(os.path.join(setup.dir, "folders.json")))
            state = json.load(open(os.path.join(setup.dir, "files.json")))
            generator.files = {k: set(v) for k, v in state["files"].items()}
            generator.serial = state["serial"]
            generator.protected = set(state["protected"])
            moved = 0
            for i in range(operations):
                generator.step()
                # The user's tagged messages change flags and move now and then.
                if i % 50 == 25:
                    for mid in sorted(generator.protected):
                        if mid in generator.files:
                            generator.flag_change(mid, sorted(generator.files[mid])[0])
                            generator.move(mid, sorted(generator.files[mid])[0])
                            moved += 1
                time.sleep(generator.random.choice([0, 0, 0.001, 0.005, 0.08]))
            os.write(writer, json.dumps({"ruled": sorted(generator.ruled), "moved": moved}).encode())
        except BaseException:  # reported by the parent
            code = 1
            os.write(writer, json.dumps({"error": traceback.format_exc()}).encode())
        finally:
            os._exit(code)
    os.close(writer)
    if while_running:
        while_running()
    chunks = []
    while True:
        chunk = os.read(reader, 65536)
        if not chunk:
            break
        chunks.append(chunk)
    os.close(reader)
    _, status = os.waitpid(pid, 0)
    result = json.loads(b"".join(chunks) or b"{}")
    check(status == 0 and "error" not in result, f"the generator failed: {result.get('error')}")
    return result


def prepare(setup, seed):
    """An initial tree indexed by notmuch new, with a few messages the
    user tagged; in a child as the watcher's user."""
    pid = os.fork()
    if pid == 0:
        try:
            as_nobody()
            generator = Generator(setup.mail, seed + 1000)
            generator.seed = seed
            generator.seed_tree(30)
            protected = sorted(mid for mid, paths in generator.files.items()
                               if any("/cur/" in p for p in paths))[:3]
            json.dump(generator.folders, open(os.path.join(setup.dir, "folders.json"), "w"))
            json.dump({"files": {k: sorted(v) for k, v in generator.files.items()}, "serial": generator.serial,
                       "protected": protected}, open(os.path.join(setup.dir, "files.json"), "w"))
            os._exit(0)
        except BaseException as error:
            print(f"prepare failed: {error!r}", file=sys.stderr)
            os._exit(1)
    _, status = os.waitpid(pid, 0)
    check(status == 0, "preparing the tree failed")
    setup.notmuch(setup.config, "new", "--quiet")
    protected = json.load(open(os.path.join(setup.dir, "files.json")))["protected"]
    for mid in protected:
        setup.notmuch(setup.config, "tag", f"+{USER_TAG}", "--", f"id:{mid}")
    return protected


def start_watcher(setup):
    return start_watcher_with(setup, ["--grace", str(GRACE)])


def start_watcher_with(setup, options, prefix=(), log_name="watch.log"):
    """`prefix`: a command the watcher runs under (a user namespace)."""
    log = os.path.join(setup.dir, log_name)
    errors = open(os.path.join(setup.dir, "watch.stderr"), "wb")
    process = subprocess.Popen(list(prefix) + [setup.binary, "watch", "--log", log] + options,
                               env=setup.env(setup.config), preexec_fn=as_nobody,
                               stdout=subprocess.DEVNULL, stderr=errors)
    deadline = time.time() + 30
    while time.time() < deadline:
        if process.poll() is not None:
            raise Failure(f"the watcher exited {process.returncode} at start: {stderr_of(setup)}")
        if os.path.exists(log) and "watch: started" in open(log).read():
            return process, log
        time.sleep(0.05)
    process.kill()
    raise Failure("the watcher did not start within 30 s")


def remove_unless_kept(setup):
    """The scratch tree goes, unless KEEP_WATCH_TEST asks to keep it for
    a look."""
    if os.environ.get("KEEP_WATCH_TEST"):
        print(f"kept {setup.dir}")
    else:
        shutil.rmtree(setup.dir, ignore_errors=True)


def stderr_of(setup):
    with open(os.path.join(setup.dir, "watch.stderr"), "rb") as f:
        return f.read().decode(errors="replace")


def fresh_view(setup):
    """What notmuch new makes of a copy of the tree."""
    copy = os.path.join(setup.dir, "copy")
    shutil.rmtree(copy, ignore_errors=True)
    shutil.copytree(setup.mail, copy, symlinks=True, ignore=shutil.ignore_patterns(".notmuch"))
    if DROPS_ROOT:
        for top, dirs, files in os.walk(copy):
            for name in [top] + [os.path.join(top, n) for n in dirs + files]:
                os.chown(name, NOBODY, NOBODY)
    config = setup.write_config(copy, rules=False)
    setup.notmuch(config, "new", "--quiet")
    return setup.state(config, copy)


def without(state, tags):
    return {mid: (t - tags, files) for mid, (t, files) in state.items()}


def differences(watched, fresh):
    lines = []
    for mid in sorted(set(watched) | set(fresh)):
        a, b = watched.get(mid), fresh.get(mid)
        if a != b:
            lines.append(f"  {mid}: watcher {describe(a)} / notmuch new {describe(b)}")
    return lines


def describe(entry):
    if entry is None:
        return "absent"
    return f"tags={sorted(entry[0])} files={sorted(entry[1])}"


def run_seed(binary, seed, operations):
    setup = Setup(binary, seed)
    watcher = None
    try:
        protected = prepare(setup, seed)
        watcher, log = start_watcher(setup)
        started = time.time()
        made = run_generator(setup, seed, operations)
        # Quiescence: removals wait out the grace period, then a burst commits.
        fresh = without(fresh_view(setup), {RULE_TAG, USER_TAG})
        deadline = time.time() + GRACE + 15
        while True:
            time.sleep(GRACE + 0.3)
            full = setup.state(setup.config, setup.mail)
            diff = differences(without(full, {RULE_TAG, USER_TAG}), fresh)
            if not diff or time.time() > deadline:
                break
        if watcher.poll() is not None:
            raise Failure(f"the watcher died (status {watcher.returncode}): {stderr_of(setup)}")
        check(not diff, f"seed {seed}: the watcher's database differs from notmuch new's view "
                        f"({len(diff)} messages):\n" + "\n".join(diff[:20]) + f"\n(log: {log})")
        for mid in made["ruled"]:
            if mid in full:
                check(RULE_TAG in full[mid][0], f"seed {seed}: {mid} arrived with the rule's subject, has no '{RULE_TAG}'")
        for mid in protected:
            if mid in full:
                check(USER_TAG in full[mid][0], f"seed {seed}: the user's tag on {mid} was lost in its moves")
        settled = time.time() - started
        # Directory mtimes of the last second are stored a second later,
        # as notmuch new would store them only on its next run.
        time.sleep(1.5)
        watcher.send_signal(signal.SIGTERM)
        status = watcher.wait(timeout=30)
        check(status == 0, f"seed {seed}: the watcher exited {status} on SIGTERM")
        before = setup.state(setup.config, setup.mail)
        report = setup.notmuch(setup.config, "new", "--verbose").strip()
        # A folder with no mail has no directory document, so notmuch new
        # lists it (and reads its non-mail files) every time, after itself too.
        check(report.endswith("No new mail.") and not any(word in report for word in ("Added", "Removed", "Detected")),
              f"seed {seed}: notmuch new after the watcher did something: {report!r}")
        check(setup.state(setup.config, setup.mail) == before, f"seed {seed}: notmuch new changed the database")
        print(f"seed {seed}: {operations} operations, {len(fresh)} messages, {len(made['ruled'])} ruled, "
              f"{made['moved']} user-tagged moves: database equal to notmuch new's ({settled:.1f} s)")
    finally:
        if watcher and watcher.poll() is None:
            watcher.kill()
            watcher.wait()
        remove_unless_kept(setup)


def seeded_command_line(usage, seeds, operations):
    """A seeded script's command line: the binary first, then --seeds
    1,2,.. and --operations N over the defaults given. Prints usage and
    exits 2 without a binary; skips when the binary is not built or the
    notmuch CLI is missing. Returns (args, binary, seeds, operations)."""
    args = sys.argv[1:]
    if not args:
        print(usage)
        sys.exit(2)
    binary = os.path.abspath(args[0])
    if "--seeds" in args:
        seeds = [int(s) for s in args[args.index("--seeds") + 1].split(",")]
    if "--operations" in args:
        operations = int(args[args.index("--operations") + 1])
    if not os.access(binary, os.X_OK):
        skip(f"{binary} is not built (make build)")
    if shutil.which("notmuch") is None:
        skip("the notmuch CLI is not installed")
    return args, binary, seeds, operations


def main():
    args, binary, seeds, operations = seeded_command_line(__doc__, [1, 2, 3, 4], 1000)
    jobs = 4
    if "--jobs" in args:
        jobs = max(1, int(args[args.index("--jobs") + 1]))
    if not os.path.isdir("/proc/sys/fs/inotify"):
        skip("no inotify on this kernel")
    if len(seeds) > 1 and jobs > 1:
        sys.exit(run_in_parallel(binary, seeds, operations, jobs))
    try:
        for seed in seeds:
            run_seed(binary, seed, operations)
    except Failure as failure:
        print(f"FAILED: {failure}")
        sys.exit(1)
    print(f"watch: {len(seeds)} passed, 0 failed")


def run_in_parallel(binary, seeds, operations, jobs):
    """Each seed in its own process (its own tree, database and watcher),
    `jobs` at a time: the generators mostly sleep between operations, so
    seeds side by side cost little more wall time than one, and the
    watchers then also run on a busy machine."""
    waiting = list(seeds)
    running = {}
    failed = []
    while waiting or running:
        while waiting and len(running) < jobs:
            seed = waiting.pop(0)
            running[seed] = subprocess.Popen([sys.executable, os.path.abspath(__file__), binary, "--seeds", str(seed),
                                              "--operations", str(operations), "--jobs", "1"],
                                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        seed = next(iter(running))
        output = running[seed].communicate()[0].decode(errors="replace")
        status = running.pop(seed).returncode
        for line in output.splitlines():
            if not line.startswith("watch: "):
                print(line, flush=True)
        if status == 77:
            return 77
        if status != 0:
            failed.append(seed)
    if failed:
        print(f"FAILED: seeds {failed} (see above)")
        return 1
    print(f"watch: {len(seeds)} seeds of {operations} operations passed, 0 failed")
    return 0


if __name__ == "__main__":
    main()
