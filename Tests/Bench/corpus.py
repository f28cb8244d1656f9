"""Deterministic, realistic mail for the benchmarks.

Sizes, threads, mailing lists, encodings and attachments are spread roughly
like a personal mailbox; the same seed always gives the same bytes.
"""
import base64
import random

FIRST = ["alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan", "judy",
         "mallory", "niaj", "olivia", "peggy", "rupert", "sybil", "trent", "victor", "walter", "zoe"]
DOMAINS = ["example.org", "example.com", "mail.example.net", "lists.example.org", "uni.example.edu"]
LISTS = ["dev", "announce", "users", "security", "release"]
WORDS = ("the of and to in is that for it as was with be by on not he this are or his from at which "
         "but have an they you were her she there been one all we their has would when if so no what "
         "up out about into than them can only other new some could time these two may then do first "
         "any my now such like our over man me even most made after also did many before must through "
         "back years where much your way well down should because each just those people how too little "
         "state good very make world still own see men work long get here between both life being under "
         "never day same another know while last might us great old year off come since against go came "
         "right used take three release patch build kernel server meeting budget report draft review "
         "deadline schedule invoice travel lunch coffee project planning question answer thanks").split()


def _address(rng):
    name = rng.choice(FIRST)
    return name, f"{name}@{rng.choice(DOMAINS)}"


def _text(rng, words):
    lines, line = [], []
    for _ in range(words):
        line.append(rng.choice(WORDS))
        if len(line) >= rng.randint(8, 14):
            lines.append(" ".join(line))
            line = []
    lines.append(" ".join(line))
    return "\n".join(lines) + "\n"


def _date(rng, index):
    day = 1 + index % 28
    month = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"][index // 28 % 12]
    return f"Mon, {day:02d} {month} 2024 {rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:00 +0000"


class Corpus:
    """Message i of a corpus is a pure function of (seed, i)."""

    def __init__(self, seed=1, tag="c"):
        self.seed = seed
        self.tag = tag

    def message(self, index, spam=False):
        rng = random.Random(self.seed * 1_000_003 + index)
        sender_name, sender = _address(rng)
        _, recipient = _address(rng)
        msgid = f"{self.tag}{index}.{self.seed}@bench.example"
        headers = [
            f"Return-Path: <{sender}>",
            f"Delivered-To: {recipient}",
            f"Received: from mx{rng.randint(1, 9)}.example.net by mail.example.org; {_date(rng, index)}",
            f"From: {sender_name.title()} <{sender}>",
            f"To: {recipient}",
            f"Date: {_date(rng, index)}",
            f"Message-ID: <{msgid}>",
        ]
        subject = " ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 8)))
        if rng.random() < 0.1:
            subject = "=?UTF-8?B?" + base64.b64encode(("Über " + subject).encode()).decode() + "?="
        # A third of the mail replies to an earlier message: threads.
        if index > 10 and rng.random() < 0.33:
            parent = f"{self.tag}{rng.randint(max(0, index - 200), index - 1)}.{self.seed}@bench.example"
            headers += [f"In-Reply-To: <{parent}>", f"References: <{parent}>"]
            subject = "Re: " + subject
        headers.append(f"Subject: {subject}")
        if rng.random() < 0.3:
            headers.append(f"List-Id: {rng.choice(LISTS)} list <{rng.choice(LISTS)}.lists.example.org>")
        if spam or rng.random() < 0.05:
            headers += ["X-Spam-Flag: YES", "X-Spam-Status: Yes, score=9.1"]
        headers.append("MIME-Version: 1.0")
        # Sizes: most a few KB, some long, a few with an attachment.
        body = _text(rng, int(rng.lognormvariate(5.6, 0.9)) + 5)
        roll = rng.random()
        if roll < 0.08:
            blob = rng.randbytes(rng.randint(8_000, 120_000))
            encoded = base64.encodebytes(blob).decode()
            boundary = f"b{index}"
            headers.append(f'Content-Type: multipart/mixed; boundary="{boundary}"')
            body = (f"--{boundary}\nContent-Type: text/plain; charset=utf-8\n\n{body}\n"
                    f"--{boundary}\nContent-Type: application/pdf; name=\"doc{index}.pdf\"\n"
                    f"Content-Disposition: attachment; filename=\"doc{index}.pdf\"\n"
                    f"Content-Transfer-Encoding: base64\n\n{encoded}--{boundary}--\n")
        elif roll < 0.2:
            headers += ["Content-Type: text/plain; charset=utf-8", "Content-Transfer-Encoding: quoted-printable"]
            body = body.replace("the ", "th=C3=A9 ")
        else:
            headers.append("Content-Type: text/plain; charset=utf-8")
        return ("\n".join(headers) + "\n\n" + body).encode()

    def envelope(self, index):
        """A postfix-style From_ line for message `index`."""
        return f"From bench{index}@example.org Mon Jan  1 00:00:00 2024\n".encode()
