#!/usr/bin/env python3
"""make bench: notmuch-deliver against its peers, side by side, same run.

Figures (medians over repeated runs, with ratios to each peer):
  1. one delivery, process start to exit, vs `notmuch insert`
     (+ where notmuch-deliver's time goes, from NOTMUCH_DELIVER_TIMINGS);
  2. a burst of concurrent deliverers vs the same burst of `notmuch insert`;
  3. mbox import vs `notmuch new` on the same messages pre-split (taking
     turns, medians), `mdeliver -M` + `notmuch new`, a `notmuch insert` loop;
  4. 100 rules (half header, half query) against none; and a Sieve script
     of the same 100 tests (vnd.notmuch for the queries) against none.
  5. the LMTP server: one message over an open connection, end of DATA to
     its reply, vs one `notmuch insert`; and to searchable (notmuch search);
  6. 8 LMTP clients x 250 messages vs the 8-way `notmuch insert` burst;
     then, in a burst of its own, end of DATA to searchable;
  7. postfix end to end (smtp-source, until all is searchable), local(8) as
     a personal server: mailbox_transport = lmtp: to the server, against
     postfix's floor (discard:), Dovecot's LMTP (to files, then notmuch
     new), `notmuch insert` and notmuch-deliver as mailbox_command;
  8. the server's RSS after 2,000 and 20,000 messages, and around a 50 MB one;
  9-13. the maildir watcher (Tests/Bench/watch_figures.py): arrival to
     searchable with rule tags vs `notmuch new` + `afew --tag --new`; a
     flag change in a 100,000-message folder, a burst into 200 folders and
     nothing changed vs `notmuch new`; idle CPU and RSS over many events.
Every figure runs on a copy of one database pre-filled with --messages
messages, so the numbers are steady state, not an empty database.
"""
import argparse
import base64
import concurrent.futures
import json
import os
import platform
import re
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from corpus import Corpus  # noqa: E402
import mta_harness  # noqa: E402
import watch_figures  # noqa: E402
from lmtp_harness import Client, Server, as_user, give_away  # noqa: E402


def log(text):
    print(text, file=sys.stderr, flush=True)


class Setup:
    """A mail root + database + config in `root`, copied from a cached base."""

    def __init__(self, root, config_name="notmuch-config"):
        self.root = root
        self.mail = os.path.join(root, "mail")
        self.config = os.path.join(root, config_name)

    def write_config(self, rules=None, ignore=None):
        text = f"[database]\npath={self.mail}\n[new]\ntags=unread;inbox;\n"
        if ignore:
            text += f"ignore={ignore}\n"
        text += "[maildir]\nsynchronize_flags=true\n"
        if rules:
            text += f"[deliver]\nrules={rules}\n"
        with open(self.config, "w") as f:
            f.write(text)

    def env(self, timings=None):
        env = dict(os.environ, NOTMUCH_CONFIG=self.config, HOME=self.root)
        env.pop("NOTMUCH_PROFILE", None)
        if timings:
            env["NOTMUCH_DELIVER_TIMINGS"] = timings
        return env

    def count(self):
        out = subprocess.run(["notmuch", "count", "*"], env=self.env(), capture_output=True, text=True, check=True)
        return int(out.stdout)


def base_database(work, messages):
    """Pre-filled once per size and kept under the bench folder."""
    base = Setup(os.path.join(work, f"base-{messages}"))
    marker = os.path.join(base.root, "ready")
    if os.path.exists(marker):
        return base
    shutil.rmtree(base.root, ignore_errors=True)
    for sub in ("tmp", "new", "cur"):
        os.makedirs(os.path.join(base.mail, sub))
    corpus = Corpus(seed=1, tag="base")
    for i in range(messages):
        with open(os.path.join(base.mail, "cur", f"base{i}:2,S"), "wb") as f:
            f.write(corpus.message(i))
    base.write_config()
    log(f"pre-filling a database with {messages} messages (once; cached in {base.root}) ...")
    started = time.monotonic()
    subprocess.run(["notmuch", "new", "--quiet"], env=base.env(), check=True)
    log(f"  done in {time.monotonic() - started:.0f} s")
    open(marker, "w").close()
    return base


def fresh_copy(work, base, name):
    setup = Setup(os.path.join(work, name))
    shutil.rmtree(setup.root, ignore_errors=True)
    shutil.copytree(base.root, setup.root, symlinks=True)
    setup.write_config()
    return setup


def timed(command, data, env):
    started = time.perf_counter()
    result = subprocess.run(command, input=data, env=env, capture_output=True)
    return (time.perf_counter() - started) * 1000, result.returncode, result.stderr


def median(values):
    return statistics.median(values) if values else float("nan")


def children_cpu_ms():
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (usage.ru_utime + usage.ru_stime) * 1000


def figure_single(work, base, deliver, runs):
    setup = fresh_copy(work, base, "single")
    corpus = Corpus(seed=2, tag="single")
    timings = os.path.join(setup.root, "timings.jsonl")
    ours, peer, ours_cpu, peer_cpu = [], [], [], []
    for i in range(runs):
        # Alternate, so drift in the machine's state hits both alike.
        before = children_cpu_ms()
        ms, rc, err = timed([deliver], corpus.envelope(2 * i) + corpus.message(2 * i), setup.env(timings))
        assert rc == 0, err
        ours.append(ms)
        ours_cpu.append(children_cpu_ms() - before)
        before = children_cpu_ms()
        ms, rc, err = timed(["notmuch", "insert"], corpus.message(2 * i + 1), setup.env())
        assert rc == 0, err
        peer.append(ms)
        peer_cpu.append(children_cpu_ms() - before)
    phases = {}
    with open(timings) as f:
        for line in f:
            for key, value in json.loads(line).items():
                phases.setdefault(key, []).append(value)
    breakdown = {key: median(values) for key, values in phases.items()}
    breakdown["process start and exit"] = median(ours) - sum(breakdown.values())
    # CPU (user + system, both threads) tells the start-up and own work
    # apart from the waits for the disk, which both programs share.
    return {"notmuch-deliver ms": median(ours), "notmuch insert ms": median(peer),
            "ratio": median(ours) / median(peer), "runs": runs, "breakdown ms": breakdown,
            "notmuch-deliver cpu ms": median(ours_cpu), "notmuch insert cpu ms": median(peer_cpu)}


