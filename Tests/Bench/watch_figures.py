"""make bench: the watcher's figures (issue 25), each against its peer in
the same run.

  9.  arrival to searchable with the rules' tags, on the 10,000-message
      database: a file renamed into new/, until `notmuch search` finds it
      with its rule tags; peer: `notmuch new` then `afew --tag --new`
      (a filter and a header filter configured alike) right after it;
  10. a flag change (:2,S -> :2,FS) in a folder of --watch-size messages
      until tag:flagged follows; peer: `notmuch new` right after it;
  11. a burst of files into many folders of a --watch-size tree until all
      are searchable; peer: `notmuch new` on the same files;
  12. nothing changed: `watch --once` against `notmuch new` on both trees;
  13. idle: the watcher's CPU clock ticks over --idle-seconds of nothing,
      and its RSS before and after --idle-events inotify events.
"""
import os
import random
import re
import resource
import shutil
import statistics
import time

from corpus import Corpus
from watch_harness import Tree, WatcherProcess, afew_missing, cached_tree, copy_tree, log, maildir

MESSAGE_ID = re.compile(rb"^Message-ID:[ \t]*<([^>]+)>", re.MULTILINE | re.IGNORECASE)


def summary(seconds):
    """Median, 99th percentile and largest, in ms."""
    ms = sorted(s * 1000 for s in seconds)
    if not ms:
        return {"median ms": float("nan"), "p99 ms": float("nan"), "max ms": float("nan"), "count": 0}
    p99 = statistics.quantiles(ms, n=100, method="inclusive")[98] if len(ms) > 1 else ms[0]
    return {"median ms": statistics.median(ms), "p99 ms": p99, "max ms": ms[-1], "count": len(ms)}


def until_found(tree, query, since, timeout=60):
    """Seconds from `since` until `notmuch search` finds `query` (the
    search that finds it included), and the searches made."""
    deadline = time.monotonic() + timeout
    searches = 0
    while time.monotonic() < deadline:
        searches += 1
        if tree.found(query):
            return time.perf_counter() - since, searches
    return float("inf"), searches


def tagged_query(data):
    """The query that finds a corpus message with every tag the rules give it."""
    msgid = MESSAGE_ID.search(data).group(1).decode()
    query = f'id:"{msgid}" and tag:bench'
    if b"\nList-Id:" in data:
        query += " and tag:list"
    return query


def probe_ms(tree, query, runs=5):
    """What one search of a message found already takes (part of every latency)."""
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        tree.found(query)
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def figure_arrival(work, base_root, deliver, arrivals):
    """9. One arrival at a time, ours and the peer's in turns."""
    ours = copy_tree(base_root, os.path.join(work, "watch-arrival"))
    ours.write_config(rules=True)
    skipped = afew_missing()
    peer = None
    if not skipped:
        peer = copy_tree(base_root, os.path.join(work, "watch-arrival-afew"))
        # afew works on the messages tagged `new` (new.tags less unread).
        peer.write_config(new_tags="unread;new;")
    corpus = Corpus(seed=9, tag="arrive")
    watcher = WatcherProcess(deliver, ours).start()
    latencies, searches, peer_latencies, peer_commands, probes = [], [], [], [], []
    try:
        for i in range(arrivals):
            data = corpus.message(2 * i)
            since = ours.deliver_file("", f"1800000000.{2 * i}.arrive", data)
            latency, tries = until_found(ours, tagged_query(data), since)
            latencies.append(latency)
            searches.append(tries)
            if i % 20 == 0:
                probes.append(probe_ms(ours, tagged_query(data)))
            if peer:
                data = corpus.message(2 * i + 1)
                since = peer.deliver_file("", f"1800000000.{2 * i + 1}.arrive", data)
                peer.run(["notmuch", "new", "--quiet"])
                peer.run(["afew", "--tag", "--new"])
                commands = time.perf_counter() - since
                latency, _ = until_found(peer, tagged_query(data), since)
                peer_latencies.append(latency)
                peer_commands.append(commands)
        rss = watcher.status("VmRSS")
    finally:
        watcher.stop()
    result = {"arrivals": arrivals, "watch": summary(latencies), "search probe ms": statistics.median(probes),
              "searches until found": {"median": statistics.median(searches), "max": max(searches)},
              "not found": sum(1 for s in latencies if s == float("inf")), "watcher RSS KiB": rss}
    if peer:
        result["notmuch new + afew"] = summary(peer_latencies)
        result["notmuch new + afew commands ms"] = statistics.median(peer_commands) * 1000
        result["ratio"] = result["notmuch new + afew"]["median ms"] / result["watch"]["median ms"]
        afew_version = peer.run(["afew", "--version"], check=False).stdout.decode().strip()
        result["afew"] = afew_version
        shutil.rmtree(peer.root, ignore_errors=True)
    else:
        result["peer skipped"] = skipped
    shutil.rmtree(ours.root, ignore_errors=True)
    return result


