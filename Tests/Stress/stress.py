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
Exit status 1 when anything was lost, duplicated or wrongly tagged.
"""
import argparse
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

RULES = "+even -- header:X-Parity~/^even$/\n+ruled -- from:stress.example\n"
CLIENT_TAG = "client-touch"


def message(i):
    parity = "even" if i % 2 == 0 else "odd"
    body = "".join(f"line {n} of message {i}\n" for n in range(random.Random(i).randint(1, 200)))
    return (f"From: Sender {i} <s{i}@stress.example>\nTo: me@example.org\nSubject: stress {i}\n"
            f"Message-ID: <stress-{i}@example.org>\nX-Parity: {parity}\n\n{body}").encode()


def expected_tags(i):
    return {"inbox", "unread", "ruled", "stress"} | ({"even"} if i % 2 == 0 else set())


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--deliver", default=".build/release/notmuch-deliver")
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--messages", type=int, default=2000, help="per worker")
    parser.add_argument("--kill-share", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--keep", action="store_true", help="keep the maildir and database for inspection")
    args = parser.parse_args()
    deliver = os.path.abspath(args.deliver)
    random.seed(args.seed)

    root = tempfile.mkdtemp(prefix="nd-stress-")
    mail = os.path.join(root, "mail")
    config = os.path.join(root, "config")
    rules = os.path.join(root, "rules")
    os.makedirs(mail)
    with open(rules, "w") as f:
        f.write(RULES)
    with open(config, "w") as f:
        f.write(f"[database]\npath={mail}\n[new]\ntags=unread;inbox;\n[maildir]\nsynchronize_flags=true\n"
                f"[deliver]\nrules={rules}\nlock_timeout=2\n")
    env = dict(os.environ, NOTMUCH_CONFIG=config, HOME=root)
    subprocess.run(["notmuch", "new", "--quiet"], env=env, check=True)

    stop = threading.Event()
    counters = {"kills": 0, "tempfails": 0, "other": 0, "deliveries": 0}
    lock = threading.Lock()
    delivered = set()

    def background(command, pause):
        while not stop.is_set():
            subprocess.run(command, env=env, capture_output=True)
            time.sleep(pause)

    loops = [threading.Thread(target=background, args=(["notmuch", "new", "--quiet"], 0.2)),
             threading.Thread(target=background,
                              args=(["notmuch", "tag", f"+{CLIENT_TAG}", "--", "tag:inbox"], 0.1))]
    for loop in loops:
        loop.start()

    def worker(w):
        rng = random.Random(args.seed * 1000 + w)
        for n in range(args.messages):
            i = w * args.messages + n
            data = message(i)
            while True:
                process = subprocess.Popen([deliver, "+stress", "--log", os.path.join(root, "deliver.log")], env=env, stdin=subprocess.PIPE,
                                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                killed = False
                if rng.random() < args.kill_share:
                    timer = threading.Timer(rng.uniform(0, 0.06), lambda p=process: p.send_signal(signal.SIGKILL))
                    timer.start()
                    process.communicate(data)
                    timer.cancel()
                    killed = process.returncode == -signal.SIGKILL
                else:
                    process.communicate(data)
                with lock:
                    counters["deliveries"] += 1
                    if killed:
                        counters["kills"] += 1
                    elif process.returncode == 75:
                        counters["tempfails"] += 1
                    elif process.returncode != 0:
                        counters["other"] += 1
                if process.returncode == 0:
                    with lock:
                        delivered.add(i)
                    break
                if not killed and process.returncode not in (75,):
                    break

    started = time.monotonic()
    threads = [threading.Thread(target=worker, args=(w,)) for w in range(args.workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
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
        if set(got) - {CLIENT_TAG} != expected_tags(i):
            wrong.append(i)
    on_disk = sum(len(fs) for d, _, fs in os.walk(mail) if "/.notmuch" not in d and not d.endswith("/tmp"))
    new = subprocess.run(["notmuch", "new"], env=env, capture_output=True, text=True).stdout.strip().splitlines()

    print(f"messages {len(delivered)} of {args.workers * args.messages}, deliveries {counters['deliveries']}, "
          f"kills {counters['kills']}, tempfails {counters['tempfails']}, other failures {counters['other']}, "
          f"{elapsed:.1f} s")
    print(f"lost {len(lost)} (must be 0), duplicated {duplicated} (must be 0), wrong tags {len(wrong)} (must be 0), "
          f"files {on_disk}, notmuch new afterwards: {new[-1] if new else '?'}")
    if lost:
        print(f"lost: {lost[:20]}")
    for i in wrong[:5]:
        got = subprocess.run(["notmuch", "search", "--output=tags", f"id:stress-{i}@example.org"], env=env,
                             capture_output=True, text=True).stdout.split()
        print(f"wrong tags: message {i}: {sorted(got)}, expected {sorted(expected_tags(i))}")
    if args.keep:
        print(f"kept: {root}")
    else:
        shutil.rmtree(root, ignore_errors=True)
    failed = bool(lost) or counters["other"] > 0 or duplicated > 0 or bool(wrong)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