def cli_burst(work, base, command, corpus_tag, workers, per_worker):
    """`workers` senders each running `command` once per message, `per_worker` times."""
    setup = fresh_copy(work, base, f"burst-{corpus_tag}")
    corpus = Corpus(seed=3, tag=corpus_tag)
    before = setup.count()

    def worker(w):
        failures = 0
        for j in range(per_worker):
            _, rc, _ = timed(command, corpus.message(w * per_worker + j), setup.env())
            failures += rc != 0
        return failures

    started = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
        failures = sum(pool.map(worker, range(workers)))
    wall = time.perf_counter() - started
    result = {"wall s": wall, "failures": failures, "indexed": setup.count() - before,
              "messages": workers * per_worker}
    shutil.rmtree(setup.root, ignore_errors=True)
    return result


def figure_burst(work, base, deliver, workers, per_worker):
    results = {}
    for name, command, corpus_tag in (("notmuch-deliver", [deliver], "burstd"),
                                      ("notmuch insert", ["notmuch", "insert"], "bursti")):
        results[name] = cli_burst(work, base, command, corpus_tag, workers, per_worker)
    results["speedup vs notmuch insert"] = results["notmuch insert"]["wall s"] / results["notmuch-deliver"]["wall s"]
    return results


def write_mbox(path, corpus, count):
    """An mboxrd archive of `count` corpus messages (cached: the corpus is deterministic)."""
    if os.path.exists(path):
        return
    with open(path + ".part", "wb") as f:
        for i in range(count):
            lines = corpus.message(i).split(b"\n")
            quoted = [b">" + line if line.lstrip(b">").startswith(b"From ") else line for line in lines]
            f.write(corpus.envelope(i) + b"\n".join(quoted) + b"\n")
    os.rename(path + ".part", path)


def empty_setup(work, name):
    setup = Setup(os.path.join(work, name))
    shutil.rmtree(setup.root, ignore_errors=True)
    for sub in ("tmp", "new", "cur"):
        os.makedirs(os.path.join(setup.mail, sub))
    setup.write_config()
    subprocess.run(["notmuch", "new", "--quiet"], env=setup.env(), check=True)
    return setup