def message_id_of(path):
    with open(path, "rb") as f:
        head = f.read(8192)
    return MESSAGE_ID.search(head).group(1).decode()


def flag_change(tree, name):
    """mbsync's flag change: one rename of the ':2,' part, S -> FS."""
    folder = os.path.join(tree.mail, "all-mail", "cur")
    os.rename(os.path.join(folder, name), os.path.join(folder, name[:-len(":2,S")] + ":2,FS"))
    return time.perf_counter()


def figure_flag(tree, deliver, changes):
    """10. A flag change in one big folder: ours (the watcher running), then
    the peer's (`notmuch new` after each), on different messages."""
    names = sorted(n for n in os.listdir(os.path.join(tree.mail, "all-mail", "cur")) if n.endswith(":2,S"))
    chosen = random.Random(10).sample(names, 2 * changes)
    ids = {name: message_id_of(os.path.join(tree.mail, "all-mail", "cur", name)) for name in chosen}
    latencies, peer_latencies, peer_commands = [], [], []
    watcher = WatcherProcess(deliver, tree).start()
    try:
        for name in chosen[:changes]:
            since = flag_change(tree, name)
            latency, _ = until_found(tree, f'id:"{ids[name]}" and tag:flagged', since)
            latencies.append(latency)
        probe = probe_ms(tree, f'id:"{ids[chosen[0]]}" and tag:flagged')
    finally:
        watcher.stop()
    for name in chosen[changes:]:
        since = flag_change(tree, name)
        tree.run(["notmuch", "new", "--quiet"])
        peer_commands.append(time.perf_counter() - since)
        latency, _ = until_found(tree, f'id:"{ids[name]}" and tag:flagged', since)
        peer_latencies.append(latency)
    ours, peer = summary(latencies), summary(peer_latencies)
    return {"changes": changes, "watch": ours, "notmuch new": peer, "search probe ms": probe,
            "notmuch new alone ms": statistics.median(peer_commands) * 1000,
            "ratio": peer["median ms"] / ours["median ms"]}


def burst_files(tree, corpus, files, folders, turn):
    """`files` arrivals spread over `folders` folders (tmp/ then new/)."""
    for i in range(files):
        folder = f"f{i % folders:03d}"
        tree.deliver_file(folder, f"1900000000.{turn}.{i}.burst", corpus.message(i))


def remove_burst(tree, folders, turn):
    for i in range(folders):
        new = os.path.join(tree.mail, f"f{i:03d}", "new")
        for name in os.listdir(new):
            if f".{turn}." in name and name.endswith(".burst"):
                os.unlink(os.path.join(new, name))


def burst_watch(tree, deliver, corpus, files, folders, turn, rules):
    """One burst with the watcher running (with the rules or --no-rules):
    seconds from the first file written until all are searchable."""
    before = tree.count()
    watcher = WatcherProcess(deliver, tree, [] if rules else ["--no-rules"]).start()
    try:
        ticks = watcher.ticks()
        started = time.perf_counter()
        burst_files(tree, corpus, files, folders, turn)
        written = time.perf_counter() - started
        # The watcher's log says when its commits are done: read it rather
        # than run `notmuch count` over and over, which would take CPU from
        # the watcher on a small machine; then `notmuch count` confirms.
        deadline = time.monotonic() + 1800
        while time.monotonic() < deadline:
            if watcher.added() >= files and tree.count() >= before + files:
                break
            time.sleep(0.01)
        seconds = time.perf_counter() - started
        cpu = (watcher.ticks() - ticks) / os.sysconf("SC_CLK_TCK")
        result = {"s": seconds, "writing s": written, "cpu s": cpu, "indexed": tree.count() - before,
                  "commits": watcher.log_text().count("watch: committed")}  # bursts (of transactions of 250)
        if rules:
            result["rule-tagged"] = tree.count("tag:bench")  # the tree was indexed without rules
    finally:
        watcher.stop()
    undo_burst(tree, folders, turn)
    return result


