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
Every figure runs on a copy of one database pre-filled with --messages
messages, so the numbers are steady state, not an empty database.
"""
import argparse
import concurrent.futures
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from corpus import Corpus  # noqa: E402


def log(text):
    print(text, file=sys.stderr, flush=True)


class Setup:
    """A mail root + database + config in `root`, copied from a cached base."""

    def __init__(self, root):
        self.root = root
        self.mail = os.path.join(root, "mail")
        self.config = os.path.join(root, "notmuch-config")

    def write_config(self, rules=None):
        text = f"[database]\npath={self.mail}\n[new]\ntags=unread;inbox;\n[maildir]\nsynchronize_flags=true\n"
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


def figure_burst(work, base, deliver, workers, per_worker):
    results = {}
    for name, command, corpus_tag in (("notmuch-deliver", [deliver], "burstd"),
                                      ("notmuch insert", ["notmuch", "insert"], "bursti")):
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
        results[name] = {"wall s": wall, "failures": failures,
                         "indexed": setup.count() - before, "messages": workers * per_worker}
        shutil.rmtree(setup.root, ignore_errors=True)
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


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--deliver", default=".build/release/notmuch-deliver")
    parser.add_argument("--work", default=".build-bench")
    parser.add_argument("--messages", type=int, default=10_000, help="pre-filled database size")
    parser.add_argument("--runs", type=int, default=101, help="repetitions for medians")
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--per-worker", type=int, default=250)
    parser.add_argument("--out", default="bench-results.json")
    parser.add_argument("--only", choices=["single", "burst", "import", "rules"], help="run one figure")
    parser.add_argument("--import-messages", type=int, default=10_000)
    parser.add_argument("--import-large", type=int, default=50_000, help="archive size for the RSS check (0: skip)")
    parser.add_argument("--insert-sample", type=int, default=200)
    parser.add_argument("--import-runs", type=int, default=3,
                        help="turns of the import and notmuch new, for medians")
    args = parser.parse_args()
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
    if args.only:
        print(json.dumps(results[args.only], indent=2))
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
    print("where one delivery's time goes (median ms):")
    for phase, ms in s["breakdown ms"].items():
        print(f"   {phase:40} {ms:8.2f}")
    print(f"(machine-readable: {args.out})")


if __name__ == "__main__":
    main()