def peak_rss_kib(command, env):
    """Runs `command` under GNU time; returns (seconds, peak RSS in KiB)."""
    started = time.perf_counter()
    out = subprocess.run(["/usr/bin/time", "-f", "%M"] + command, env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return time.perf_counter() - started, int(out.stderr.strip().splitlines()[-1])


def figure_import(work, deliver, messages, large, sample, repeats):
    corpus = Corpus(seed=6, tag="mbox")
    archive = os.path.join(work, f"archive-{messages}.mbox")
    write_mbox(archive, corpus, messages)
    results = {"messages": messages, "runs": repeats}

    # Ours and notmuch new (over the same messages, already split into
    # files) take turns, `repeats` times: the machine's speed drifts, and
    # one run of each, minutes apart, can differ by a third.
    ours_rates, new_rates, rss = [], [], 0
    for _ in range(repeats):
        ours = empty_setup(work, "import-ours")
        seconds, run_rss = peak_rss_kib([deliver, "import", archive], ours.env())
        assert ours.count() == messages
        ours_rates.append(messages / seconds)
        rss = max(rss, run_rss)
        shutil.rmtree(ours.root, ignore_errors=True)

        split = empty_setup(work, "import-new")
        for i in range(messages):
            with open(os.path.join(split.mail, "cur", f"m{i}:2,"), "wb") as f:
                f.write(corpus.message(i))
        started = time.perf_counter()
        subprocess.run(["notmuch", "new", "--quiet"], env=split.env(), check=True)
        new_rates.append(messages / (time.perf_counter() - started))
        shutil.rmtree(split.root, ignore_errors=True)
    results["notmuch-deliver import msg/s"] = median(ours_rates)
    results["notmuch new (pre-split) msg/s"] = median(new_rates)
    results["each run msg/s"] = {"notmuch-deliver": ours_rates, "notmuch new": new_rates}
    results["peak RSS KiB"] = {str(messages): rss}

    # mblaze's mdeliver -M splits the archive, then notmuch new indexes it.
    if shutil.which("mdeliver"):
        mblaze = empty_setup(work, "import-mblaze")
        started = time.perf_counter()
        with open(archive, "rb") as f:
            subprocess.run(["mdeliver", "-M", mblaze.mail], stdin=f, check=True)
        subprocess.run(["notmuch", "new", "--quiet"], env=mblaze.env(), check=True)
        results["mdeliver -M + notmuch new msg/s"] = messages / (time.perf_counter() - started)

    # A notmuch insert loop, on a sample (one process and one commit each).
    loop = empty_setup(work, "import-insert")
    started = time.perf_counter()
    for i in range(sample):
        subprocess.run(["notmuch", "insert"], input=corpus.message(i), env=loop.env(), check=True)
    results["notmuch insert loop msg/s"] = sample / (time.perf_counter() - started)

    results["ratio vs notmuch new"] = results["notmuch-deliver import msg/s"] / results["notmuch new (pre-split) msg/s"]
    results["ratio vs insert loop"] = results["notmuch-deliver import msg/s"] / results["notmuch insert loop msg/s"]

    if large:
        big_archive = os.path.join(work, f"archive-{large}.mbox")
        write_mbox(big_archive, corpus, large)
        big = empty_setup(work, "import-large")
        _, big_rss = peak_rss_kib([deliver, "import", big_archive], big.env())
        results["peak RSS KiB"][str(large)] = big_rss
        results["RSS growth"] = big_rss / rss - 1
        shutil.rmtree(big.root, ignore_errors=True)
    shutil.rmtree(loop.root, ignore_errors=True)
    return results


def rules_file(path, count):
    """Half header rules, half query rules, none of which stops."""
    lines = ["# generated by bench.py"]
    for i in range(count // 2):
        lines.append(f"+hdr{i} -- header:X-Bench-{i}~/^on$/ or header:List-Id~/<nolist{i}\\./")
    for i in range(count - count // 2):
        lines.append(f"+qry{i} -- from:nobody{i}@example.org or (subject:nothing{i} and tag:inbox)")
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")


def sieve_file(path, count):
    """The rules of rules_file as one Sieve script: the same tests, the same tags."""
    lines = ["# generated by bench.py", 'require ["regex", "vnd.notmuch"];']
    for i in range(count // 2):
        lines.append(f'if anyof (header :regex "X-Bench-{i}" "^on$", header :regex "List-Id" "<nolist{i}\\\\.") '
                     f'{{ tag "+hdr{i}"; }}')
    for i in range(count - count // 2):
        lines.append(f'if notmuch "from:nobody{i}@example.org or (subject:nothing{i} and tag:inbox)" {{ tag "+qry{i}"; }}')
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")


def figure_rules(work, base, deliver, runs, count=100):
    setup = fresh_copy(work, base, "rules")
    path = os.path.join(setup.root, "bench.rules")
    rules_file(path, count)
    script = os.path.join(setup.root, "bench.sieve")
    sieve_file(script, count)
    for checked in (path, script):
        check = subprocess.run([deliver, "check-rules", checked], capture_output=True, text=True)
        assert check.returncode == 0, check.stdout + check.stderr
    corpus = Corpus(seed=4, tag="rules")
    without, with_rules, with_sieve = [], [], []
    for i in range(runs):
        ms, rc, err = timed([deliver, "--no-rules"], corpus.message(3 * i), setup.env())
        assert rc == 0, err
        without.append(ms)
        ms, rc, err = timed([deliver, "--rules", path], corpus.message(3 * i + 1), setup.env())
        assert rc == 0, err
        with_rules.append(ms)
        # No rules file is configured: the script alone.
        ms, rc, err = timed([deliver, "--sieve", script], corpus.message(3 * i + 2), setup.env())
        assert rc == 0, err
        with_sieve.append(ms)
    return {"rules": count, "without ms": median(without), "with ms": median(with_rules),
            "added": median(with_rules) / median(without) - 1,
            "with sieve ms": median(with_sieve), "sieve added": median(with_sieve) / median(without) - 1,
            "runs": runs}


# --- The LMTP server (figures 5-8) ----------------------------------------

LMTP_RECIPIENT = "me@bench.example"


def lmtp_copy(work, base, name):
    """A copy of the pre-filled database, owned by the server's user."""
    setup = fresh_copy(work, base, name)
    os.chmod(setup.root, 0o755)
    give_away(setup.root)
    return setup


def process_cpu_ms(pid):
    """User + system CPU of a live process, in ms."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) * 1000 / os.sysconf("SC_CLK_TCK")


MESSAGE_ID = re.compile(rb"^Message-ID:[ \t]*<([^>]+)>", re.MULTILINE | re.IGNORECASE)


def message_id(data):
    return MESSAGE_ID.search(data).group(1).decode()


def searchable(setup, ids):
    """The ids among `ids` that `notmuch search` finds (one process for
    up to 50 of them)."""
    found = set()
    ids = list(ids)
    for start in range(0, len(ids), 50):
        query = " or ".join(f'id:"{i}"' for i in ids[start:start + 50])
        out = subprocess.run(["notmuch", "search", "--output=messages", "--", query], env=setup.env(),
                             capture_output=True, text=True)
        # A read that meets a commit fails now and then ("revision being
        # read has been discarded"): the next round asks again.
        if out.returncode == 0:
            found.update(line[3:] for line in out.stdout.splitlines() if line.startswith("id:"))
    return found


def latency_to_searchable(setup, msgid, data_end, timeout=60):
    """(seconds from the end of DATA until `notmuch search` finds `msgid`,
    searches made). Measured when the search that finds it returns: the
    figure includes one search, reported apart as the probe's cost."""
    deadline = time.monotonic() + timeout
    searches = 0
    while time.monotonic() < deadline:
        searches += 1
        if searchable(setup, [msgid]):
            return time.perf_counter() - data_end, searches
    return float("inf"), searches


class SearchWatcher(threading.Thread):
    """During a burst: the messages replied to, searched for over and over
    (every pending one in each round) until found; the latency is from each
    message's end of DATA to the end of the round that found it."""

    def __init__(self, setup):
        super().__init__(daemon=True)
        self.setup = setup
        self.pending = {}
        self.latencies = []
        self.lock = threading.Lock()
        self.finished = threading.Event()

    def add(self, msgid, data_end):
        with self.lock:
            self.pending[msgid] = data_end

    def run(self):
        while True:
            with self.lock:
                ids = list(self.pending)
            if not ids:
                if self.finished.is_set():
                    return
                time.sleep(0.005)
                continue
            found = searchable(self.setup, ids)
            now = time.perf_counter()
            with self.lock:
                for msgid in found:
                    self.latencies.append(now - self.pending.pop(msgid))

    def stop(self, timeout=120):
        """Waits (at most `timeout`) for the pending messages to be found."""
        self.finished.set()
        self.join(timeout)
        with self.lock:
            missing = len(self.pending)
            self.pending.clear()
        return missing


def latency_summary(seconds):
    """Median and 99th percentile, in ms."""
    ms = sorted(s * 1000 for s in seconds)
    if not ms:
        return {"median ms": float("nan"), "p99 ms": float("nan"), "count": 0}
    # inclusive: within the samples, not extrapolated past the largest.
    p99 = statistics.quantiles(ms, n=100, method="inclusive")[98] if len(ms) > 1 else ms[0]
    return {"median ms": median(ms), "p99 ms": p99, "max ms": ms[-1], "count": len(ms)}


def figure_lmtp_single(work, base, deliver, runs):
    """5. End of DATA to the reply over an open connection, against one
    `notmuch insert` (process start to exit), taking turns."""
    ours_setup = lmtp_copy(work, base, "lmtp-single")
    peer = fresh_copy(work, base, "lmtp-single-insert")
    corpus = Corpus(seed=5, tag="lmtps")
    server = Server(deliver, ours_setup.root, ours_setup.env()).start()
    try:
        client = Client(server.socket)
        ours, peer_ms, peer_cpu, queued, failures = [], [], [], 0, 0
        cpu_before = process_cpu_ms(server.pid)
        latencies, probe_ms, searches = [], [], []
        for i in range(runs):
            data = corpus.message(2 * i)
            replies, seconds = client.send("sender@bench.example", [LMTP_RECIPIENT], data)
            code, text = replies[0]
            failures += code != 250
            queued += "(queued)" in text
            ours.append(seconds * 1000)
            # Latency to searchable at idle: searched for right after the
            # reply, outside the timed window; then one search more, of a
            # message found already, for what a search itself takes.
            if code == 250:
                latency, tries = latency_to_searchable(ours_setup, message_id(data), client.data_end)
                latencies.append(latency)
                searches.append(tries)
                probe_started = time.perf_counter()
                searchable(ours_setup, [message_id(data)])
                probe_ms.append((time.perf_counter() - probe_started) * 1000)
            before = children_cpu_ms()
            ms, rc, err = timed(["notmuch", "insert"], corpus.message(2 * i + 1), peer.env())
            assert rc == 0, err
            peer_ms.append(ms)
            peer_cpu.append(children_cpu_ms() - before)
        server_cpu = (process_cpu_ms(server.pid) - cpu_before) / runs
        client.close()
        rss = server.status("VmRSS")
    finally:
        server.stop()
    indexed = ours_setup.count() - base.count()
    for setup in (ours_setup, peer):
        shutil.rmtree(setup.root, ignore_errors=True)
    return {"lmtp ms": median(ours), "notmuch insert ms": median(peer_ms), "ratio": median(ours) / median(peer_ms),
            "runs": runs, "lmtp quartiles ms": statistics.quantiles(ours, n=4),
            "notmuch insert quartiles ms": statistics.quantiles(peer_ms, n=4),
            "server cpu ms per message": server_cpu, "notmuch insert cpu ms": median(peer_cpu),
            "failures": failures, "replied queued": queued, "indexed": indexed, "server RSS KiB": rss,
            "latency to searchable": latency_summary(latencies), "search probe ms": median(probe_ms),
            "searches until found": {"median": median(searches), "max": max(searches, default=0)}}


def lmtp_burst(server, workers, per_worker, corpus, watcher=None):
    """`workers` clients, one connection each, `per_worker` messages each;
    each message replied to with 250 is handed to `watcher` if given.
    Returns (wall s to the last reply, temporary failures, other failures,
    replies saying queued, end-of-DATA-to-reply seconds, start time)."""
    def worker(w):
        client = Client(server.socket)
        tempfails, others, queued, waits = 0, 0, 0, []
        for j in range(per_worker):
            data = corpus.message(w * per_worker + j)
            replies, seconds = client.send("sender@bench.example", [LMTP_RECIPIENT], data)
            code, text = replies[0]
            if watcher and code == 250:
                watcher.add(message_id(data), client.data_end)
            tempfails += 400 <= code < 500
            others += code >= 500
            queued += "(queued)" in text
            waits.append(seconds)
        client.close()
        return tempfails, others, queued, waits

    started = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
        results = list(pool.map(worker, range(workers)))
    wall = time.perf_counter() - started
    return (wall, sum(r[0] for r in results), sum(r[1] for r in results), sum(r[2] for r in results),
            [w for r in results for w in r[3]], started)


def wait_until_indexed(setup, expected, timeout=600):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if setup.count() >= expected:
            return True
        time.sleep(0.1)
    return False


def figure_lmtp_burst(work, base, deliver, workers, per_worker, turns):
    """6. 8 LMTP clients x 250 messages against the 8-way `notmuch insert`
    burst of figure 2, in turns."""
    turns_out = []
    for turn in range(turns):
        setup = lmtp_copy(work, base, "lmtp-burst")
        before = setup.count()
        server = Server(deliver, setup.root, setup.env()).start()
        cpu_before = process_cpu_ms(server.pid)
        try:
            wall, tempfails, others, queued, waits, started = lmtp_burst(server, workers, per_worker,
                                                                         Corpus(seed=6, tag=f"lmtpb{turn}"))
            # A reply that says "queued" is safe but not yet indexed: the
            # figure is then the time until everything is.
            if queued:
                wait_until_indexed(setup, before + workers * per_worker)
                wall = time.perf_counter() - started
            server_cpu = process_cpu_ms(server.pid) - cpu_before
        finally:
            server.stop()
        indexed = setup.count() - before
        shutil.rmtree(setup.root, ignore_errors=True)
        peer = cli_burst(work, base, ["notmuch", "insert"], f"lmtpi{turn}", workers, per_worker)
        turns_out.append({"lmtp wall s": wall, "lmtp tempfails": tempfails, "lmtp other failures": others,
                          "lmtp replied queued": queued, "lmtp indexed": indexed,
                          "lmtp reply median ms": median(waits) * 1000,
                          "lmtp reply max ms": max(waits) * 1000,
                          "server cpu s": server_cpu / 1000,
                          "notmuch insert wall s": peer["wall s"], "notmuch insert failures": peer["failures"],
                          "notmuch insert indexed": peer["indexed"],
                          "speedup": peer["wall s"] / wall})
        log(f"   turn {turn + 1}: LMTP {wall:.1f} s, notmuch insert {peer['wall s']:.1f} s")
    latency = burst_latency(work, base, deliver, workers, per_worker)
    return {"messages": workers * per_worker, "turns": turns_out, "latency to searchable": latency,
            "lmtp wall s": median([t["lmtp wall s"] for t in turns_out]),
            "notmuch insert wall s": median([t["notmuch insert wall s"] for t in turns_out]),
            "speedup": median([t["speedup"] for t in turns_out]),
            "lmtp tempfails": sum(t["lmtp tempfails"] for t in turns_out)}


def burst_latency(work, base, deliver, workers, per_worker):
    """Latency to searchable in the burst of figure 6, in a burst of its
    own after the timed turns: the searches that watch for the messages
    take a good part of a CPU, which would slow the timed burst."""
    setup = lmtp_copy(work, base, "lmtp-latency")
    server = Server(deliver, setup.root, setup.env()).start()
    watcher = SearchWatcher(setup)
    watcher.start()
    try:
        lmtp_burst(server, workers, per_worker, Corpus(seed=6, tag="lmtpl"), watcher)
        missing = watcher.stop()
    finally:
        watcher.finished.set()
        server.stop()
    shutil.rmtree(setup.root, ignore_errors=True)
    result = latency_summary(watcher.latencies)
    result["not found"] = missing
    log(f"   latency to searchable in the burst: median {result['median ms']:.0f} ms, "
        f"p99 {result['p99 ms']:.0f} ms")
    return result


# --- Figure 7: postfix end to end, the user's view -------------------------

# What local(8) delivers with, in figure 7: (name, label). Each gets a fresh
# copy of the database in the bench user's home; turns take them in a
# rotating order, so drift in the machine's speed hits all alike.
POSTFIX_VARIANTS = [
    ("discard", "postfix alone, mailbox_transport = discard: (its floor)"),
    ("dovecot", "Dovecot's LMTP, to files (not indexed)"),
    ("lmtp", "notmuch-deliver lmtp, mailbox_transport = lmtp:"),
    ("insert", "notmuch insert as mailbox_command"),
    ("deliver", "notmuch-deliver as mailbox_command"),
]


def home_copy(work, base, uid, gid):
    """A copy of the pre-filled database as the bench user's home: the
    maildir is ~/mail (where Dovecot's mail_location puts it too), the
    config ~/.notmuch-config, found as notmuch and notmuch-deliver find
    it for a user; Dovecot's index files in ~/mail are ignored."""
    home = Setup(os.path.join(work, "postfix-home"), config_name=".notmuch-config")
    shutil.rmtree(home.root, ignore_errors=True)
    shutil.copytree(base.root, home.root, symlinks=True)
    home.write_config(ignore="/^dovecot/")
    # postfix's lmtp(8) (user postfix) reaches the server's socket in it.
    os.chmod(home.root, 0o755)
    give_away(home.root, uid, gid)
    return home


def wait_for(condition, deadline):
    """Polls `condition` until true (returns True) or the deadline."""
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return False


def postfix_variant(variant, work, base, deliver, postfix, dovecot, user, messages, sessions, timeout=1200):
    """One of POSTFIX_VARIANTS: `messages` injected with smtp-source, timed
    from the start of the injection until every message is searchable
    (for Dovecot: a file in ~/mail/new; for discard: logged as sent), or
    bounced. The end is seen by reading postfix's log until it has all
    messages delivered, then checking the result (notmuch count, the
    files), so the polling costs every variant alike and next to nothing."""
    uid, gid = user
    home = home_copy(work, base, uid, gid)
    before = base.count()
    server = None
    result = {}
    try:
        if variant == "discard":
            postfix.deliver_with(transport="discard:")
        elif variant == "dovecot":
            dovecot.start()
            dovecot.prime(mta_harness.BENCH_USER)
            postfix.deliver_with(transport=f"lmtp:unix:{dovecot.socket}")
        elif variant == "lmtp":
            server = Server(deliver, home.root, home.env(), uid=uid, gid=gid).start()
            postfix.deliver_with(transport=f"lmtp:unix:{server.socket}")
            cpu_before = process_cpu_ms(server.pid)
        elif variant == "insert":
            postfix.deliver_with(command=(shutil.which("notmuch") or "/usr/bin/notmuch") + " insert")
        elif variant == "deliver":
            postfix.deliver_with(command=deliver)
        log_tail = mta_harness.LogTail(postfix.log, mta_harness.RECIPIENT)
        new = os.path.join(home.mail, "new")

        def logged_all():
            counts = log_tail.poll()
            return counts["sent"] + counts["bounced"] >= messages

        def done():
            if not logged_all():
                return False
            bounced = log_tail.counts["bounced"]
            if variant == "discard":
                return True
            if variant == "dovecot":
                return len(os.listdir(new)) + bounced >= messages
            try:
                return home.count() - before + bounced >= messages
            except subprocess.CalledProcessError:
                return False

        started = time.perf_counter()
        postfix.inject(messages, sessions)
        result["injected s"] = time.perf_counter() - started
        result["complete"] = wait_for(done, time.monotonic() + timeout)
        result["s"] = time.perf_counter() - started
        if server:
            result["server cpu s"] = (process_cpu_ms(server.pid) - cpu_before) / 1000
        result.update(log_tail.poll())
    finally:
        if server:
            server.stop()
        dovecot.stop()
    postfix.clear_queue()
    if variant == "dovecot":
        result["files"] = len(os.listdir(os.path.join(home.mail, "new")))
        # What the user then needs to search the mail: `notmuch new`, as
        # the mailbox owner.
        started = time.perf_counter()
        subprocess.run(as_user(uid, gid) + ["env", f"HOME={home.root}", "notmuch", "new", "--quiet"],
                       env=home.env(), check=True, capture_output=True)
        result["notmuch new s"] = time.perf_counter() - started
    if variant != "discard":
        result["indexed"] = home.count() - before
    shutil.rmtree(home.root, ignore_errors=True)
    return result


def figure_lmtp_postfix(work, base, deliver, messages, sessions, turns, variants=None):
    """7. smtp-source into a postfix of the bench's own, until all is
    searchable: the documented personal setups (local(8) with
    mailbox_transport = lmtp: to the server, or with mailbox_command)
    against postfix's floor (discard:) and Dovecot's LMTP (to files, then
    `notmuch new`), the variants taking turns."""
    reason = mta_harness.unavailable()
    if reason:
        return {"skipped": reason}
    chosen = [name for name, _ in POSTFIX_VARIANTS if variants is None or name in variants]
    skipped = {}
    if "dovecot" in chosen:
        reason = mta_harness.dovecot_unavailable()
        if reason:
            skipped["dovecot"] = reason
            chosen.remove("dovecot")
            log(f"   Dovecot skipped: {reason}")
    turns_out = []
    with mta_harness.ExclusiveRun():
        user = mta_harness.bench_user(os.path.join(work, "postfix-home"))
        postfix = mta_harness.PostfixInstance(work)
        dovecot = mta_harness.DovecotInstance(work)
        try:
            postfix.start()
            for turn in range(turns):
                order = chosen[turn % len(chosen):] + chosen[:turn % len(chosen)]
                results = {}
                for variant in order:
                    results[variant] = postfix_variant(variant, work, base, deliver, postfix, dovecot, user,
                                                       messages, sessions)
                    x = results[variant]
                    extra = f" + notmuch new {x['notmuch new s']:.1f} s" if "notmuch new s" in x else ""
                    log(f"   turn {turn + 1}: {variant} {x['s']:.1f} s{extra} "
                        f"(sent {x['sent']}, deferred {x['deferred']}, bounced {x['bounced']}"
                        f"{'' if x['complete'] else ', INCOMPLETE'})")
                turns_out.append(results)
        finally:
            dovecot.stop()
            postfix.stop()
            shutil.rmtree(os.path.join(work, "postfix-home"), ignore_errors=True)
            shutil.rmtree(dovecot.directory, ignore_errors=True)
    return postfix_summary(turns_out, chosen, skipped, messages, sessions)


def postfix_summary(turns_out, chosen, skipped, messages, sessions):
    """Medians over the turns: seconds of each variant, and the ratios of
    the LMTP server to each peer (per turn, then the median)."""
    summary = {"messages": messages, "sessions": sessions, "turns": turns_out, "variants": chosen,
               "skipped variants": skipped, "s": {}, "ratios": {}}
    for variant in chosen:
        summary["s"][variant] = median([t[variant]["s"] for t in turns_out])
    if "dovecot" in chosen:
        summary["s"]["dovecot notmuch new"] = median([t["dovecot"]["notmuch new s"] for t in turns_out])
        summary["s"]["dovecot + notmuch new"] = median([t["dovecot"]["s"] + t["dovecot"]["notmuch new s"]
                                                        for t in turns_out])
    peers = {"dovecot": lambda t: t["dovecot"]["s"],
             "dovecot + notmuch new": lambda t: t["dovecot"]["s"] + t["dovecot"]["notmuch new s"],
             "discard": lambda t: t["discard"]["s"],
             "insert": lambda t: t["insert"]["s"],
             "deliver": lambda t: t["deliver"]["s"]}
    if "lmtp" in chosen:
        for peer, seconds in peers.items():
            if peer.split(" ")[0] in chosen:
                summary["ratios"][peer] = median([t["lmtp"]["s"] / seconds(t) for t in turns_out])
        summary["server cpu s"] = median([t["lmtp"]["server cpu s"] for t in turns_out])
    for key in ("deferred", "bounced"):
        summary[key] = {variant: sum(t[variant][key] for t in turns_out) for variant in chosen}
    summary["incomplete"] = sum(not t[v]["complete"] for t in turns_out for v in chosen)
    return summary


def big_message(size):
    """A message of about `size` bytes: a text part and a base64 attachment."""
    raw = os.urandom(size * 3 // 4)
    encoded = base64.encodebytes(raw)
    return (b"From: Big <big@bench.example>\nTo: me@bench.example\nSubject: a large attachment\n"
            b"Message-ID: <big." + str(size).encode() + b"@bench.example>\nMIME-Version: 1.0\n"
            b"Content-Type: multipart/mixed; boundary=\"b\"\n\n--b\nContent-Type: text/plain\n\nSee attached.\n"
            b"--b\nContent-Type: application/octet-stream; name=\"big.bin\"\nContent-Transfer-Encoding: base64\n\n"
            + encoded + b"--b--\n")


def figure_lmtp_rss(work, deliver, workers, small, large, big_size):
    """8. The server's RSS after `small` and after `large` messages (8
    clients), then around one message of `big_size` bytes."""
    setup = empty_setup(work, "lmtp-rss")
    os.chmod(setup.root, 0o755)
    give_away(setup.root)
    server = Server(deliver, setup.root, setup.env(),
                    extra=["--max-message-size", str(big_size + (16 << 20))]).start()
    corpus = Corpus(seed=8, tag="rss")
    results = {"RSS KiB": {}, "HWM KiB": {}}
    try:
        results["RSS KiB"]["0"] = server.status("VmRSS")
        sent = 0
        for target in (small, large):
            count = target - sent
            per = count // workers

            def worker(w, offset=sent, per=per):
                client = Client(server.socket)
                failures = 0
                for j in range(per):
                    replies, _ = client.send("sender@bench.example", [LMTP_RECIPIENT],
                                             corpus.message(offset + w * per + j))
                    failures += replies[0][0] != 250
                client.close()
                return failures

            with concurrent.futures.ThreadPoolExecutor(workers) as pool:
                failures = sum(pool.map(worker, range(workers)))
            sent += per * workers
            assert failures == 0, f"{failures} failures"
            time.sleep(1)
            results["RSS KiB"][str(sent)] = server.status("VmRSS")
            results["HWM KiB"][str(sent)] = server.status("VmHWM")
            log(f"   after {sent} messages: RSS {results['RSS KiB'][str(sent)] / 1024:.1f} MiB")
        results["growth"] = results["RSS KiB"][str(sent)] / results["RSS KiB"][str(small)] - 1
        before, hwm_before = server.status("VmRSS"), server.status("VmHWM")
        data = big_message(big_size)
        client = Client(server.socket, timeout=600)
        replies, seconds = client.send("sender@bench.example", [LMTP_RECIPIENT], data)
        client.close()
        time.sleep(1)
        results["big message bytes"] = len(data)
        results["big message reply"] = replies[0][0]
        results["big message s"] = seconds
        results["big RSS before KiB"], results["big HWM before KiB"] = before, hwm_before
        results["big RSS after KiB"], results["big HWM after KiB"] = server.status("VmRSS"), server.status("VmHWM")
        results["big RSS added KiB"] = results["big RSS after KiB"] - before
        results["big HWM added KiB"] = results["big HWM after KiB"] - hwm_before
        results["threads"] = server.threads()
    finally:
        server.stop()
    results["indexed"] = setup.count()
    shutil.rmtree(setup.root, ignore_errors=True)
    return results


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--deliver", default=".build/release/notmuch-deliver")
    parser.add_argument("--work", default=".build-bench")
    parser.add_argument("--messages", type=int, default=10_000, help="pre-filled database size")
    parser.add_argument("--runs", type=int, default=101, help="repetitions for medians")
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--per-worker", type=int, default=250)
    parser.add_argument("--out", default="bench-results.json")
    parser.add_argument("--only", choices=["single", "burst", "import", "rules", "lmtp-single", "lmtp-burst",
                                           "lmtp-postfix", "lmtp-rss", "watch", "watch-arrival", "watch-flag",
                                           "watch-burst", "watch-nothing", "watch-idle"],
                        help="run one figure (watch: the watcher's five)")
    parser.add_argument("--import-messages", type=int, default=10_000)
    parser.add_argument("--import-large", type=int, default=50_000, help="archive size for the RSS check (0: skip)")
    parser.add_argument("--insert-sample", type=int, default=200)
    parser.add_argument("--import-runs", type=int, default=3,
                        help="turns of the import and notmuch new, for medians")
    parser.add_argument("--lmtp-turns", type=int, default=1,
                        help="turns of figures 6 and 7 (each against its peer), for medians")
    parser.add_argument("--postfix-messages", type=int, default=2000)
    parser.add_argument("--postfix-sessions", type=int, default=8, help="smtp-source's parallel sessions")
    parser.add_argument("--postfix-variants", default=",".join(name for name, _ in POSTFIX_VARIANTS),
                        help="what local(8) delivers with in figure 7, comma-separated, from: "
                        + ", ".join(name for name, _ in POSTFIX_VARIANTS))
    parser.add_argument("--rss-small", type=int, default=2000)
    parser.add_argument("--rss-large", type=int, default=20_000)
    parser.add_argument("--rss-big-message", type=int, default=50_000_000, help="bytes of the large message")
    watch_figures.add_arguments(parser)
    args = parser.parse_args()
    # SIGTERM (make interrupted, a kill) unwinds like ^C, so the finally
    # blocks stop the servers, postfix and Dovecot, and remove their trees.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    unknown = set(args.postfix_variants.split(",")) - {name for name, _ in POSTFIX_VARIANTS}
    if unknown:
        parser.error(f"--postfix-variants: unknown {', '.join(sorted(unknown))}")
    deliver = os.path.abspath(args.deliver)
    os.makedirs(args.work, exist_ok=True)
    work = os.path.abspath(args.work)

    base = base_database(work, args.messages)
    results = {"machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                           "notmuch": subprocess.run(["notmuch", "--version"], capture_output=True,
                                                     text=True).stdout.strip()},
               "database messages": args.messages}
    if args.only in (None, "single"):
        log("1. one delivery ...")
        results["single"] = figure_single(work, base, deliver, args.runs)
    if args.only in (None, "burst"):
        log("2. burst ...")
        results["burst"] = figure_burst(work, base, deliver, args.workers, args.per_worker)
    if args.only in (None, "import"):
        log("3. import ...")
        results["import"] = figure_import(work, deliver, args.import_messages, args.import_large, args.insert_sample,
                                          args.import_runs)
    if args.only in (None, "rules"):
        log("4. rules ...")
        results["rules"] = figure_rules(work, base, deliver, args.runs)
    if args.only in (None, "lmtp-single"):
        log("5. LMTP, one message ...")
        results["lmtp-single"] = figure_lmtp_single(work, base, deliver, args.runs)
    if args.only in (None, "lmtp-burst"):
        log("6. LMTP burst ...")
        results["lmtp-burst"] = figure_lmtp_burst(work, base, deliver, args.workers, args.per_worker,
                                                  args.lmtp_turns)
    if args.only in (None, "lmtp-postfix"):
        log("7. postfix end to end ...")
        results["lmtp-postfix"] = figure_lmtp_postfix(work, base, deliver, args.postfix_messages,
                                                      args.postfix_sessions, args.lmtp_turns,
                                                      args.postfix_variants.split(","))
    if args.only in (None, "lmtp-rss"):
        log("8. LMTP server RSS ...")
        results["lmtp-rss"] = figure_lmtp_rss(work, deliver, args.workers, args.rss_small, args.rss_large,
                                              args.rss_big_message)
    if args.only is None or args.only.startswith("watch"):
        results.update(watch_figures.run(args, work, base.root, deliver, args.only))
    if args.only:
        if args.only.startswith("watch"):
            print(json.dumps({k: v for k, v in results.items() if k.startswith("watch")}, indent=2))
            watch_figures.print_table(results, args)
            return
        print(json.dumps(results[args.only], indent=2))
        if args.only.startswith("lmtp-"):
            print_lmtp(results, args)
        return

    with open(args.out, "w") as f:
        json.dump(results, f, indent=2)

    s, b, r, m = results["single"], results["burst"], results["rules"], results["import"]
    print(f"database: {args.messages} messages; {results['machine']['notmuch']}; {os.cpu_count()} CPUs")
    print(f"{'figure':44} {'notmuch-deliver':>16} {'peer':>16} {'ratio':>8} {'goal':>10}")
    print(f"{'1. one delivery (median ms)':44} {s['notmuch-deliver ms']:16.1f} "
          f"{s['notmuch insert ms']:16.1f} {s['ratio']:8.2f} {'<= 1.0':>10}")
    print(f"{'   of which CPU, user + system (median ms)':44} {s['notmuch-deliver cpu ms']:16.1f} "
          f"{s['notmuch insert cpu ms']:16.1f}")
    d, i = b["notmuch-deliver"], b["notmuch insert"]
    print(f"{f'2. burst {args.workers}x{args.per_worker} (wall s)':44} {d['wall s']:16.1f} {i['wall s']:16.1f} "
          f"{1 / b['speedup vs notmuch insert']:8.2f} {'<= 0.33':>10}")
    print(f"{'   failures (tempfail or other)':44} {d['failures']:16d} {i['failures']:16d} {'':8} {'0':>10}")
    print(f"{'   messages indexed':44} {d['indexed']:16d} {i['indexed']:16d}")
    label = f"3. import {m['messages']} msgs (median msg/s of {m['runs']}) vs notmuch new"
    print(f"{label:44} {m['notmuch-deliver import msg/s']:16.0f} "
          f"{m['notmuch new (pre-split) msg/s']:16.0f} {m['ratio vs notmuch new']:8.2f} {'>= 1.0':>10}")
    print(f"{'   vs a notmuch insert loop (msg/s)':44} {m['notmuch-deliver import msg/s']:16.0f} "
          f"{m['notmuch insert loop msg/s']:16.0f} {m['ratio vs insert loop']:8.1f} {'>= 20':>10}")
    if "mdeliver -M + notmuch new msg/s" in m:
        print(f"{'   vs mdeliver -M + notmuch new (msg/s)':44} {m['notmuch-deliver import msg/s']:16.0f} "
              f"{m['mdeliver -M + notmuch new msg/s']:16.0f} "
              f"{m['notmuch-deliver import msg/s'] / m['mdeliver -M + notmuch new msg/s']:8.2f}")
    for size, kib in m["peak RSS KiB"].items():
        print(f"{f'   peak RSS, {size} messages (MiB)':44} {kib / 1024:16.1f}")
    if "RSS growth" in m:
        print(f"{'   RSS growth, large vs base archive':44} {m['RSS growth'] * 100:15.1f}% {'':16} {'':8} {'<= 10%':>10}")
    print(f"{'4. 100 rules vs none (median ms)':44} {r['with ms']:16.1f} {r['without ms']:16.1f} "
          f"{1 + r['added']:8.2f} {'<= 1.20':>10}")
    print(f"{'   a 100-test Sieve script vs none (median ms)':44} {r['with sieve ms']:16.1f} {r['without ms']:16.1f} "
          f"{1 + r['sieve added']:8.2f} {'<= 1.20':>10}")
    print_lmtp(results, args)
    watch_figures.print_table(results, args)
    print("where one delivery's time goes (median ms):")
    for phase, ms in s["breakdown ms"].items():
        print(f"   {phase:40} {ms:8.2f}")
    print(f"(machine-readable: {args.out})")


def print_postfix(x):
    """Figure 7's table: seconds of each variant, then the ratios."""
    if "skipped" in x:
        print(f"{'7. postfix end to end':44} skipped: {x['skipped']}")
        return
    print(f"7. postfix end to end: smtp-source, {x['messages']} messages over {x['sessions']} sessions, "
          f"seconds until all searchable (median of {len(x['turns'])} turn(s))")
    for variant, label in POSTFIX_VARIANTS:
        if variant in x["skipped variants"]:
            print(f"   {label:60} skipped: {x['skipped variants'][variant]}")
        if variant not in x["s"]:
            continue
        print(f"   {label:60} {x['s'][variant]:8.1f}   deferred {x['deferred'][variant]}, "
              f"bounced {x['bounced'][variant]}")
        if variant == "dovecot":
            print(f"   {'   then notmuch new':60} {x['s']['dovecot notmuch new']:8.1f}")
            print(f"   {'   Dovecot + notmuch new':60} {x['s']['dovecot + notmuch new']:8.1f}")
    if "server cpu s" in x:
        print(f"   {'notmuch-deliver lmtp: server CPU (s)':60} {x['server cpu s']:8.1f}")
    names = {"dovecot": ("Dovecot's LMTP, not indexed", "<= 1.0"),
             "dovecot + notmuch new": ("Dovecot + notmuch new", ""),
             "discard": ("postfix's floor (discard:)", "<= 1.5"),
             "insert": ("notmuch insert (mailbox_command)", ""),
             "deliver": ("notmuch-deliver (mailbox_command)", "")}
    for peer, ratio in x["ratios"].items():
        label, goal = names[peer]
        print(f"   {'notmuch-deliver lmtp / ' + label:60} {ratio:8.2f}   goal {goal or '-'}")
    if x["incomplete"]:
        print(f"   INCOMPLETE: {x['incomplete']} variant runs timed out (see the turns in the JSON)")


def print_lmtp(results, args):
    """The LMTP figures' lines of the table (those that ran)."""
    if "lmtp-single" in results:
        x = results["lmtp-single"]
        print(f"{'5. LMTP, end of DATA to reply (median ms)':44} {x['lmtp ms']:16.1f} "
              f"{x['notmuch insert ms']:16.1f} {x['ratio']:8.2f} {'<= 0.7':>10}")
        print(f"{'   CPU per message (server / insert, ms)':44} {x['server cpu ms per message']:16.1f} "
              f"{x['notmuch insert cpu ms']:16.1f}")
        latency = x["latency to searchable"]
        print(f"{'   end of DATA to searchable, idle (ms)':44} {latency['median ms']:16.0f} "
              f"{'':16} {'':8} {'<= 100':>10}  (median; p99 {latency['p99 ms']:.0f}; "
              f"one search {x['search probe ms']:.0f}; searches until found: median "
              f"{x['searches until found']['median']:.0f}, at most {x['searches until found']['max']})")
    if "lmtp-burst" in results:
        x = results["lmtp-burst"]
        label = f"6. LMTP {args.workers}x{args.per_worker} vs insert burst (wall s)"
        print(f"{label:44} {x['lmtp wall s']:16.1f} {x['notmuch insert wall s']:16.1f} "
              f"{1 / x['speedup']:8.2f} {'<= 0.167':>10}  ({x['speedup']:.1f}x faster)")
        print(f"{'   LMTP temporary failures':44} {x['lmtp tempfails']:16d} {'':16} {'':8} {'0':>10}")
        latency = x["latency to searchable"]
        print(f"{'   end of DATA to searchable, burst (ms)':44} {latency['median ms']:16.0f} "
              f"{'':16} {'':8} {'':>10}  (median; p99 {latency['p99 ms']:.0f}; "
              f"{latency['not found']} not found)")
    if "lmtp-postfix" in results:
        print_postfix(results["lmtp-postfix"])
    if "lmtp-rss" in results:
        x = results["lmtp-rss"]
        rss = x["RSS KiB"]
        print(f"{f'8. server RSS after {args.rss_small} / {args.rss_large} (MiB)':44} "
              f"{rss[str(args.rss_small)] / 1024:8.1f} / {rss[str(args.rss_large)] / 1024:5.1f} "
              f"{x['growth'] * 100:+15.1f}% {'<= +10%':>10}")
        print(f"{'   a ' + str(x['big message bytes'] // 1_000_000) + ' MB message adds (RSS / peak, MiB)':44} "
              f"{x['big RSS added KiB'] / 1024:8.1f} / {x['big HWM added KiB'] / 1024:5.1f}")


if __name__ == "__main__":
    main()