def burst_batch(tree, corpus, files, folders, turn, afew):
    """One burst, then `notmuch new` (and `afew --tag --new`, its config
    tagging new mail `new`) once all is written."""
    before = tree.count()
    if afew:
        tree.write_config(new_tags="unread;new;")
    try:
        started = time.perf_counter()
        burst_files(tree, corpus, files, folders, turn)
        written = time.perf_counter() - started
        cpu_before = children_cpu_s()
        tree.run(["notmuch", "new", "--quiet"], timeout=3600)
        if afew:
            tree.run(["afew", "--tag", "--new"], timeout=3600)
        seconds = time.perf_counter() - started
        result = {"s": seconds, "writing s": written, "cpu s": children_cpu_s() - cpu_before,
                  "indexed": tree.count() - before}
        if afew:
            result["rule-tagged"] = tree.count("tag:bench")
    finally:
        tree.write_config(rules=True)
    undo_burst(tree, folders, turn)
    return result


def undo_burst(tree, folders, turn):
    """Back to the tree before the burst (not timed)."""
    remove_burst(tree, folders, turn)
    tree.run(["notmuch", "new", "--quiet"], timeout=3600)


def figure_burst(tree, deliver, files, folders):
    """11. `files` new files into `folders` folders until all are
    searchable: the watcher without rules (writing and indexing overlap, as
    with a sync tool) against `notmuch new` after the same files; then the
    watcher with the rules against `notmuch new` + `afew --tag --new`."""
    corpus = Corpus(seed=11, tag="burst")
    result = {"files": files, "folders": folders,
              "watch --no-rules": burst_watch(tree, deliver, corpus, files, folders, 1, rules=False),
              "notmuch new": burst_batch(tree, corpus, files, folders, 2, afew=False)}
    result["speedup"] = result["notmuch new"]["s"] / result["watch --no-rules"]["s"]
    result["watch with rules"] = burst_watch(tree, deliver, corpus, files, folders, 3, rules=True)
    skipped = afew_missing()
    if skipped:
        result["afew skipped"] = skipped
    else:
        result["notmuch new + afew"] = burst_batch(tree, corpus, files, folders, 4, afew=True)
        result["speedup with rules"] = result["notmuch new + afew"]["s"] / result["watch with rules"]["s"]
    return result


def children_cpu_s():
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def figure_nothing(trees, deliver, runs):
    """12. Nothing new: `watch --once` and `notmuch new` in turns, per tree."""
    results = {}
    for label, tree in trees:
        tree.run(["notmuch", "new", "--quiet"], timeout=3600)
        time.sleep(1.1)  # mtimes of the current second are not stored
        tree.run(["notmuch", "new", "--quiet"], timeout=3600)
        ours, peer = [], []
        for _ in range(runs):
            started = time.perf_counter()
            tree.run([deliver, "watch", "--once", "--no-rules"], timeout=3600)
            ours.append(time.perf_counter() - started)
            started = time.perf_counter()
            tree.run(["notmuch", "new", "--quiet"], timeout=3600)
            peer.append(time.perf_counter() - started)
        results[label] = {"watch --once ms": statistics.median(ours) * 1000,
                          "notmuch new ms": statistics.median(peer) * 1000,
                          "ratio": statistics.median(ours) / statistics.median(peer), "runs": runs}
    return results


