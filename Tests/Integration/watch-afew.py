#!/usr/bin/env python3
"""`afew --watch` (Debian's afew, the one watcher in notmuch's ecosystem)
against `notmuch-deliver watch`, on the same seeded sync-tool workload as
watch.py (its generator, imported): what each one loses.

For each seed, each watcher gets a tree of its own, prepared alike (an
initial tree indexed by notmuch new, a few messages tagged by the user),
runs while the generator plays the same operations, and at quiescence its
database is compared with what a fresh `notmuch new` makes of a copy of
its final tree:

  - messages missing (on disk, not in the database),
  - messages left over (in the database, no file on disk),
  - messages with wrong filenames or wrong flag tags,
  - files made by link() (as postfix delivers) that the database lacks,
  - messages without the rule's tag (afew: a Filter with the same query),
  - the user's tag lost through a move (deletion first, then the copy).

    python3 Tests/Integration/watch-afew.py PATH/TO/notmuch-deliver [--seeds 1] [--operations 300]

Exit status: 0 when notmuch-deliver's watcher lost nothing (afew's losses
are reported, not judged), 1 when it lost something, 77 when this cannot
run here (afew or pyinotify missing, the reason after "SKIPPED:").
"""

import os
import shutil
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import watch  # noqa: E402  (watch.py: the generator, the setup, the comparison)

AFEW_CONFIG = f"""[Filter.0]
query = subject:rule-me
tags = +{watch.RULE_TAG}
message = the rule of watch.py
"""


class RecordingGenerator(watch.Generator):
    """watch.py's generator, also noting each file it made with link()."""

    record = None

    def deliver(self, folder, content, flags=None, linking=False):
        target = super().deliver(folder, content, flags, linking)
        if linking and self.record:
            with open(self.record, "a") as f:
                f.write(target + "\n")
        return target


def linked_files(setup):
    path = os.path.join(setup.dir, "linked")
    if not os.path.exists(path):
        return set()
    with open(path) as f:
        return {line.strip() for line in f if line.strip()}


def start_afew(setup):
    """`afew --watch` as the watcher's user, its filters in $HOME/.config/afew."""
    config = os.path.join(setup.dir, ".config", "afew")
    os.makedirs(config, exist_ok=True)
    with open(os.path.join(config, "config"), "w") as f:
        f.write(AFEW_CONFIG)
    if os.geteuid() == 0:
        for path in (os.path.join(setup.dir, ".config"), config, os.path.join(config, "config")):
            os.chown(path, watch.NOBODY, watch.NOBODY)
    errors_path = os.path.join(setup.dir, "afew.stderr")
    errors = open(errors_path, "wb")
    process = subprocess.Popen(["afew", "--watch", "-vv"], env=setup.env(setup.config),
                               preexec_fn=watch.as_nobody, stdout=subprocess.DEVNULL, stderr=errors)
    # It says nothing when it is ready; -vv logs its main loop's start.
    deadline = time.time() + 20
    while time.time() < deadline and process.poll() is None:
        if b"Running mainloop" in open(errors_path, "rb").read():
            break
        time.sleep(0.1)
    time.sleep(0.5)
    return process, errors_path


def losses(setup, made, protected):
    """What the watcher's database lacks or has wrong, against notmuch new's view."""
    fresh = watch.fresh_view(setup)
    state = watch.database_state(setup.config, setup.mail)
    ignored = {watch.RULE_TAG, watch.USER_TAG}
    on_disk = {p for _, (_, files) in fresh.items() for p in files}
    in_database = {p for _, (_, files) in state.items() for p in files}
    result = {
        "messages": len(fresh),
        "missing": sorted(set(fresh) - set(state)),
        "left over": sorted(set(state) - set(fresh)),
        "wrong filenames": sorted(m for m in set(fresh) & set(state) if fresh[m][1] != state[m][1]),
        "wrong tags": sorted(m for m in set(fresh) & set(state) if fresh[m][0] - ignored != state[m][0] - ignored),
        "link() files missed": sorted(p for p in linked_files(setup) if p in on_disk and p not in in_database),
        "rule tag missing": sorted(m for m in made["ruled"] if m in state and watch.RULE_TAG not in state[m][0]),
        "user tag lost": sorted(m for m in protected if m in fresh and (m not in state
                                                                         or watch.USER_TAG not in state[m][0])),
    }
    return result


def run(binary, seed, operations, tool):
    """One watcher on one seed's workload; returns its losses."""
    setup = watch.Setup(binary, seed)
    process = None
    try:
        protected = watch.prepare(setup, seed)
        if tool == "notmuch-deliver watch":
            process, _ = watch.start_watcher(setup)
            settle = watch.GRACE + 2
        else:
            process, _ = start_afew(setup)
            settle = 3
        RecordingGenerator.record = os.path.join(setup.dir, "linked")
        generator_class, watch.Generator = watch.Generator, RecordingGenerator
        try:
            made = watch.run_generator(setup, seed, operations)
        finally:
            watch.Generator = generator_class
        time.sleep(settle)
        result = losses(setup, made, protected)
        result["status"] = "running" if process.poll() is None else f"exited {process.returncode}"
        if tool != "notmuch-deliver watch":
            with open(os.path.join(setup.dir, "afew.stderr"), "rb") as f:
                text = f.read().decode(errors="replace")
            errors = [line for line in text.splitlines() if "Error" in line or "Traceback" in line]
            result["afew errors"] = errors[:3]
        return result
    finally:
        if process and process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        watch.remove_unless_kept(setup)


COUNTED = ["missing", "left over", "wrong filenames", "wrong tags", "link() files missed", "rule tag missing",
           "user tag lost"]


def report(seed, results):
    tools = list(results)
    print(f"seed {seed}: {results[tools[0]]['messages']} messages at the end")
    print(f"  {'':28}" + "".join(f"{tool:>24}" for tool in tools))
    for key in COUNTED:
        print(f"  {key:28}" + "".join(f"{len(results[tool][key]):>24}" for tool in tools))
    print(f"  {'process at the end':28}" + "".join(f"{results[tool]['status']:>24}" for tool in tools))
    for tool in tools:
        for line in results[tool].get("afew errors", []):
            print(f"  {tool}: {line.strip()[:160]}")


def main():
    _, binary, seeds, operations = watch.seeded_command_line(__doc__, [1], 300)
    if shutil.which("afew") is None:
        watch.skip("afew is not installed (apt-get install afew python3-pyinotify)")
    afew_python = open(shutil.which("afew")).readline()[2:].strip() or "python3"
    if subprocess.run([afew_python, "-c", "import pyinotify"], capture_output=True).returncode != 0:
        watch.skip(f"afew --watch needs pyinotify, which {afew_python} lacks (apt-get install python3-pyinotify)")
    lost = []
    try:
        for seed in seeds:
            results = {tool: run(binary, seed, operations, tool)
                       for tool in ("notmuch-deliver watch", "afew --watch")}
            report(seed, results)
            ours = results["notmuch-deliver watch"]
            lost += [f"seed {seed}: {key}: {ours[key][:5]}" for key in COUNTED if ours[key]]
    except watch.Failure as failure:
        print(f"FAILED: {failure}")
        sys.exit(1)
    if lost:
        print("FAILED: notmuch-deliver watch lost something:\n  " + "\n  ".join(lost))
        sys.exit(1)
    print(f"watch-afew: {len(seeds)} seed(s): notmuch-deliver watch lost nothing; afew --watch's losses above")


if __name__ == "__main__":
    main()