def figure_idle(work, base_root, deliver, seconds, events):
    """13. CPU while nothing happens; RSS around a flood of events (renames
    of a message's flags and of a non-mail file, in a watched folder)."""
    tree = copy_tree(base_root, os.path.join(work, "watch-idle"))
    tree.write_config(rules=True)
    folder = os.path.join(tree.mail, "idle")
    maildir(folder)
    corpus = Corpus(seed=13, tag="idle")
    message = [os.path.join(folder, "cur", "1700000000.idle.bench:2,S"),
               os.path.join(folder, "cur", "1700000000.idle.bench:2,FS")]
    with open(message[0], "wb") as f:
        f.write(corpus.message(0))
    note = [os.path.join(folder, "cur", "notes-a.txt"), os.path.join(folder, "cur", "notes-b.txt")]
    with open(note[0], "w") as f:
        f.write("not a message\n")
    from lmtp_harness import give_away
    give_away(tree.root)
    watcher = WatcherProcess(deliver, tree).start()
    try:
        watcher.settle()
        ticks = watcher.ticks()
        time.sleep(seconds)
        idle_ticks = watcher.ticks() - ticks
        # A first round of events, so that what is measured after is the
        # steady state, not the first allocations.
        renames = events // 2
        warm = min(renames // 10, 20_000)
        flood(message, note, warm)
        watcher.settle()
        rss_before, hwm_before = watcher.status("VmRSS"), watcher.status("VmHWM")
        started = time.perf_counter()
        flood(message, note, renames)
        flood_s = time.perf_counter() - started
        watcher.settle()
        caught_up = time.perf_counter() - started
        rss_after, hwm_after = watcher.status("VmRSS"), watcher.status("VmHWM")
        overflows = watcher.log_text().count("queue overflowed")
        ticks_after = watcher.ticks()
        final = tree.found('id:"idle0.13@bench.example" and tag:bench')
    finally:
        watcher.stop()
    shutil.rmtree(tree.root, ignore_errors=True)
    return {"idle seconds": seconds, "idle ticks": idle_ticks, "clock ticks per second": os.sysconf("SC_CLK_TCK"),
            "events": renames * 2, "flood s": flood_s, "caught up s": caught_up,
            "RSS before KiB": rss_before, "RSS after KiB": rss_after, "HWM before KiB": hwm_before,
            "HWM after KiB": hwm_after, "RSS growth": rss_after / rss_before - 1, "overflows": overflows,
            "flood cpu s": (ticks_after - ticks - idle_ticks) / os.sysconf("SC_CLK_TCK"),
            "message indexed after": final}


def flood(message, note, renames):
    """`renames` renames (two inotify events each), back and forth."""
    for i in range(renames):
        pair = message if i % 2 == 0 else note
        step = (i // 2) % 2
        os.rename(pair[step], pair[1 - step])


def run(args, work, base_root, deliver, only):
    """The watcher's figures that `only` selects ("watch" or one of them)."""
    results = {}
    wanted = lambda name: only in (None, "watch", name)  # noqa: E731
    if wanted("watch-arrival"):
        log(f"9. watcher: arrival to searchable, {args.watch_arrivals} arrivals ...")
        results["watch-arrival"] = figure_arrival(work, base_root, deliver, args.watch_arrivals)
    one = many = None
    try:
        if wanted("watch-flag") or wanted("watch-nothing"):
            cached = cached_tree(work, "one", args.watch_size, 1)
            log(f"   copying the {args.watch_size}-message one-folder tree ...")
            one = copy_tree(cached.root, os.path.join(work, "watch-one-run"))
            one.write_config(rules=True)
        if wanted("watch-burst") or wanted("watch-nothing"):
            cached = cached_tree(work, "many", args.watch_size, args.watch_folders)
            log(f"   copying the {args.watch_size}-message tree of {args.watch_folders} folders ...")
            many = copy_tree(cached.root, os.path.join(work, "watch-many-run"))
            many.write_config(rules=True)
        if wanted("watch-flag"):
            log(f"10. watcher: a flag change in a {args.watch_size}-message folder ...")
            results["watch-flag"] = figure_flag(one, deliver, args.watch_flag_changes)
            results["watch-flag"]["folder messages"] = args.watch_size
        if wanted("watch-burst"):
            log(f"11. watcher: {args.watch_burst_files} files into {args.watch_burst_folders} folders ...")
            results["watch-burst"] = figure_burst(many, deliver, args.watch_burst_files, args.watch_burst_folders)
            results["watch-burst"]["tree messages"] = args.watch_size
        if wanted("watch-nothing"):
            log("12. watcher: nothing changed, watch --once against notmuch new ...")
            results["watch-nothing"] = figure_nothing(
                [("one folder", one), (f"{args.watch_folders} folders", many)], deliver, args.watch_nothing_runs)
            results["watch-nothing"]["tree messages"] = args.watch_size
    finally:
        for tree in (one, many):
            if tree:
                shutil.rmtree(tree.root, ignore_errors=True)
    if wanted("watch-idle"):
        log(f"13. watcher: idle {args.idle_seconds} s, then {args.idle_events} events ...")
        results["watch-idle"] = figure_idle(work, base_root, deliver, args.idle_seconds, args.idle_events)
    return results


def add_arguments(parser):
    parser.add_argument("--watch-size", type=int, default=100_000,
                        help="messages in the watcher's big trees (figures 10-12; cached per size)")
    parser.add_argument("--watch-folders", type=int, default=500, help="folders of the many-folder tree")
    parser.add_argument("--watch-arrivals", type=int, default=200)
    parser.add_argument("--watch-flag-changes", type=int, default=50)
    parser.add_argument("--watch-burst-files", type=int, default=5000)
    parser.add_argument("--watch-burst-folders", type=int, default=200)
    parser.add_argument("--watch-nothing-runs", type=int, default=11)
    parser.add_argument("--idle-seconds", type=float, default=60)
    parser.add_argument("--idle-events", type=int, default=1_000_000)


def median_and_p99(latencies):
    """A latency figure's median and p99, as the table's columns show them."""
    return f"{latencies['median ms']:8.0f} / {latencies['p99 ms']:5.0f}"


def row(label, figures):
    """One line of the table under a figure's heading: the label in its
    column, then the figures."""
    print(f"   {label:56} {figures}")


def afew_row(x, skipped_key, label, ours, theirs):
    """The row that sets notmuch new + afew beside the watcher: label,
    ours (the watcher's figures before the peer's, if any), then
    theirs(the peer's figures) or, when afew was skipped, why
    (x[skipped_key])."""
    if skipped_key in x:
        row(label, f"{ours}skipped: {x[skipped_key]}")
    else:
        row(label, ours + theirs(x["notmuch new + afew"]))


def print_table(results, args):
    """The watcher's lines of the table (those that ran)."""
    if "watch-arrival" in results:
        x = results["watch-arrival"]
        w = x["watch"]
        print(f"9. watcher: a file renamed into new/ until `notmuch search` finds it with its rule tags "
              f"({x['arrivals']} arrivals, {args.messages}-message database)")
        row("watch (median / p99 ms)", f"{median_and_p99(w)}   "
            f"goal <= 50 / <= 250  (one search {x['search probe ms']:.0f} ms; not found {x['not found']})")
        afew_row(x, "peer skipped", "notmuch new + afew --tag --new (median / p99 ms)", "",
                 lambda p: f"{median_and_p99(p)}   ratio {x['ratio']:.1f}x")
    if "watch-flag" in results:
        x = results["watch-flag"]
        print(f"10. watcher: a flag change (:2,S -> :2,FS) until tag:flagged, one folder of "
              f"{x['folder messages']} messages ({x['changes']} changes)")
        row("watch (median / p99 ms)", f"{median_and_p99(x['watch'])}   "
            f"goal <= 20  (one search {x['search probe ms']:.0f} ms)")
        row("notmuch new (median / p99 ms)", f"{median_and_p99(x['notmuch new'])}   "
            f"ratio {x['ratio']:.1f}x  (notmuch new alone {x['notmuch new alone ms']:.0f} ms)")
    if "watch-burst" in results:
        x = results["watch-burst"]
        print(f"11. watcher: {x['files']} files into {x['folders']} folders of a {x['tree messages']}-message "
              f"tree until all searchable (s)")
        w, n = x["watch --no-rules"], x["notmuch new"]
        row("watch --no-rules / notmuch new", f"{w['s']:8.1f} / {n['s']:5.1f}   "
            f"{x['speedup']:.2f}x  goal >= 1.0 (aim 1.5)  (CPU {w['cpu s']:.1f} / {n['cpu s']:.1f} s; "
            f"{w['commits']} bursts)")
        w = x["watch with rules"]
        afew_row(x, "afew skipped", "watch with rules / notmuch new + afew --tag --new", f"{w['s']:8.1f} / ",
                 lambda a: f"{a['s']:5.1f}   {x['speedup with rules']:.2f}x  "
                           f"(CPU {w['cpu s']:.1f} / {a['cpu s']:.1f} s)")
    if "watch-nothing" in results:
        x = results["watch-nothing"]
        print(f"12. watcher: nothing changed, {x['tree messages']}-message trees (median ms)")
        for label, y in x.items():
            if isinstance(y, dict):
                row("watch --once / notmuch new, " + label, f"{y['watch --once ms']:8.1f} / "
                    f"{y['notmuch new ms']:5.1f}   ratio {y['ratio']:.2f}  goal <= 1.0")
    if "watch-idle" in results:
        x = results["watch-idle"]
        print(f"13. watcher idle: {x['idle ticks']} clock ticks in {x['idle seconds']:.0f} s of nothing "
              f"(goal 0); RSS {x['RSS before KiB'] / 1024:.1f} -> {x['RSS after KiB'] / 1024:.1f} MiB "
              f"({x['RSS growth'] * 100:+.1f} %) over {x['events']} events (goal flat; "
              f"{x['overflows']} queue overflows)")
